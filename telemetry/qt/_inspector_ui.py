"""The inspector's widgets and their layout: filter row, the four tabs (queued, sent and
dropped events, error reports) with their table views, the JSON pane and the bottom row of
buttons, with an accessible name on every control and the tab order following the layout.
:class:`~telemetry.qt.EventInspector` adds the behaviour."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from telemetry._inspection import DROPPED, KINDS, QUEUED, REPORTS, SENT, Row
from telemetry.qt._common import name_widget
from telemetry.qt._inspector_models import EventFilterProxy, EventTableModel, ReportTableModel

__all__ = ["TABS", "InspectorLayout"]

#: The tabs, in order: the three event lists, then the error reports.
TABS = (*KINDS, REPORTS)


class InspectorLayout(QWidget):
    """The inspector's controls, laid out (no behaviour is connected here), and the helpers
    that read the views: which tab is shown, which rows pass the filter, which is selected."""

    def _build_ui(self, refresh_interval: float) -> None:
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_filters())
        self.splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.splitter.addWidget(self._build_tabs())
        self.splitter.addWidget(self._build_json_pane())
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        layout.addWidget(self.splitter, 1)
        layout.addLayout(self._build_bottom_row(refresh_interval))
        self._set_tab_order()

    def _build_filters(self) -> QHBoxLayout:
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
        return filters

    def _build_tabs(self) -> QTabWidget:
        self.tabs = QTabWidget(self)
        name_widget(self.tabs, self.tr("Event lists"))
        name_widget(self.tabs.tabBar(), self.tr("Queued, sent or dropped events, or error reports"))
        self.models: dict[str, EventTableModel] = {}
        self.proxies: dict[str, EventFilterProxy] = {}
        self.views: dict[str, QTableView] = {}
        titles = {QUEUED: self.tr("&Queued"), SENT: self.tr("S&ent"), DROPPED: self.tr("&Dropped")}
        names = {
            QUEUED: self.tr("Queued events, not sent yet"),
            SENT: self.tr("Events sent in the last 100 batches"),
            DROPPED: self.tr("Events dropped without being sent"),
        }
        details = {QUEUED: self.tr("Insert ID"), SENT: self.tr("Batch"), DROPPED: self.tr("Reason")}
        for kind in KINDS:
            model = EventTableModel(details[kind], self)
            proxy = EventFilterProxy(self)
            proxy.setSourceModel(model)
            view = self._make_view(proxy, names[kind])
            self.models[kind], self.proxies[kind], self.views[kind] = model, proxy, view
            self.tabs.addTab(view, titles[kind])
        self._build_reports_tab()
        return self.tabs

    def _build_reports_tab(self) -> None:
        self.report_model = ReportTableModel(self)
        proxy = EventFilterProxy(self)
        proxy.setSourceModel(self.report_model)
        view = self._make_view(proxy, self.tr("Error reports waiting to be sent and the last sent"))
        header = view.horizontalHeader()
        for column in range(self.report_model.columnCount()):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        view.sortByColumn(ReportTableModel.LAST_SEEN, Qt.SortOrder.DescendingOrder)
        self.proxies[REPORTS], self.views[REPORTS] = proxy, view
        self.tabs.addTab(view, self.tr("Rep&orts"))

    def _make_view(self, proxy: EventFilterProxy, name: str) -> QTableView:
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
        header = view.horizontalHeader()
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setResizeContentsPrecision(50)  # size the columns from 50 rows, not all of them
        name_widget(view, name)
        return view

    def _build_json_pane(self) -> QWidget:
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
        return json_box

    def _build_bottom_row(self, refresh_interval: float) -> QHBoxLayout:
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
        for widget in self._bottom_controls():
            bottom.addWidget(widget)
        return bottom

    def _bottom_controls(self) -> list[QWidget]:
        return [
            self.live_check,
            self.more_button,
            self.refresh_button,
            self.export_button,
            self.purge_button,
        ]

    def _set_tab_order(self) -> None:
        order: list[QWidget] = [
            self.type_combo,
            self.search_edit,
            self.tabs,
            *self.views.values(),
            self.json_view,
            self.pretty_check,
            *self._bottom_controls(),
        ]
        for first, second in itertools.pairwise(order):
            QWidget.setTabOrder(first, second)

    # ------------------------------------------------------------------ reading the views

    def current_kind(self) -> str:
        """``queued``, ``sent``, ``dropped`` or ``reports``: the tab shown."""
        return TABS[max(0, self.tabs.currentIndex())]

    def set_current_kind(self, kind: str) -> None:
        """Show the ``queued``, ``sent``, ``dropped`` or ``reports`` tab."""
        self.tabs.setCurrentIndex(TABS.index(kind))

    def _model_rows(self, kind: str) -> Sequence[Row]:
        return self.report_model.rows if kind == REPORTS else self.models[kind].rows

    def shown_rows(self, kind: str | None = None) -> list[Row]:
        """The rows of a tab (default: the current one) that pass the filter, in view order
        (:class:`~telemetry._inspection.ReportRow` on the reports tab)."""
        kind = kind or self.current_kind()
        proxy, rows = self.proxies[kind], self._model_rows(kind)
        return [rows[proxy.mapToSource(proxy.index(r, 0)).row()] for r in range(proxy.rowCount())]

    def select_row(self, row: int, kind: str | None = None) -> None:
        """Select the ``row``-th shown row of a tab (as a click would)."""
        view = self.views[kind or self.current_kind()]
        view.setCurrentIndex(view.model().index(row, 0))

    def _selected_row(self, kind: str) -> Row | None:
        view, proxy, rows = self.views[kind], self.proxies[kind], self._model_rows(kind)
        index = view.currentIndex()
        if not index.isValid():
            return None
        source = proxy.mapToSource(index)
        if not source.isValid() or source.row() >= len(rows):
            return None
        return rows[source.row()]

    def selected_row(self) -> Row | None:
        """The selected event (or error report) of the current tab."""
        return self._selected_row(self.current_kind())

    def _select_key(self, kind: str, key: str) -> None:
        proxy, view = self.proxies[kind], self.views[kind]
        model = proxy.sourceModel()
        for i, row in enumerate(self._model_rows(kind)):
            if row.key == key:
                index = proxy.mapFromSource(model.index(i, 0))
                if index.isValid():
                    view.selectionModel().setCurrentIndex(
                        index,
                        QItemSelectionModel.SelectionFlag.ClearAndSelect
                        | QItemSelectionModel.SelectionFlag.Rows,
                    )
                return
