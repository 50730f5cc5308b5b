"""``EventInspector``: what is kept on this computer and what was sent, event by event.

Three tabs over the client's local database: **Queued** (``store.iter_events``, read a page at a
time so a large backlog never blocks the GUI thread), **Sent** (the last 100 batches of the
sent ring buffer, each event's JSON exactly as it went out) and **Dropped** (the dropped-event
log with its reason). A type filter and a search box narrow the rows; the exact JSON of the
selected event is shown below. Export writes the shown events as JSON Lines
(:meth:`EventInspector.export_jsonl`, also callable without a dialog); Purge deletes the queue
after a confirmation. A ``QTimer`` polls cheap store figures (queue count and bytes, newest
sent batch, newest drop) and the client's listener triggers a refresh; only a tab whose
figures changed is re-read.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QDateTime,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QFontDatabase, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from telemetry._store import EventStore
from telemetry.events import encode_json, utf8_size
from telemetry.qt._bridge import ClientWatcher
from telemetry.qt._common import name_widget

__all__ = ["EventInspector"]

log = logging.getLogger(__name__)

QUEUED, SENT, DROPPED = "queued", "sent", "dropped"
_TABS = (QUEUED, SENT, DROPPED)
_ModelIndex = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event as the inspector shows it.

    ``json`` is the event exactly as it is (queued) or was (sent, dropped) serialised for the
    collector; ``time`` is the event's time in ms (for dropped events: when it was dropped).
    """

    key: str
    kind: str
    event_type: str
    time: int | None
    detail: str
    json: str
    size: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", utf8_size(self.json))  # UTF-8 bytes of the JSON


def _event_json(event: Any) -> str:
    """The stored JSON text of a queued event (``StoredEvent.json``, or ``.payload``)."""
    text = getattr(event, "json", None)
    if not isinstance(text, str):
        text = getattr(event, "payload", "")
    return str(text)


def queued_rows(store: Any, *, after_id: int = 0, limit: int | None = None) -> list[EventRow]:
    """Queued events (oldest first) after queue id ``after_id``, at most ``limit``."""
    events: Iterable[Any] = store.iter_events(after_id)
    if limit is not None:
        events = itertools.islice(events, limit)
    return [_queued_row(e) for e in events]


def _queued_row(event: Any) -> EventRow:
    return EventRow(
        key=f"q:{event.id}",
        kind=QUEUED,
        event_type=str(event.event_type),
        time=int(event.time),
        detail=str(event.insert_id),
        json=_event_json(event),
    )


def sent_rows(store: Any, *, batches: int = 100) -> list[EventRow]:
    """The events of the last ``batches`` sent batches, newest batch first."""
    rows: list[EventRow] = []
    for batch in store.sent_batches(limit=batches):
        events = batch.get("events") or []
        for index, event in enumerate(events):
            if not isinstance(event, dict):
                continue
            time_value = event.get("time")
            rows.append(
                EventRow(
                    key=f"s:{batch.get('id')}:{index}",
                    kind=SENT,
                    event_type=str(event.get("event_type", "")),
                    time=int(time_value) if isinstance(time_value, int) else None,
                    detail=f"#{batch.get('id')} · HTTP {batch.get('status')}",
                    # The client serialises with this same encoder, so this is the text sent.
                    json=encode_json(event),
                )
            )
    return rows


def dropped_rows(store: Any, *, limit: int = 1000) -> list[EventRow]:
    """The most recently dropped events, newest first, with the reason."""
    rows: list[EventRow] = []
    for entry in store.dropped(limit=limit):
        dropped_at = entry.get("dropped_at")
        rows.append(
            EventRow(
                key=f"d:{entry.get('event_id')}:{dropped_at}:{entry.get('insert_id')}",
                kind=DROPPED,
                event_type=str(entry.get("event_type") or ""),
                time=int(dropped_at) if isinstance(dropped_at, int) else None,
                detail=str(entry.get("reason") or ""),
                json=str(entry.get("payload") or ""),
            )
        )
    return rows


