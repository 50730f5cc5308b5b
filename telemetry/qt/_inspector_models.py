"""The inspector's Qt models: a table of :class:`~telemetry._inspection.EventRow`, a table of
:class:`~telemetry._inspection.ReportRow` (error reports), and the proxy that filters either by
event type and search text (the filter itself is :func:`~telemetry._inspection.row_matches`)."""

from __future__ import annotations

import html
from collections.abc import Callable
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


def _literal(text: str) -> str:
    """``text`` as rich text that Qt shows exactly: tooltips guess rich text, so an event
    named ``<b>x</b>`` would show in bold and ``<img src=x>`` as a broken image."""
    return f"<p style='white-space:pre-wrap'>{html.escape(text)}</p>"


def _local_time(ms: int | None) -> str:
    if ms is None:
        return ""
    return QDateTime.fromMSecsSinceEpoch(ms).toLocalTime().toString("yyyy-MM-dd HH:mm:ss.zzz")


class _RowsModel(QAbstractTableModel, Generic[_R]):
    """A table over a list of rows with fixed column headers (what both tables share)."""

    def __init__(self, headers: list[str], parent: QObject | None = None) -> None:
        super().__init__(parent)
        #: The rows in table order (sorted by :meth:`sort_rows`, in Python: the proxy never
        #: calls ``data()`` to sort, which took seconds for tens of thousands of rows).
        self.rows: list[_R] = []
        #: The same rows in the order they were read (what a sort starts from, so equal
        #: keys keep that order).
        self.read_rows: list[_R] = []
        self._headers = headers
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder

    def sort_key(self, column: int) -> Callable[[_R], Any]:
        """The key sorting by ``column`` (the time as a number, not as text)."""
        raise NotImplementedError

    def _sorted(self, rows: list[_R]) -> list[_R]:
        if not 0 <= self._sort_column < len(self._headers):
            return list(rows)
        descending = self._sort_order == Qt.SortOrder.DescendingOrder
        return sorted(rows, key=self.sort_key(self._sort_column), reverse=descending)

    def set_rows(self, rows: list[_R]) -> None:
        """Replace every row (``rows`` in the order read)."""
        self.beginResetModel()
        self.read_rows = list(rows)
        self.rows = self._sorted(self.read_rows)
        self.endResetModel()

    def update_rows(self, rows: list[_R], *, max_runs: int = 200) -> None:
        """Make ``rows`` (in the order read) the rows, keeping those that are the same objects
        as before in place: only the rows gone are removed and the new ones inserted, so a
        view keeps its selection and scroll position and a proxy filters only the new rows.
        More than ``max_runs`` separate runs of changes: one reset instead."""
        target = self._sorted(rows)
        wanted = {id(r) for r in target}
        before = {id(r) for r in self.rows}
        removed = [i for i, r in enumerate(self.rows) if id(r) not in wanted]
        added = [i for i, r in enumerate(target) if id(r) not in before]
        if not removed and not added:
            self.read_rows = list(rows)
            return
        remove_runs, add_runs = _runs(removed), _runs(added)
        if len(remove_runs) + len(add_runs) > max_runs:
            self.set_rows(rows)
            return
        for first, last in reversed(remove_runs):
            self.beginRemoveRows(QModelIndex(), first, last)
            del self.rows[first : last + 1]
            self.endRemoveRows()
        for first, last in add_runs:
            self.beginInsertRows(QModelIndex(), first, last)
            self.rows[first:first] = target[first : last + 1]
            self.endInsertRows()
        self.read_rows = list(rows)

    def sort_rows(self, column: int, order: Qt.SortOrder) -> None:
        """Sort the rows by ``column`` (-1: the order read), keeping persistent indexes (the
        selection) on their rows."""
        self._sort_column, self._sort_order = column, order
        self.layoutAboutToBeChanged.emit()
        old_rows = self.rows
        self.rows = self._sorted(self.read_rows)
        position = {id(r): i for i, r in enumerate(self.rows)}
        old_indexes = self.persistentIndexList()
        new_indexes = []
        for index in old_indexes:
            row = position.get(id(old_rows[index.row()])) if index.row() < len(old_rows) else None
            new_indexes.append(QModelIndex() if row is None else self.index(row, index.column()))
        self.changePersistentIndexList(old_indexes, new_indexes)
        self.layoutChanged.emit()

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


def _runs(positions: list[int]) -> list[tuple[int, int]]:
    """Ascending positions as (first, last) runs of consecutive ones."""
    runs: list[tuple[int, int]] = []
    for p in positions:
        if runs and runs[-1][1] == p - 1:
            runs[-1] = (runs[-1][0], p)
        else:
            runs.append((p, p))
    return runs


class EventTableModel(_RowsModel[EventRow]):
    """The rows of one list; column 0 is the time, 1 the event type, 2 the detail, 3 the size."""

    _KEYS: tuple[Callable[[EventRow], Any], ...] = (
        lambda r: r.time or 0,
        lambda r: r.event_type,
        lambda r: r.detail,
        lambda r: r.size,
    )

    def __init__(self, detail_header: str, parent: QObject | None = None) -> None:
        super().__init__(
            [self.tr("Time"), self.tr("Event type"), detail_header, self.tr("Size")], parent
        )

    def sort_key(self, column: int) -> Callable[[EventRow], Any]:
        return self._KEYS[column]

    def append_rows(self, rows: list[EventRow]) -> None:
        """Add rows after those read (keeps the selection and scroll position)."""
        if rows:
            self.update_rows([*self.read_rows, *rows])

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row = self.rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return _literal(self._display(row, column))
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

    _KEYS: tuple[Callable[[ReportRow], Any], ...] = (
        lambda r: r.level,
        lambda r: r.error,
        lambda r: r.count,
        lambda r: r.first_seen or 0,
        lambda r: r.last_seen or 0,
        lambda r: 0 if r.status == QUEUED else 1,
    )

    def sort_key(self, column: int) -> Callable[[ReportRow], Any]:
        return self._KEYS[column]

    def data(self, index: _ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        row = self.rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return _literal(self._display(row, column))
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
    """Keeps the rows of the chosen event type that contain the search text. Sorting (a
    header click) sorts the source model's rows in Python by the model's sort key (the time
    as a number, not as text); the proxy's own sort column stays -1, so it keeps the source
    order and never calls ``data()`` to compare rows."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.event_type: str | None = None
        self.search = ""

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        model = self.sourceModel()
        if isinstance(model, _RowsModel):
            model.sort_rows(column, order)
        else:
            super().sort(column, order)

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
