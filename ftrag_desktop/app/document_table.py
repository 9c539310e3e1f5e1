"""The Library's document table: prepared rows, a model that sorts itself, and a filter.

`prepare_row` turns one of `Engine.status()`'s documents into display strings and sort keys
(pure and quick, so the view can prepare thousands in small slices); `DocumentTableModel`
shows them and sorts itself by those keys; and `DocumentFilter` narrows them by status and by
text.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from ftrag_desktop.app.formatting import human_size, short_folder

__all__ = [
    "COLUMNS",
    "COL_CHUNKS",
    "COL_FOLDER",
    "COL_NAME",
    "COL_PAGES",
    "COL_REASON",
    "COL_SIZE",
    "COL_STATUS",
    "PATH_ROLE",
    "SORT_ROLE",
    "STATUS_COLORS",
    "STATUS_LABELS",
    "STATUS_ROLE",
    "DocumentFilter",
    "DocumentTableModel",
    "Row",
    "folder_label",
    "prepare_row",
    "prepare_rows",
]

STATUS_LABELS = {"indexed": "Indexed", "failed": "Failed", "pending": "Pending"}
STATUS_COLORS = {"indexed": "#2e9d57", "failed": "#d64541", "pending": "#d99a1e"}

COL_NAME, COL_STATUS, COL_PAGES, COL_CHUNKS, COL_SIZE, COL_FOLDER, COL_REASON = range(7)
COLUMNS = ("Name", "Status", "Pages", "Chunks", "Size", "Folder", "Reason")

_ROOT = QModelIndex()  # the invisible root: the parent of every row

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
PATH_ROLE = Qt.ItemDataRole.UserRole + 2
STATUS_ROLE = Qt.ItemDataRole.UserRole + 3


def _dot_icon(color: str) -> QIcon:
    pix = QPixmap(12, 12)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(color))
    painter.drawEllipse(1, 1, 10, 10)
    painter.end()
    return QIcon(pix)


class Row(NamedTuple):
    """One document, with everything the table shows precomputed (off the GUI thread)."""

    doc: dict[str, Any]
    display: tuple[str, ...]
    keys: tuple[Any, ...]
    tooltip: str
    haystack: str = ""  # what the text filter looks in: path and title, lower case


def folder_label(path: str, roots: list[str]) -> str:
    """A document's folder named from its watched root (the deepest root wins)."""
    parent = Path(path).parent
    for root in sorted(roots, key=len, reverse=True):
        if parent.is_relative_to(root):
            rel = parent.relative_to(root).as_posix()
            name = Path(root).name or root
            return name if rel == "." else f"{name}/{rel}"
    return short_folder(str(parent))


def prepare_rows(docs: list[dict[str, Any]], roots: list[str]) -> list[Row]:
    """Display strings and sort keys for every document."""
    return [prepare_row(doc, roots) for doc in docs]


def prepare_row(doc: dict[str, Any], roots: list[str]) -> Row:
    """One document's display strings, sort keys and tooltip (pure: no Qt)."""
    path = str(doc["path"])
    name = Path(path).name
    status = str(doc.get("status", ""))
    error = str(doc.get("error") or "")
    display = (
        name,
        STATUS_LABELS.get(status, status.capitalize()),
        str(doc["pages"]) if doc.get("pages") else "—",
        str(doc.get("chunks") or 0) if status == "indexed" else "—",
        human_size(doc.get("size")),
        folder_label(path, roots),
        error.splitlines()[0] if error else "",
    )
    keys = (
        name.lower(),
        f"{_STATUS_ORDER.get(status, 3)}{name.lower()}",
        int(doc.get("pages") or 0),
        int(doc.get("chunks") or 0),
        int(doc.get("size") or 0),
        display[COL_FOLDER].lower(),
        display[COL_REASON].lower(),
    )
    title = str(doc.get("title") or "")
    tooltip = f"{path}\n{title}" if title and title != Path(path).stem else path
    return Row(doc, display, keys, tooltip, f"{path}\n{title}".lower())


_STATUS_ORDER = {"failed": 0, "pending": 1, "indexed": 2}
# From this many changes in one call, the rows' index is built (about 2 ms for 5,000 rows, and
# more under load) rather than each row found by binary search (about 15 us); it lasts until
# rows are inserted or removed, so the library view's slices of 64 changes never build it.
POSITIONS_FROM = 256
# Beyond this many runs of rows to remove and insert, one reset is cheaper (each run costs
# the filter proxy and the view a pass over all rows; measured on 5,000 rows).
MAX_MOVES = 16
# `apply_changes` pays about 0.08 ms a run (no pass over all rows), a reset 50 ms and more with
# the repaint that follows: beyond this many runs, the reset.
APPLY_MAX_RUNS = 200


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """(first, last) of every run of True in `flags`."""
    runs: list[tuple[int, int]] = []
    start = -1
    for i, flag in enumerate(flags):
        if flag and start < 0:
            start = i
        elif not flag and start >= 0:
            runs.append((start, i - 1))
            start = -1
    if start >= 0:
        runs.append((start, len(flags) - 1))
    return runs