def write_jsonl(rows: Iterable[EventRow], path: str | os.PathLike[str]) -> int:
    """Write each row's exact JSON as one line (UTF-8); returns the number of lines."""
    count = 0
    target = Path(path)
    tmp = target.with_name(target.name + ".part")
    with tmp.open("w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            out.write(row.json.replace("\n", " "))
            out.write("\n")
            count += 1
    tmp.replace(target)
    return count


class _EventModel(QAbstractTableModel):
    """The rows of one tab; column 0 is the time, 1 the event type, 2 the detail, 3 the size."""

    SORT_ROLE = Qt.ItemDataRole.UserRole + 1

    def __init__(self, detail_header: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[EventRow] = []
        self._headers = [
            self.tr("Time"),
            self.tr("Event type"),
            detail_header,
            self.tr("Size"),
        ]

    def set_rows(self, rows: list[EventRow]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def append_rows(self, rows: list[EventRow]) -> None:
        first = len(self.rows)
        self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
        self.rows.extend(rows)
        self.endInsertRows()

    def rowCount(self, parent: _ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._headers)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self._headers[section]
        return None

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row = self.rows[index.row()]
        column = index.column()
        if role == self.SORT_ROLE:
            return (row.time or 0, row.event_type, row.detail, row.size)[column]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            if column == 0:
                if row.time is None:
                    return ""
                return (
                    QDateTime.fromMSecsSinceEpoch(row.time)
                    .toLocalTime()
                    .toString("yyyy-MM-dd HH:mm:ss.zzz")
                )
            if column == 1:
                return row.event_type
            if column == 2:
                return row.detail
            return self.tr("{0} B").format(row.size)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 3:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class _FilterProxy(QSortFilterProxyModel):
    """Keeps rows of the chosen event type whose JSON contains the search text."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.event_type: str | None = None
        self.search = ""
        self.setSortRole(_EventModel.SORT_ROLE)

    def set_filter(self, event_type: str | None, search: str) -> None:
        begin = getattr(self, "beginFilterChange", None)  # Qt >= 6.10
        if begin is not None:
            begin()
        self.event_type = event_type
        self.search = search.casefold().strip()
        if begin is not None:
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.invalidateRowsFilter()

    def accepts(self, row: EventRow) -> bool:
        if self.event_type is not None and row.event_type != self.event_type:
            return False
        if not self.search:
            return True
        return (
            self.search in row.json.casefold()
            or self.search in row.event_type.casefold()
            or self.search in row.detail.casefold()
        )

    def filterAcceptsRow(self, source_row: int, source_parent: _ModelIndex) -> bool:
        model = self.sourceModel()
        if not isinstance(model, _EventModel) or source_row >= len(model.rows):
            return False
        return self.accepts(model.rows[source_row])


class EventInspector(QWidget):
    """A window over the local telemetry database: queued, sent and dropped events.

    Args:
        client: the telemetry client (its ``store`` is read; ``purge`` goes through it).
        parent: the Qt parent (``None``: a top-level window).
        page_size: queued events read per page ("Load more" reads the next page).
        refresh_interval: seconds between two polls of the store figures (0: no timer).

    Signals: ``refreshed()`` after the rows were re-read; ``purged(int)`` after a purge.
    """

    refreshed = Signal()
    purged = Signal(int)

    def __init__(
        self,
        client: Any,
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
        self._stats: Any = None
        self._empty_store: EventStore | None = None
        self.setObjectName("telemetryEventInspector")
        self.setWindowTitle(self.tr("Telemetry data"))
        name_widget(
            self,
            self.tr("Telemetry data"),
            self.tr("The usage events kept on this computer, sent and dropped"),
        )

        # ---- filter row
        self.type_combo = QComboBox(self)
        self.type_combo.addItem(self.tr("All event types"), None)
        self.type_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        name_widget(self.type_combo, self.tr("Event type filter"))
        type_label = QLabel(self.tr("Event &type:"), self)
        type_label.setBuddy(self.type_combo)
        self.search_edit = QLineEdit(self)
        self.search_edit.setPlaceholderText(self.tr("Search the JSON of each event"))
        self.search_edit.setClearButtonEnabled(True)
        name_widget(
            self.search_edit, self.tr("Search"), self.tr("Show events containing this text")
        )
        search_label = QLabel(self.tr("&Search:"), self)
        search_label.setBuddy(self.search_edit)
        filters = QHBoxLayout()
        filters.addWidget(type_label)
        filters.addWidget(self.type_combo)
        filters.addSpacing(12)
        filters.addWidget(search_label)
        filters.addWidget(self.search_edit, 1)

        # ---- tabs
        self.tabs = QTabWidget(self)
        name_widget(self.tabs, self.tr("Event lists"))
        name_widget(self.tabs.tabBar(), self.tr("Queued, sent or dropped events"))
        self.models: dict[str, _EventModel] = {}
        self.proxies: dict[str, _FilterProxy] = {}
        self.views: dict[str, QTableView] = {}
        titles = {QUEUED: self.tr("&Queued"), SENT: self.tr("S&ent"), DROPPED: self.tr("&Dropped")}
        names = {
            QUEUED: self.tr("Queued events, not sent yet"),
            SENT: self.tr("Events sent in the last 100 batches"),
            DROPPED: self.tr("Events dropped without being sent"),
        }
        details = {QUEUED: self.tr("Insert ID"), SENT: self.tr("Batch"), DROPPED: self.tr("Reason")}
        for kind in _TABS:
            model = _EventModel(details[kind], self)
            proxy = _FilterProxy(self)
            proxy.setSourceModel(model)
            view = QTableView(self.tabs)
            view.setModel(proxy)
            view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
            view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
            view.setSortingEnabled(True)
            view.sortByColumn(0, Qt.SortOrder.DescendingOrder)
            view.setAlternatingRowColors(True)
            view.setTabKeyNavigation(False)
            view.setWordWrap(False)
            view.verticalHeader().setVisible(False)
            view.verticalHeader().setDefaultSectionSize(view.fontMetrics().height() + 8)
            view.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
            view.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
            view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
            view.horizontalHeader().setResizeContentsPrecision(50)  # size from 50 rows, not all
            name_widget(view, names[kind])
            view.selectionModel().currentRowChanged.connect(self._show_selected)
            self.models[kind], self.proxies[kind], self.views[kind] = model, proxy, view
            self.tabs.addTab(view, titles[kind])

        # ---- JSON pane
        self.json_view = QPlainTextEdit(self)
        self.json_view.setReadOnly(True)
        self.json_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.json_view.setPlaceholderText(self.tr("Select an event to see its JSON."))
        self.json_view.setTabChangesFocus(True)
        name_widget(
            self.json_view,
            self.tr("Event JSON"),
            self.tr("The selected event exactly as it is or was sent"),
        )
        self.json_caption = QLabel(self.tr("Exact JSON as sent"), self)
        self.pretty_check = QCheckBox(self.tr("Prett&y-print"), self)
        name_widget(self.pretty_check, self.tr("Pretty-print the JSON"))
        caption_row = QHBoxLayout()
        caption_row.addWidget(self.json_caption, 1)
        caption_row.addWidget(self.pretty_check)
        json_box = QWidget(self)
        json_layout = QVBoxLayout(json_box)
        json_layout.setContentsMargins(0, 0, 0, 0)
        json_layout.addLayout(caption_row)
        json_layout.addWidget(self.json_view)
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.addWidget(self.tabs)
        self.splitter.addWidget(json_box)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)

        # ---- bottom row
        self.summary_label = QLabel(self)
        self.summary_label.setWordWrap(True)
        name_widget(self.summary_label, self.tr("Summary"))
        self.live_check = QCheckBox(self.tr("&Live refresh"), self)
        self.live_check.setChecked(refresh_interval > 0)
        self.live_check.setEnabled(refresh_interval > 0)
        name_widget(self.live_check, self.tr("Live refresh"))
        self.more_button = QPushButton(self.tr("Load &more"), self)
        name_widget(self.more_button, self.tr("Load more queued events"))
        self.refresh_button = QPushButton(self.tr("&Refresh"), self)
        name_widget(self.refresh_button, self.tr("Refresh"))
        self.export_button = QPushButton(self.tr("E&xport…"), self)
        name_widget(
            self.export_button, self.tr("Export"), self.tr("Save the shown events as JSON Lines")
        )
        self.purge_button = QPushButton(self.tr("&Purge…"), self)
        name_widget(self.purge_button, self.tr("Purge"), self.tr("Delete every queued event"))
        bottom = QHBoxLayout()
        bottom.addWidget(self.summary_label, 1)
        for widget in (
            self.live_check,
            self.more_button,
            self.refresh_button,
            self.export_button,
            self.purge_button,
        ):
            bottom.addWidget(widget)

        layout = QVBoxLayout(self)
        layout.addLayout(filters)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(bottom)

        order: list[QWidget] = [
            self.type_combo,
            self.search_edit,
            self.tabs,
            *self.views.values(),
            self.json_view,
            self.pretty_check,
            self.live_check,
            self.more_button,
            self.refresh_button,
            self.export_button,
            self.purge_button,
        ]
        for first, second in itertools.pairwise(order):
            QWidget.setTabOrder(first, second)

        # ---- wiring
        self.type_combo.currentIndexChanged.connect(self._apply_filter)
        self.search_edit.textChanged.connect(self._apply_filter)
        self.tabs.currentChanged.connect(self._on_tab_changed)
        self.pretty_check.toggled.connect(self._refresh_json)
        self.more_button.clicked.connect(self.load_more)
        self.refresh_button.clicked.connect(self.reload)
        self.export_button.clicked.connect(self.export_dialog)
        self.purge_button.clicked.connect(self.confirm_purge)
        self.live_check.toggled.connect(self._on_live_toggled)
        self._timer = QTimer(self)
        self._timer.setInterval(max(100, int(refresh_interval * 1000)))
        self._timer.timeout.connect(self.poll)
        self._watcher = ClientWatcher(client, self)
        self._watcher.changed.connect(self.poll)
        self._purge_box: QMessageBox | None = None
        self._export_dialog: QFileDialog | None = None

        self.reload()
        self.resize(900, 600)  # the timer starts when the window is shown

    # ------------------------------------------------------------------ reading

    @property
    def store(self) -> Any:
        """The client's event store (an empty in-memory one for a client without a store,
        such as the no-op client)."""
        store = getattr(self._client, "store", None)
        if store is None:
            if self._empty_store is None:
                self._empty_store = EventStore(None)
            store = self._empty_store
        return store

    def current_kind(self) -> str:
        """``queued``, ``sent`` or ``dropped``: the tab shown."""
        return _TABS[max(0, self.tabs.currentIndex())]

    def set_current_kind(self, kind: str) -> None:
        """Show the ``queued``, ``sent`` or ``dropped`` tab."""
        self.tabs.setCurrentIndex(_TABS.index(kind))

    def _signature(self, kind: str) -> Any:
        store = self.store
        if kind == QUEUED:
            stats = store.stats()
            self._stats = stats
            return (stats.events, stats.bytes, stats.oldest_time)
        if kind == SENT:
            newest = store.sent_batches(limit=1)
            return newest[0].get("id") if newest else None
        newest_drop = store.dropped(limit=1)
        if not newest_drop:
            return None
        entry = newest_drop[0]
        return (entry.get("event_id"), entry.get("dropped_at"), entry.get("insert_id"))

    @Slot()
    def poll(self) -> None:
        """Re-read only the tabs whose cheap figures changed (the live refresh)."""
        changed = False
        for kind in _TABS:
            try:
                signature = self._signature(kind)
            except Exception:  # a busy or broken store must not break the window
                log.exception("reading %s figures failed", kind)
                continue
            previous = self._signatures.get(kind)
            if kind not in self._signatures or previous != signature:
                self._signatures[kind] = signature
                if not (kind == QUEUED and self._appended_only(previous, signature)):
                    self._load(kind)
                changed = True
        if changed:
            self._after_load()

    @Slot()
    def reload(self) -> None:
        """Re-read all three tabs now."""
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
                rows = queued_rows(self.store, after_id=self._queued_last_id, limit=room)
            except Exception:
                log.exception("reading queued events failed")
                return False
            if rows:
                model.append_rows(rows)
                self._queued_loaded = len(model.rows)
                self._queued_last_id = _last_queue_id(rows)
        return True

    def _load(self, kind: str) -> None:
        try:
            if kind == QUEUED:
                want = max(self._page_size, self._queued_loaded)
                rows = queued_rows(self.store, limit=want)
                self._queued_loaded = len(rows)
                self._queued_last_id = _last_queue_id(rows)
            elif kind == SENT:
                rows = sent_rows(self.store)
            else:
                rows = dropped_rows(self.store)
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

    @Slot()
    def load_more(self) -> None:
        """Read the next page of queued events."""
        try:
            rows = queued_rows(self.store, after_id=self._queued_last_id, limit=self._page_size)
        except Exception:
            log.exception("reading queued events failed")
            return
        if not rows:
            return
        model = self.models[QUEUED]
        all_rows = [*model.rows, *rows]
        self._queued_loaded = len(all_rows)
        self._queued_last_id = _last_queue_id(all_rows)
        self._set_rows(QUEUED, all_rows)
        self._after_load()

    def _after_load(self) -> None:
        self._update_types()
        self._update_summary()
        self.refreshed.emit()

    def _update_types(self) -> None:
        types = sorted({r.event_type for m in self.models.values() for r in m.rows})
        current = self.type_combo.currentData()
        present = [self.type_combo.itemData(i) for i in range(1, self.type_combo.count())]
        if present == types:
            return
        self.type_combo.blockSignals(True)
        try:
            while self.type_combo.count() > 1:
                self.type_combo.removeItem(1)
            for name in types:
                self.type_combo.addItem(name, name)
            if current is not None and current not in types:
                self.type_combo.addItem(current, current)  # keep the user's choice visible
            index = self.type_combo.findData(current) if current is not None else 0
            self.type_combo.setCurrentIndex(max(0, index))
        finally:
            self.type_combo.blockSignals(False)

    def _update_summary(self) -> None:
        stats = self._stats
        queued_total = int(stats.events) if stats is not None else len(self.models[QUEUED].rows)
        queued_bytes = int(stats.bytes) if stats is not None else 0
        shown = len(self.models[QUEUED].rows)
        parts = [
            self.tr("{0} queued ({1})").format(queued_total, _human_bytes(queued_bytes)),
            self.tr("{0} sent in the last batches").format(len(self.models[SENT].rows)),
            self.tr("{0} dropped").format(len(self.models[DROPPED].rows)),
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

    def shown_rows(self, kind: str | None = None) -> list[EventRow]:
        """The rows of a tab (default: the current one) that pass the filter, in view order."""
        kind = kind or self.current_kind()
        proxy, model = self.proxies[kind], self.models[kind]
        rows = []
        for r in range(proxy.rowCount()):
            source = proxy.mapToSource(proxy.index(r, 0))
            rows.append(model.rows[source.row()])
        return rows

    def select_row(self, row: int, kind: str | None = None) -> None:
        """Select the ``row``-th shown row of a tab (as a click would)."""
        kind = kind or self.current_kind()
        view = self.views[kind]
        index = view.model().index(row, 0)
        view.setCurrentIndex(index)

    def _selected_row(self, kind: str) -> EventRow | None:
        view, proxy, model = self.views[kind], self.proxies[kind], self.models[kind]
        index = view.currentIndex()
        if not index.isValid():
            return None
        source = proxy.mapToSource(index)
        if not source.isValid() or source.row() >= len(model.rows):
            return None
        return model.rows[source.row()]

    def selected_row(self) -> EventRow | None:
        """The selected event of the current tab."""
        return self._selected_row(self.current_kind())

    def _select_key(self, kind: str, key: str) -> None:
        model, proxy, view = self.models[kind], self.proxies[kind], self.views[kind]
        for i, row in enumerate(model.rows):
            if row.key == key:
                index = proxy.mapFromSource(model.index(i, 0))
                if index.isValid():
                    view.selectionModel().setCurrentIndex(
                        index,
                        QItemSelectionModel.SelectionFlag.ClearAndSelect
                        | QItemSelectionModel.SelectionFlag.Rows,
                    )
                return

    @Slot()
    def _show_selected(self) -> None:
        self._refresh_json()

    @Slot()
    def _on_tab_changed(self) -> None:
        self._refresh_json()

    @Slot()
    def _refresh_json(self) -> None:
        row = self.selected_row()
        kind = self.current_kind()
        self.json_caption.setText(
            self.tr("Exact JSON as it will be sent")
            if kind == QUEUED
            else self.tr("Exact JSON as sent")
            if kind == SENT
            else self.tr("Exact JSON as it would have been sent")
        )
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
            self.poll()

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
        """Write the events of a tab (default: the current one) that pass the filter to
        ``path`` as JSON Lines, each line the event exactly as (to be) sent. For the queued tab
        every queued event is read, not only the loaded pages. Returns the number written."""
        kind = kind or self.current_kind()
        proxy = self.proxies[kind]
        rows: Iterable[EventRow]
        if kind == QUEUED:
            rows = (r for r in _all_queued(self.store) if proxy.accepts(r))
        else:
            rows = [r for r in self.models[kind].rows if proxy.accepts(r)]
        return write_jsonl(rows, path)

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
        self.summary_label.setText(self.tr("{0} events exported.").format(count))

    # ------------------------------------------------------------------ purge

    @Slot()
    def confirm_purge(self) -> None:
        """Ask before deleting the queue (a non-blocking, window-modal message box)."""
        stats = self._stats
        count = int(stats.events) if stats is not None else len(self.models[QUEUED].rows)
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
        """Delete every queued event now (no confirmation); returns how many."""
        try:
            removed = int(self.store.purge())
        except Exception:
            log.exception("purge failed")
            return 0
        self.reload()
        self.purged.emit(removed)
        return removed


def _all_queued(store: Any) -> Iterator[EventRow]:
    for event in store.iter_events(0):
        yield _queued_row(event)


def _last_queue_id(rows: list[EventRow]) -> int:
    return max((int(r.key[2:]) for r in rows), default=0)


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024 or unit == "MiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
