"""The inspector's Qt models: a table of :class:`~telemetry._inspection.EventRow`, a table of
:class:`~telemetry._inspection.ReportRow` (error reports), and the proxy that filters either by
event type and search text (the filter itself is :func:`~telemetry._inspection.row_matches`)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from PySide6.QtCore import (
    QAbstractTableModel,
    QDateTime,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)

from telemetry._inspection import QUEUED, EventRow, ReportRow, Row, row_matches

__all__ = ["EventFilterProxy", "EventTableModel", "ReportTableModel"]

_ModelIndex = QModelIndex | QPersistentModelIndex
_R = TypeVar("_R", EventRow, ReportRow)


def _local_time(ms: int | None) -> str:
    if ms is None:
        return ""
    return QDateTime.fromMSecsSinceEpoch(ms).toLocalTime().toString("yyyy-MM-dd HH:mm:ss.zzz")


class _RowsModel(QAbstractTableModel, Generic[_R]):
    """A table over a list of rows with fixed column headers (what both tables share)."""

    SORT_ROLE = Qt.ItemDataRole.UserRole + 1

    def __init__(self, headers: list[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[_R] = []
        self._headers = headers

    def set_rows(self, rows: list[_R]) -> None:
        """Replace every row."""
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

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


class EventTableModel(_RowsModel[EventRow]):
    """The rows of one list; column 0 is the time, 1 the event type, 2 the detail, 3 the size."""

    def __init__(self, detail_header: str, parent: QObject | None = None) -> None:
        super().__init__(
            [self.tr("Time"), self.tr("Event type"), detail_header, self.tr("Size")], parent
        )

    def append_rows(self, rows: list[EventRow]) -> None:
        """Add rows at the end (keeps the selection and scroll position)."""
        if not rows:
            return
        first = len(self.rows)
        self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
        self.rows.extend(rows)
        self.endInsertRows()

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row = self.rows[index.row()]
        column = index.column()
        if role == self.SORT_ROLE:
            return (row.time or 0, row.event_type, row.detail, row.size)[column]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self._display(row, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 3:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _display(self, row: EventRow, column: int) -> str:
        if column == 0:
            return _local_time(row.time)
        if column == 1:
            return row.event_type
        if column == 2:
            return row.detail
        return self.tr("{0} B").format(row.size)


class ReportTableModel(_RowsModel[ReportRow]):
    """Error reports: level, error (``Type: message``), count, first and last seen, status
    (queued, or sent with the HTTP answer)."""

    LAST_SEEN = 4

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(
            [
                self.tr("Level"),
                self.tr("Error"),
                self.tr("Count"),
                self.tr("First seen"),
                self.tr("Last seen"),
                self.tr("Status"),
            ],
            parent,
        )

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row = self.rows[index.row()]
        column = index.column()
        if role == self.SORT_ROLE:
            status = 0 if row.status == QUEUED else 1
            return (
                row.level,
                row.error,
                row.count,
                row.first_seen or 0,
                row.last_seen or 0,
                status,
            )[column]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return self._display(row, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column == 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _display(self, row: ReportRow, column: int) -> str:
        if column == 0:
            return row.level
        if column == 1:
            return " ".join(row.error.split())  # one line in the table; the JSON has it all
        if column == 2:
            return f"{row.count:,}"
        if column == 3:
            return _local_time(row.first_seen)
        if column == 4:
            return _local_time(row.last_seen)
        if row.status == QUEUED:
            return self.tr("Queued")
        if row.http_status is None:
            return self.tr("Sent")
        return self.tr("Sent · HTTP {0}").format(row.http_status)


class EventFilterProxy(QSortFilterProxyModel):
    """Keeps the rows of the chosen event type that contain the search text; sorts by the
    model's sort role (the time as a number, not as text)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.event_type: str | None = None
        self.search = ""
        self.setSortRole(EventTableModel.SORT_ROLE)

    def set_filter(self, event_type: str | None, search: str) -> None:
        """Show only rows of ``event_type`` (``None``: any) containing ``search``."""
        begin = getattr(self, "beginFilterChange", None)  # Qt >= 6.10
        if begin is not None:
            begin()
        self.event_type = event_type
        self.search = search
        if begin is not None:
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            self.invalidateRowsFilter()

    def accepts(self, row: Row) -> bool:
        """Whether ``row`` passes the current filter."""
        return row_matches(row, self.event_type, self.search)

    def filterAcceptsRow(self, source_row: int, source_parent: _ModelIndex) -> bool:
        model = self.sourceModel()
        if not isinstance(model, EventTableModel | ReportTableModel):
            return False
        if source_row >= len(model.rows):
            return False
        return self.accepts(model.rows[source_row])