def _place(
    rows: list[Row], key: Any, order: Any, descending: bool, left: bool = False, start: int = 0
) -> int:
    """Where a row with order key `key` goes in `rows` (sorted by `order`): binary search from
    index `start`.  `left`: the index of a row with that very key (keys are unique)."""
    lo, hi = start, len(rows)
    while lo < hi:
        mid = (lo + hi) // 2
        here = order(rows[mid])
        if left and here == key:
            return mid
        if (key > here) if descending else (key < here):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _runs_of(indexes: list[int]) -> list[tuple[int, int]]:
    """(first, last) of every run of consecutive numbers in sorted `indexes`."""
    runs: list[tuple[int, int]] = []
    for i in indexes:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


class DocumentTableModel(QAbstractTableModel):
    """Rows are prepared `Row`s; the model sorts itself in Python by the precomputed keys
    (the proxy's own sort would call `data()` once per comparison: far too slow)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Row] = []
        self._roots: list[str] = []
        self._icons: dict[str, QIcon] = {}
        self._sort_col = COL_NAME
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._by_path: dict[str, Row] = {}  # the rows shown, by path
        self._positions: dict[str, int] | None = None  # row index by path, until rows move
        self._failed_color = QColor(STATUS_COLORS["failed"])

    def set_roots(self, roots: list[str]) -> None:
        self._roots = list(roots)

    def roots(self) -> list[str]:
        return list(self._roots)

    def folder_label(self, path: str) -> str:
        return folder_label(path, self._roots)

    def set_documents(self, docs: list[dict[str, Any]]) -> bool:
        """Prepare rows here (small lists and tests); the view prepares big ones on a worker."""
        return self.set_rows(prepare_rows(docs, self._roots))

    def set_rows(self, rows: list[Row], changed: set[str] | None = None) -> bool:
        """Replace the rows; True when that took a reset (the selection is lost).

        `changed`: the paths whose rows differ from the current ones (None: any may), so
        that views repaint only those.  The rows are sorted and turned into the new ones by
        removing and inserting runs (`_move_rows`), so that the filter looks at those rows
        only and the view keeps its selection and scroll position; only when most rows differ,
        by a reset: a reset makes the filter look at every row again and the view lay
        everything out afresh.  A status report's changes alone go to `apply_changes`, which
        does not look at every row.
        """
        rows = self._sorted(rows)
        self._by_path = {r.doc["path"]: r for r in rows}
        self._positions = None
        same_rows = [r.doc["path"] for r in rows] == [r.doc["path"] for r in self._rows]
        if not same_rows and not self._move_rows(rows):
            self.beginResetModel()
            self._rows = rows
            self.endResetModel()
            return True
        self._rows = rows
        if changed is None:
            at = range(len(rows))
        else:
            hits = [i for i, r in enumerate(rows) if r.doc["path"] in changed]
            at = range(hits[0], hits[-1] + 1) if hits else range(0)
        if at:
            self.dataChanged.emit(self.index(at[0], 0), self.index(at[-1], len(COLUMNS) - 1))
        return False

    def apply_changes(
        self, changed: Sequence[Row], removed: Collection[str], expected_rows: int | None
    ) -> bool:
        """Apply a status report's changes alone, in O(changes · log rows): each row that
        changed is swapped where it is, each that went is removed, and each that came (or
        moves in the order) is inserted at the place a binary search finds, in runs.

        `changed`: the rows that came or changed; `removed`: the paths that went;
        `expected_rows`: how many rows there are then (None: unknown, a part of the
        changes).  False, having changed nothing, when
        the changes are too many or too scattered (`set_rows` with every row is then the
        cheaper way) or do not add up to `expected_rows`."""
        if len(changed) + len(removed) > max(256, len(self._rows) // 2):
            return False  # about as many as there are rows: sorting them all is as quick
        if self._positions is None and len(changed) + len(removed) > POSITIONS_FROM:
            self._positions = {r.doc["path"]: i for i, r in enumerate(self._rows)}
        order = self._order_key()
        descending = self._sort_order == Qt.SortOrder.DescendingOrder
        fresh_paths = {r.doc["path"] for r in changed}
        in_place: list[tuple[int, Row]] = []
        gone: set[int] = set()
        arriving: list[Row] = []
        for path in removed:
            if path not in fresh_paths and (old := self._by_path.get(path)) is not None:
                gone.add(self._find(old, order, descending))
        for row in changed:
            old = self._by_path.get(row.doc["path"])
            if old is None:
                arriving.append(row)
                continue
            at = self._find(old, order, descending)
            if order(old) == order(row):
                in_place.append((at, row))
            else:  # its place in the order changes: out, and back in where it now belongs
                gone.add(at)
                arriving.append(row)
        if expected_rows is not None and len(self._rows) - len(gone) + len(arriving) != (
            expected_rows
        ):
            return False  # not the rows we hold plus these changes: start from every row
        gone_at = sorted(gone)
        removals = _runs_of(gone_at)
        if len(removals) > APPLY_MAX_RUNS:
            return False
        arriving.sort(key=order, reverse=descending)
        # Places among the rows that stay: found among all rows, less the ones going before.
        # Arriving rows are in order, so each search starts where the previous one ended, and
        # the count of runs is known as they are found (too many: stop, at once).
        places: list[int] = []
        runs = len(removals)
        lo = 0
        for row in arriving:
            lo = _place(self._rows, order(row), order, descending, start=lo)
            place = lo - bisect.bisect_left(gone_at, lo)
            if not places or places[-1] != place:
                runs += 1
                if runs > APPLY_MAX_RUNS:
                    return False
            places.append(place)
        for at, row in in_place:
            self._rows[at] = row
            self._by_path[row.doc["path"]] = row
        # One signal per run of changed rows, not one range over them all: the filter looks
        # again at the rows a signal names (dynamic filtering), and only those should cost.
        for first, last in _runs_of(sorted(at for at, _ in in_place)):
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(COLUMNS) - 1))
        if removals or arriving:
            self._positions = None
        for first, last in reversed(removals):
            self.beginRemoveRows(_ROOT, first, last)
            for row in self._rows[first : last + 1]:
                del self._by_path[row.doc["path"]]
            del self._rows[first : last + 1]
            self.endRemoveRows()
        shift = 0
        i = 0
        while i < len(arriving):  # in order: each run lands before the row at its place
            j = i
            while j < len(arriving) and places[j] == places[i]:
                j += 1
            first = places[i] + shift
            self.beginInsertRows(_ROOT, first, first + (j - i) - 1)
            self._rows[first:first] = arriving[i:j]
            for row in arriving[i:j]:
                self._by_path[row.doc["path"]] = row
            self.endInsertRows()
            shift += j - i
            i = j
        return True

    def _find(self, row: Row, order: Any, descending: bool) -> int:
        """The index of `row` (one of the rows shown): from the index of every row while the
        rows have not moved since it was built, else by binary search on its order key."""
        if self._positions is not None:
            return self._positions[row.doc["path"]]
        at = _place(self._rows, order(row), order, descending, left=True)
        assert self._rows[at].doc["path"] == row.doc["path"]
        return at

    def _move_rows(self, rows: list[Row]) -> bool:
        """Turn the current rows into `rows` (sorted) by removing and inserting runs of rows;
        False, having changed nothing, when a reset is the better way (most rows differ)."""
        col = self._sort_col
        new = {r.doc["path"]: r for r in rows}
        # A row stays in place if its path survives with the same sort key; others go (those
        # whose key changed come back at their new place).
        keep = [(p := r.doc["path"]) in new and new[p].keys[col] == r.keys[col] for r in self._rows]
        kept = {r.doc["path"] for r, k in zip(self._rows, keep, strict=True) if k}
        # Survivors keep their order (both lists are sorted the same way; ties keep the order
        # rows were given in, which can differ): otherwise reset.
        if [r.doc["path"] for r, k in zip(self._rows, keep, strict=True) if k] != [
            r.doc["path"] for r in rows if r.doc["path"] in kept
        ]:
            return False
        removals = _runs([not k for k in keep])
        insertions = _runs([r.doc["path"] not in kept for r in rows])
        if len(removals) + len(insertions) > MAX_MOVES:
            return False
        for first, last in reversed(removals):
            self.beginRemoveRows(_ROOT, first, last)
            del self._rows[first : last + 1]
            self.endRemoveRows()
        for first, last in insertions:  # in order: each run lands where `rows` has it
            self.beginInsertRows(_ROOT, first, last)
            self._rows[first:first] = rows[first : last + 1]
            self.endInsertRows()
        return True

    def _order_key(self) -> Any:
        """The rows' order: the sort column's key, then the path, so that no two rows tie and
        a row inserted by binary search lands exactly where a fresh sort would put it."""
        col = self._sort_col
        return lambda r: (r.keys[col], r.doc["path"])

    def _sorted(self, rows: list[Row]) -> list[Row]:
        reverse = self._sort_order == Qt.SortOrder.DescendingOrder
        return sorted(rows, key=self._order_key(), reverse=reverse)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if column < 0:
            return
        self._sort_col, self._sort_order = column, order
        self.layoutAboutToBeChanged.emit()
        self._positions = None
        self._rows = self._sorted(self._rows)
        self.layoutChanged.emit()

    def document(self, row: int) -> dict[str, Any]:
        return self._rows[row].doc

    def row(self, row: int) -> Row:
        return self._rows[row]

    def documents(self) -> list[dict[str, Any]]:
        return [r.doc for r in self._rows]

    def rows(self) -> list[Row]:
        """The rows in the order shown (the list itself: do not change it)."""
        return self._rows

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole and section in (
                COL_PAGES,
                COL_CHUNKS,
                COL_SIZE,
            ):
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _icon(self, status: str) -> QIcon:
        if status not in self._icons:
            self._icons[status] = _dot_icon(STATUS_COLORS.get(status, "#888888"))
        return self._icons[status]

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        # Called about seven times per visible cell on every repaint (once per role the
        # delegate asks for), so it compares plain ints and turns the roles it does not serve
        # away first: attribute lookups on Qt's enums cost more than the rest of the call.
        if role not in _SERVED_ROLES:
            return None
        at = index.row()
        rows = self._rows
        if at < 0 or at >= len(rows):
            return None
        row = rows[at]
        col = index.column()
        if role == _DISPLAY:
            return row.display[col]
        if role == _SORT:
            return row.keys[col]
        if role == _PATH:
            return str(row.doc["path"])
        status = row.doc.get("status", "")
        if role == _STATUS:
            return str(status)
        if role == _DECORATION:
            return self._icon(str(status)) if col == COL_STATUS else None
        if role == _TOOLTIP:
            error = row.doc.get("error")
            return str(error) if col == COL_REASON and error else row.tooltip
        if role == _ALIGNMENT:
            return _RIGHT if col in _NUMERIC else None
        if col == COL_REASON and status == "failed":  # the foreground role
            return self._failed_color
        return None


_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_DECORATION = int(Qt.ItemDataRole.DecorationRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_SORT, _PATH, _STATUS = int(SORT_ROLE), int(PATH_ROLE), int(STATUS_ROLE)
_SERVED_ROLES = frozenset(
    (_DISPLAY, _DECORATION, _TOOLTIP, _ALIGNMENT, _FOREGROUND, _SORT, _PATH, _STATUS)
)
_NUMERIC = frozenset((COL_PAGES, COL_CHUNKS, COL_SIZE))
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


class DocumentFilter(QSortFilterProxyModel):
    """Filters by status (None: all) and by a text found in the path or the title."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._status: str | None = None
        self._text = ""
        self._rows_of: DocumentTableModel | None = None
        self._decided: list[bool] | None = None  # during `refilter`: each row's decision
        self.setSortRole(SORT_ROLE)
        # Rows whose data changed are filtered again by Qt (only those); the proxy never sorts:
        # its own sort column stays unset, since sorting is the source model's (`sort`).
        self.setDynamicSortFilter(True)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sorting happens in the source model (fast, precomputed keys); rows keep its order."""
        model = self.sourceModel()
        if isinstance(model, DocumentTableModel):
            model.sort(column, order)

    def set_status(self, status: str | None) -> None:
        self._status = status
        self.refilter()

    def is_filtering(self) -> bool:
        return self._status is not None or bool(self._text)

    def refilter(self) -> None:
        """Decide every row again.  The decisions are made first, in one pass over the rows,
        and Qt's per-row calls then only look them up: a call per row from C++ costs more than
        the test itself, and 5,000 of those with the test inside held the GUI thread ~25 ms."""
        model = self._rows_of
        if model is not None and self.is_filtering():
            self._decided = [self._accepts(row) for row in model.rows()]
        try:
            self.beginFilterChange()
            self.endFilterChange()
        finally:
            self._decided = None

    def set_text(self, text: str) -> None:
        self._text = text.strip().lower()
        self.refilter()

    def setSourceModel(self, model: Any) -> None:
        super().setSourceModel(model)
        self._rows_of = model if isinstance(model, DocumentTableModel) else None

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        if self._status is None and not self._text:
            return True
        decided = self._decided
        if decided is not None and source_row < len(decided):
            return decided[source_row]
        model = self._rows_of
        assert model is not None
        return self._accepts(model.row(source_row))

    def _accepts(self, row: Row) -> bool:
        if self._status is not None and row.doc.get("status") != self._status:
            return False
        return not self._text or self._text in (row.haystack or _haystack(row.doc))


def _haystack(doc: dict[str, Any]) -> str:
    return f"{doc['path']}\n{doc.get('title') or ''}".lower()
