"""``EventInspector``: the window showing what is kept on this computer and what was sent.

Four tabs over the client's public read methods (rows from :mod:`telemetry._inspection`):
**Queued** (read a page at a time so a large backlog never blocks the GUI thread), **Sent**
(the events of the last 100 batches, each exactly as it went out), **Dropped** (with the
reason) and **Reports** (the error reports waiting and the last 50 sent, one row per report
with its level, error, count, first and last seen and status, through ``queued_reports()`` and
``sent_reports()``). A type filter and a search box narrow the rows (the search only, for
reports); the exact JSON of the selected event or report is shown below. Export writes the
shown rows as JSON Lines; Purge deletes the event queue through ``client.purge()`` after a
confirmation. While the window is visible a ``QTimer`` polls cheap figures (queue count and
bytes, newest sent batch, newest drop; the reports, at most 150, are read and compared) and
the client's listener triggers a poll; only a tab whose figures changed is re-read. Each time
the window is shown it opens on a tab with something in it (Queued, else Sent, else Dropped,
else Reports) unless the tab shown has rows, with the newest row selected; Esc closes it when
it is a window.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QHideEvent, QKeyEvent, QShowEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QMessageBox,
    QWidget,
)

from telemetry._inspection import (
    DROPPED,
    KINDS,
    QUEUED,
    REPORTS,
    SENT,
    SENT_BATCHES,
    EventRow,
    ReportRow,
    Row,
    all_queued_rows,
    dropped_rows,
    human_bytes,
    last_queue_id,
    queued_rows,
    report_rows,
    sent_batch_key,
    sent_batch_rows,
    sent_rows,
    signature,
    write_jsonl,
)
from telemetry._protocol import TelemetryClient
from telemetry.qt._bridge import ClientWatcher
from telemetry.qt._common import name_widget
from telemetry.qt._inspector_ui import TABS, InspectorLayout

__all__ = ["EventInspector", "EventRow"]

log = logging.getLogger(__name__)


class EventInspector(InspectorLayout):
    """A window over the local telemetry: queued, sent and dropped events, and error reports.

    Args:
        client: the telemetry client (read and purged through its public methods only).
        parent: the Qt parent (``None``: a top-level window).
        page_size: queued events read per page ("Load more" reads the next page).
        refresh_interval: seconds between two polls while visible (0: no timer).

    Signals: ``refreshed()`` after the rows were re-read; ``purged(int)`` after a purge.
    """

    refreshed = Signal()
    purged = Signal(int)

    def __init__(
        self,
        client: TelemetryClient,
        parent: QWidget | None = None,
        *,
        page_size: int = 1000,
        refresh_interval: float = 1.0,
    ) -> None:
        super().__init__(parent)
        self._client = client
        self._page_size = max(1, page_size)
        self._queued_loaded = 0
        self._queued_last_id = 0
        self._signatures: dict[str, Any] = {}
        self._purge_box: QMessageBox | None = None
        self._export_dialog: QFileDialog | None = None
        self.setObjectName("telemetryEventInspector")
        self.setWindowTitle(self.tr("Telemetry data"))
        name_widget(
            self,
            self.tr("Telemetry data"),
            self.tr("The usage events and error reports kept on this computer, sent and dropped"),
        )
        self._build_ui(refresh_interval)
        self._connect(refresh_interval)
        self.reload()
        self.resize(900, 600)  # the timer starts when the window is shown

    # ------------------------------------------------------------------ wiring

    def _connect(self, refresh_interval: float) -> None:
        self.type_combo.currentIndexChanged.connect(self._apply_filter)
        self.search_edit.textChanged.connect(self._apply_filter)
        self.tabs.currentChanged.connect(self._refresh_json)
        self.tabs.currentChanged.connect(self._update_type_filter)
        self.pretty_check.toggled.connect(self._refresh_json)
        for view in self.views.values():
            view.selectionModel().currentRowChanged.connect(self._refresh_json)
        self.more_button.clicked.connect(self.load_more)
        self.refresh_button.clicked.connect(self.reload)
        self.export_button.clicked.connect(self.export_dialog)
        self.purge_button.clicked.connect(self.confirm_purge)
        self.live_check.toggled.connect(self._on_live_toggled)
        self._timer = QTimer(self)
        self._timer.setInterval(max(100, int(refresh_interval * 1000)))
        self._timer.timeout.connect(self.poll)
        self._watcher = ClientWatcher(self._client, self)
        self._watcher.changed.connect(self._on_client_changed)

    # ------------------------------------------------------------------ reading

    @Slot()
    def _on_client_changed(self) -> None:
        if self.isVisible():  # a hidden window catches up when it is shown again
            self.poll()

    @Slot()
    def poll(self) -> None:
        """Re-read only the tabs whose cheap figures changed (the live refresh)."""
        changed = False
        for kind in KINDS:
            try:
                current = signature(self._client, kind)
            except Exception:  # a busy or broken database must not break the window
                log.exception("reading %s figures failed", kind)
                continue
            previous = self._signatures.get(kind)
            if kind in self._signatures and previous == current:
                continue
            self._signatures[kind] = current
            updated_in_place = (kind == QUEUED and self._appended_only(previous, current)) or (
                kind == SENT and self._sent_added_only(previous, current)
            )
            if not updated_in_place:
                self._load(kind)
            changed = True
        if self._poll_reports() or changed:
            self._after_load()

    def _poll_reports(self) -> bool:
        """Re-read the error reports (at most 100 waiting and 50 sent); True when they
        changed."""
        try:
            rows = report_rows(self._client)
        except Exception:  # a busy or broken database must not break the window
            log.exception("reading error reports failed")
            return False
        if REPORTS in self._signatures and rows == self.report_model.read_rows:
            return False
        self._signatures[REPORTS] = len(rows)
        self._set_report_rows(rows)
        return True

    def _set_report_rows(self, rows: list[ReportRow]) -> None:
        selected = self._selected_row(REPORTS)
        self.report_model.set_rows(rows)
        if selected is not None:
            self._select_key(REPORTS, selected.key)
        if self.current_kind() == REPORTS:
            self._refresh_json()

    @Slot()
    def reload(self) -> None:
        """Re-read all four tabs now."""
        self._signatures.clear()
        self.poll()

    def _appended_only(self, previous: Any, current: Any) -> bool:
        """Events were only added at the end (same oldest event, more of them): keep the rows
        read, and read only what the current pages still have room for."""
        if previous is None or current is None or previous[2] is None:
            return False
        if current[2] != previous[2] or current[0] < previous[0]:
            return False
        model = self.models[QUEUED]
        room = max(self._page_size, self._queued_loaded) - len(model.rows)
        if room > 0:
            try:
                rows = queued_rows(self._client, after_id=self._queued_last_id, limit=room)
            except Exception:
                log.exception("reading queued events failed")
                return False
            if rows:
                model.append_rows(rows)
                self._queued_loaded = len(model.rows)
                self._queued_last_id = last_queue_id(rows)
        return True

    def _sent_added_only(self, previous: Any, current: Any) -> bool:
        """Batches were only sent since (the newest batch read is still there, a newer one
        is the newest): read only the new batches, add their rows and remove those of the
        batches beyond the last 100 (no full re-read, no reset of the table)."""
        if not isinstance(previous, int) or not isinstance(current, int) or current <= previous:
            return False
        model = self.models[SENT]
        if not model.read_rows:
            return False
        try:
            # Batch ids only grow: the new batches are at most ``current - previous``.
            batches = self._client.sent_batches(min(current - previous, SENT_BATCHES) + 1)
        except Exception:
            log.exception("reading sent events failed")
            return False
        ids = [b.get("id") for b in batches]
        if previous not in ids:  # the batch read last is gone (data deleted): read it all
            return False
        new = [b for b in batches if isinstance(b.get("id"), int) and b["id"] > previous]
        if len(new) >= SENT_BATCHES:
            return False
        rows = sent_batch_rows(new)
        kept: set[str] = {sent_batch_key(r) for r in rows}
        for row in model.read_rows:  # newest batch first
            batch = sent_batch_key(row)
            if batch not in kept and len(kept) >= SENT_BATCHES:
                continue
            kept.add(batch)
            rows.append(row)
        self._update_rows(SENT, rows)
        return True

    def _load(self, kind: str) -> None:
        try:
            if kind == QUEUED:
                want = max(self._page_size, self._queued_loaded)
                rows = queued_rows(self._client, limit=want)
                self._queued_loaded = len(rows)
                self._queued_last_id = last_queue_id(rows)
            elif kind == SENT:
                rows = sent_rows(self._client)
            else:
                rows = dropped_rows(self._client)
        except Exception:
            log.exception("reading %s events failed", kind)
            return
        self._set_rows(kind, rows)

    def _set_rows(self, kind: str, rows: list[EventRow]) -> None:
        selected = self._selected_row(kind)
        self.models[kind].set_rows(rows)
        if selected is not None:
            self._select_key(kind, selected.key)
        if kind == self.current_kind():
            self._refresh_json()

    def _update_rows(self, kind: str, rows: list[EventRow]) -> None:
        """Like :meth:`_set_rows` for rows that keep most of the current ones (the same
        objects): only the changes reach the view, which keeps its selection."""
        self.models[kind].update_rows(rows)
        if kind == self.current_kind():
            self._refresh_json()

    @Slot()
    def load_more(self) -> None:
        """Read the next page of queued events."""
        try:
            rows = queued_rows(self._client, after_id=self._queued_last_id, limit=self._page_size)
        except Exception:
            log.exception("reading queued events failed")
            return
        if not rows:
            return
        all_rows = [*self.models[QUEUED].read_rows, *rows]
        self._queued_loaded = len(all_rows)
        self._queued_last_id = last_queue_id(all_rows)
        self._update_rows(QUEUED, all_rows)
        self._after_load()

    def _after_load(self) -> None:
        self._update_types()
        self._update_summary()
        self.refreshed.emit()

    def _update_types(self) -> None:
        types = sorted({r.event_type for m in self.models.values() for r in m.rows})
        combo = self.type_combo
        current = combo.currentData()
        if [combo.itemData(i) for i in range(1, combo.count())] == types:
            return
        combo.blockSignals(True)
        try:
            while combo.count() > 1:
                combo.removeItem(1)
            for name in types:
                combo.addItem(name, name)
            if current is not None and current not in types:
                combo.addItem(current, current)  # keep the user's choice visible
            index = combo.findData(current) if current is not None else 0
            combo.setCurrentIndex(max(0, index))
        finally:
            combo.blockSignals(False)

    def _queued_total(self) -> tuple[int, int]:
        """(events, bytes) waiting, from the last poll's figures."""
        figures = self._signatures.get(QUEUED)
        if figures is None:
            return len(self.models[QUEUED].rows), 0
        return int(figures[0]), int(figures[1])

    def _update_summary(self) -> None:
        queued_total, queued_bytes = self._queued_total()
        shown = len(self.models[QUEUED].rows)
        reports = self.report_model.rows
        waiting = sum(1 for r in reports if r.status == QUEUED)
        parts = [
            self.tr("{0} queued ({1})").format(queued_total, human_bytes(queued_bytes)),
            self.tr("{0} sent in the last batches").format(len(self.models[SENT].rows)),
            self.tr("{0} dropped").format(len(self.models[DROPPED].rows)),
            self.tr("{0} error reports waiting, {1} sent").format(waiting, len(reports) - waiting),
        ]
        if shown < queued_total:
            parts.append(self.tr("first {0} queued shown").format(shown))
        self.summary_label.setText(" · ".join(parts))
        self.more_button.setEnabled(shown < queued_total)
        self.purge_button.setEnabled(queued_total > 0)

    # ------------------------------------------------------------------ filter, selection

    @Slot()
    def _apply_filter(self) -> None:
        event_type = self.type_combo.currentData()
        for proxy in self.proxies.values():
            proxy.set_filter(event_type, self.search_edit.text())
        self._refresh_json()

    @Slot()
    def _update_type_filter(self) -> None:
        """Error reports have no event type: the type filter is off on their tab."""
        self.type_combo.setEnabled(self.current_kind() != REPORTS)

    @Slot()
    def _refresh_json(self) -> None:
        kind = self.current_kind()
        row = self.selected_row()
        if isinstance(row, ReportRow):
            kind = row.status  # a waiting report, or a sent one
        captions = {
            QUEUED: self.tr("Exact JSON as it will be sent"),
            SENT: self.tr("Exact JSON as sent"),
            DROPPED: self.tr("Exact JSON as it would have been sent"),
            REPORTS: self.tr("Exact JSON as it is or was sent"),
        }
        self.json_caption.setText(captions[kind])
        if row is None:
            self.json_view.setPlainText("")
            return
        text = row.json
        if self.pretty_check.isChecked():
            with contextlib.suppress(ValueError):
                text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        self.json_view.setPlainText(text)

    # ------------------------------------------------------------------ live refresh

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self.live_check.isChecked() and self.live_check.isEnabled():
            self._timer.start()
        self.poll()  # catch up with what changed while hidden
        self.show_something()

    def show_something(self) -> None:
        """Show a tab with rows (the current one if it has any, else Queued, Sent, Dropped,
        Reports in that order) and select its newest row when none is selected."""
        kind = self.current_kind()
        if not self.shown_rows(kind):
            kind = next((k for k in TABS if self.shown_rows(k)), kind)
            self.set_current_kind(kind)
        if self.selected_row() is None and self.shown_rows(kind):
            self.select_row(0, kind)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Esc closes the inspector when it is a window of its own."""
        if event.key() == Qt.Key.Key_Escape and self.isWindow():
            event.accept()
            self.close()
            return
        super().keyPressEvent(event)

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._timer.stop()  # nobody is looking: no polling

    @Slot(bool)
    def _on_live_toggled(self, on: bool) -> None:
        if on and self.isVisible():
            self._timer.start()
            self.poll()
        else:
            self._timer.stop()

    @property
    def live(self) -> bool:
        """Whether the live-refresh timer runs."""
        return self._timer.isActive()

    # ------------------------------------------------------------------ export

    def export_jsonl(self, path: str | os.PathLike[str], kind: str | None = None) -> int:
        """Write the events (or error reports) of a tab (default: the current one) that pass
        the filter to ``path`` as JSON Lines, each line exactly as (to be) sent. For the queued
        tab every queued event is read, not only the loaded pages. Returns the number written."""
        kind = kind or self.current_kind()
        proxy = self.proxies[kind]
        source: Iterable[Row]
        if kind == QUEUED:
            source = all_queued_rows(self._client)
        elif kind == REPORTS:
            source = self.report_model.read_rows
        else:
            source = self.models[kind].read_rows
        return write_jsonl((r for r in source if proxy.accepts(r)), path)

    @Slot()
    def export_dialog(self) -> None:
        """Ask for a file name (a non-blocking dialog) and export the current tab there."""
        dialog = QFileDialog(self, self.tr("Export telemetry events"))
        dialog.setObjectName("telemetryExportDialog")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.setNameFilter(self.tr("JSON Lines (*.jsonl)"))
        dialog.setDefaultSuffix("jsonl")
        dialog.selectFile(f"telemetry-{self.current_kind()}.jsonl")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.fileSelected.connect(self._export_selected)
        self._export_dialog = dialog
        dialog.open()

    @Slot(str)
    def _export_selected(self, path: str) -> None:
        try:
            count = self.export_jsonl(path)
        except Exception as exc:  # noqa: BLE001 - reported to the user, never raised
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            box = QMessageBox(
                QMessageBox.Icon.Warning,
                self.tr("Export failed"),
                self.tr("Could not write {0}: {1}").format(path, reason),
                QMessageBox.StandardButton.Close,
                self,
            )
            box.setObjectName("telemetryExportError")
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.open()  # not exec(): the app's event loop keeps running
            return
        if self.current_kind() == REPORTS:
            self.summary_label.setText(self.tr("{0} error reports exported.").format(count))
        else:
            self.summary_label.setText(self.tr("{0} events exported.").format(count))

    # ------------------------------------------------------------------ purge

    @Slot()
    def confirm_purge(self) -> None:
        """Ask before deleting the queue (a non-blocking, window-modal message box)."""
        count, _bytes = self._queued_total()
        box = QMessageBox(self)
        box.setObjectName("telemetryPurgeConfirmation")
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle(self.tr("Purge queued events"))
        box.setText(self.tr("Delete all {0} queued events?").format(count))
        box.setInformativeText(self.tr("They will never be sent. This cannot be undone."))
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        yes = box.button(QMessageBox.StandardButton.Yes)
        yes.setText(self.tr("&Delete"))
        name_widget(yes, self.tr("Delete queued events"))
        name_widget(box.button(QMessageBox.StandardButton.Cancel), self.tr("Cancel"))
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(self._on_purge_answer)
        self._purge_box = box
        box.open()

    @Slot(int)
    def _on_purge_answer(self, result: int) -> None:
        self._purge_box = None
        if result == QMessageBox.StandardButton.Yes.value:
            self.purge()

    def purge(self) -> int:
        """Delete every queued event now through ``client.purge()`` (no confirmation);
        returns how many."""
        try:
            removed = int(self._client.purge())
        except Exception:
            log.exception("purge failed")
            return 0
        self.reload()
        self.purged.emit(removed)
        return removed
