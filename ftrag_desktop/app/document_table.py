"""The Library's document table: prepared rows, a model that sorts and filters itself, and
the filter's rules.

`prepare_row` turns one of `Engine.status()`'s documents into display strings and sort keys
(pure and quick, so the view can prepare thousands in small slices); `DocumentTableModel`
shows them, sorted by those keys, and only those its filter accepts; and `DocumentFilter`
(the proxy between the model and the view) decides by status and by text.  Sorting and
filtering run over plain Python lists and reach Qt in a few signals: Qt never calls Python
once per row for them, as a `QSortFilterProxyModel` did, which with 5,000 to 20,000 rows held
the GUI thread 15 to 250 ms (`bench/table_filter.py`).
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Sequence
from itertools import compress, count
from operator import not_
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from PySide6.QtCore import (
    QAbstractItemModel,
    QAbstractTableModel,
    QIdentityProxyModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
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
    "RowFilter",
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
# the view a pass over all rows; measured on 5,000 rows).
MAX_MOVES = 16
# `apply_changes` pays about 0.08 ms a run (no pass over all rows), a reset 50 ms and more with
# the repaint that follows: beyond this many runs, the reset.
APPLY_MAX_RUNS = 200
# Up to this many persistent indexes (a selection, the current row) are followed through a
# re-sort or a filter change by binary search each; beyond, through an index of every row.
FOLLOW_BY_SEARCH = 64
# A filter change that hides up to this many rows may go as runs of rows removed (at most
# `MAX_MOVES` runs); beyond, counting the runs costs more than the other way's two signals.
SHOW_IN_RUNS_UP_TO = 256

# Layout changes say they move rows only (not columns): selections then follow one index per
# row rather than one per cell, and the horizontal header keeps its sections as they are.
_VERTICAL = QAbstractItemModel.LayoutChangeHint.VerticalSortHint
_WITH_HINT = ("QList<QPersistentModelIndex>", "QAbstractItemModel::LayoutChangeHint")


def _emit_vertical(signal: Any) -> None:
    """Emit a layout signal with its hint (PySide's plain `emit` picks the overload without)."""
    signal[_WITH_HINT].emit([], _VERTICAL)


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


class RowFilter(Protocol):
    """What the table shows: `DocumentFilter` is one."""

    def accepts(self, row: Row) -> bool:
        """Whether `row` is shown (asked of each row a status report changes)."""
        ...

    def select(self, rows: list[Row]) -> list[Row]:
        """The rows of `rows` that are shown, in their order: one pass over them all."""
        ...


class _Ordered:
    """Rows in the table's order, each found by its path (the dict is built when first needed:
    a filter change need not pay for it) or by its index (`positions`, while rows stay put)."""

    __slots__ = ("_by_path", "positions", "rows")

    def __init__(self, rows: list[Row], by_path: dict[str, Row] | None = None) -> None:
        self.rows = rows
        self._by_path = by_path  # when given, the same rows by path
        self.positions: dict[str, int] | None = None

    @property
    def by_path(self) -> dict[str, Row]:
        if self._by_path is None:
            self._by_path = {r.doc["path"]: r for r in self.rows}
        return self._by_path

    def index_of(self, row: Row, order: Any, descending: bool) -> int:
        """The index of `row` (by path, with the order key it has here), or -1."""
        path = row.doc["path"]
        if self.positions is not None:
            return self.positions.get(path, -1)
        at = _place(self.rows, order(row), order, descending, left=True)
        return at if at < len(self.rows) and self.rows[at].doc["path"] == path else -1


class _Plan(NamedTuple):
    """How one list of rows takes a status report's changes (see `_plan`)."""

    in_place: list[tuple[int, Row]]  # rows swapped where they are
    removals: list[tuple[int, int]]  # runs of rows that go, (first, last)
    arriving: list[Row]  # rows that come, in order
    places: list[int]  # where each arriving row lands, among the rows that stay


def _plan(
    target: _Ordered,
    changed: Sequence[Row],
    went: Sequence[str],
    order: Any,
    descending: bool,
    max_runs: int | None,
) -> _Plan | None:
    """How `target` takes these changes, in O(changes · log rows), changing nothing: each row
    that changed is swapped where it is, each that went is removed, and each that came (or
    moves in the order) is inserted at the place a binary search finds.  None when that takes
    more than `max_runs` runs of rows removed and inserted (found as soon as it does)."""
    by_path = target.by_path
    if target.positions is None and len(changed) + len(went) > POSITIONS_FROM:
        target.positions = {r.doc["path"]: i for i, r in enumerate(target.rows)}
    in_place: list[tuple[int, Row]] = []
    gone: set[int] = set()
    arriving: list[Row] = []
    for path in went:
        if (old := by_path.get(path)) is not None:
            gone.add(target.index_of(old, order, descending))
    for row in changed:
        old = by_path.get(row.doc["path"])
        if old is None:
            arriving.append(row)
            continue
        at = target.index_of(old, order, descending)
        if order(old) == order(row):
            in_place.append((at, row))
        else:  # its place in the order changes: out, and back in where it now belongs
            gone.add(at)
            arriving.append(row)
    gone_at = sorted(gone)
    removals = _runs_of(gone_at)
    limit = len(target.rows) + len(arriving) + 1 if max_runs is None else max_runs
    if len(removals) > limit:
        return None
    arriving.sort(key=order, reverse=descending)
    # Places among the rows that stay: found among all rows, less the ones going before.
    # Arriving rows are in order, so each search starts where the previous one ended, and
    # the count of runs is known as they are found (too many: stop, at once).
    places: list[int] = []
    runs = len(removals)
    lo = 0
    for row in arriving:
        lo = _place(target.rows, order(row), order, descending, start=lo)
        place = lo - bisect.bisect_left(gone_at, lo)
        if not places or places[-1] != place:
            runs += 1
            if runs > limit:
                return None
        places.append(place)
    return _Plan(in_place, removals, arriving, places)


class DocumentTableModel(QAbstractTableModel):
    """Rows are prepared `Row`s; the model sorts and filters itself in Python, over plain
    lists and the precomputed keys, and tells Qt the outcome in a few signals (a layout
    change, runs of rows inserted or removed).  Qt never calls Python once per row to sort or
    filter: a proxy's own sort would call `data()` once per comparison, and a proxy's filter
    `filterAcceptsRow` once per row (5,000 rows: 18 ms on a quiet machine, 50 and more under
    load), and again for every row after each re-sort.

    It holds every row (`rows()`, in the table's order, and by path for re-sorts) and shows
    those its filter accepts (`set_filter`; the view's row numbers count those only)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._held = _Ordered([])  # every row, in the table's order
        self._shown = self._held  # the rows shown: `_held` itself while nothing is filtered
        self._rows = self._shown.rows  # the rows shown (the list `_shown` holds)
        self._path_order: list[str] = []  # every row's path, sorted: a re-sort starts from it
        self._filter: RowFilter | None = None
        self._roots: list[str] = []
        self._icons: dict[str, QIcon] = {}
        self._sort_col = COL_NAME
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._failed_color = QColor(STATUS_COLORS["failed"])

    def set_roots(self, roots: list[str]) -> None:
        self._roots = list(roots)

    def roots(self) -> list[str]:
        return list(self._roots)

    def folder_label(self, path: str) -> str:
        return folder_label(path, self._roots)

    def _set_shown(self, shown: _Ordered) -> None:
        self._shown = shown
        self._rows = shown.rows

    # ---- the rows held -----------------------------------------------------------------

    def set_documents(self, docs: list[dict[str, Any]]) -> bool:
        """Prepare rows here (small lists and tests); the view prepares big ones on a worker."""
        return self.set_rows(prepare_rows(docs, self._roots))

    def set_rows(self, rows: list[Row], changed: set[str] | None = None) -> bool:
        """Replace the rows; True when that took a reset (the selection is lost).

        `changed`: the paths whose rows differ from the current ones (None: any may), so
        that views repaint only those.  The rows are sorted and the rows shown turned into
        the new ones by removing and inserting runs (`_move_rows`), so that the view keeps
        its selection and scroll position; only when most rows differ, by a reset: a reset
        makes the view lay everything out afresh.  A status report's changes alone go to
        `apply_changes`, which does not look at every row.
        """
        by_path = {r.doc["path"]: r for r in rows}
        path_order = sorted(by_path)
        held = _Ordered(self._key_sorted(list(map(by_path.__getitem__, path_order))), by_path)
        shown = held if self._filter is None else _Ordered(self._filter.select(held.rows))
        self._path_order = path_order
        same_rows = [r.doc["path"] for r in shown.rows] == [r.doc["path"] for r in self._rows]
        if not same_rows and not self._move_rows(shown.rows):
            self.beginResetModel()
            self._held = held
            self._set_shown(shown)
            self.endResetModel()
            return True
        # The rows shown now hold what `shown` holds: take its list (and `held`) silently.
        self._held = held
        self._set_shown(shown)
        if changed is None:
            at = range(len(self._rows))
        else:
            hits = [i for i, r in enumerate(self._rows) if r.doc["path"] in changed]
            at = range(hits[0], hits[-1] + 1) if hits else range(0)
        if at:
            self.dataChanged.emit(self.index(at[0], 0), self.index(at[-1], len(COLUMNS) - 1))
        return False

    def apply_changes(
        self, changed: Sequence[Row], removed: Collection[str], expected_rows: int | None
    ) -> bool:
        """Apply a status report's changes alone, in O(changes · log rows) (see `_plan`):
        rows are swapped, removed and inserted in runs, to the rows held and to the rows
        shown; a row the filter accepts no longer leaves the view, and one it now accepts
        enters it.

        `changed`: the rows that came or changed; `removed`: the paths that went;
        `expected_rows`: how many rows there are then (None: unknown, a part of the
        changes).  False, having changed nothing, when the changes are too many or too
        scattered (`set_rows` with every row is then the cheaper way) or do not add up to
        `expected_rows`."""
        held = self._held
        if len(changed) + len(removed) > max(256, len(held.rows) // 2):
            return False  # about as many as there are rows: sorting them all is as quick
        fresh_paths = {r.doc["path"] for r in changed}
        went = [p for p in removed if p not in fresh_paths and p in held.by_path]
        came_paths = [p for p in fresh_paths if p not in held.by_path]
        if expected_rows is not None and len(held.rows) - len(went) + len(came_paths) != (
            expected_rows
        ):
            return False  # not the rows we hold plus these changes: start from every row
        order = self._order_key()
        descending = self._sort_order == Qt.SortOrder.DescendingOrder
        rule = self._filter
        if rule is None:
            shown_changed, shown_went = changed, went
        else:  # a row the filter no longer accepts goes, as if removed
            shown_changed, shown_went = [], list(went)
            for row in changed:
                if rule.accepts(row):
                    shown_changed.append(row)
                else:
                    shown_went.append(row.doc["path"])
        plan = _plan(self._shown, shown_changed, shown_went, order, descending, APPLY_MAX_RUNS)
        if plan is None:
            return False
        held_plan = None
        if self._shown is not held:
            held_plan = _plan(held, changed, went, order, descending, None)
        self._carry_out(self._shown, plan, signals=True)
        if held_plan is not None:
            self._carry_out(held, held_plan, signals=False)
        path_order = self._path_order
        for path in went:
            del path_order[bisect.bisect_left(path_order, path)]
        for path in came_paths:
            bisect.insort(path_order, path)
        return True

    def _carry_out(self, target: _Ordered, plan: _Plan, signals: bool) -> None:
        """Change `target` as `plan` says; `signals`: it is the rows shown (tell the views)."""
        rows, by_path = target.rows, target.by_path
        for at, row in plan.in_place:
            rows[at] = row
            by_path[row.doc["path"]] = row
        if signals:
            # One signal per run of changed rows, not one range over them all: each signal
            # repaints the rows it names, and only those should cost.
            for first, last in _runs_of(sorted(at for at, _ in plan.in_place)):
                self.dataChanged.emit(self.index(first, 0), self.index(last, len(COLUMNS) - 1))
        if plan.removals or plan.arriving:
            target.positions = None
        for first, last in reversed(plan.removals):
            if signals:
                self.beginRemoveRows(_ROOT, first, last)
            for row in rows[first : last + 1]:
                del by_path[row.doc["path"]]
            del rows[first : last + 1]
            if signals:
                self.endRemoveRows()
        arriving, places = plan.arriving, plan.places
        shift = 0
        i = 0
        while i < len(arriving):  # in order: each run lands before the row at its place
            j = i
            while j < len(arriving) and places[j] == places[i]:
                j += 1
            first = places[i] + shift
            if signals:
                self.beginInsertRows(_ROOT, first, first + (j - i) - 1)
            rows[first:first] = arriving[i:j]
            for row in arriving[i:j]:
                by_path[row.doc["path"]] = row
            if signals:
                self.endInsertRows()
            shift += j - i
            i = j

    def _move_rows(self, rows: list[Row]) -> bool:
        """Turn the rows shown into `rows` (sorted) by removing and inserting runs of rows;
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

    # ---- order and filter ----------------------------------------------------------------

    def _order_key(self) -> Any:
        """The rows' order: the sort column's key, then the path, so that no two rows tie and
        a row inserted by binary search lands exactly where a fresh sort would put it."""
        col = self._sort_col
        return lambda r: (r.keys[col], r.doc["path"])

    def _key_sorted(self, path_order: list[Row]) -> list[Row]:
        """`path_order` (rows sorted by path) in the table's order: one stable sort by the sort
        column's key alone leaves the rows of one key in path order, as `_order_key` wants,
        at a third of the cost of sorting by (key, path) pairs."""
        col = self._sort_col
        if self._sort_order == Qt.SortOrder.DescendingOrder:
            # The stable sort in reverse keeps equal keys as given: in reverse path order.
            return sorted(reversed(path_order), key=lambda r: r.keys[col], reverse=True)
        return sorted(path_order, key=lambda r: r.keys[col])

    def _sorted(self, rows: list[Row]) -> list[Row]:
        """`rows` in the table's order."""
        by_path = {r.doc["path"]: r for r in rows}
        return self._key_sorted([by_path[p] for p in sorted(by_path)])

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort by `column` in one layout change (selections follow their rows)."""
        if column < 0 or (column, order) == (self._sort_col, self._sort_order):
            return
        flip = column == self._sort_col  # the same order, reversed: no key is equal to another
        self._sort_col, self._sort_order = column, order
        if flip:
            held = _Ordered(self._held.rows[::-1], self._held.by_path)
        else:
            by_path = self._held.by_path
            path_order = list(map(by_path.__getitem__, self._path_order))
            held = _Ordered(self._key_sorted(path_order), by_path)
        if self._filter is None:
            shown = held
        elif flip:
            shown = _Ordered(self._rows[::-1])
        else:  # the rows shown stay the same rows: no need to ask the filter
            accepted = self._shown.by_path
            shown = _Ordered([r for r in held.rows if r.doc["path"] in accepted])
        self._relayout(held, shown)

    def set_filter(self, rule: RowFilter | None, narrower: bool = False) -> None:
        """Show only the rows `rule` accepts (None: every row), decided in one pass over the
        rows in plain Python (`rule.select`) and shown by `_show`.  `narrower`: `rule`
        accepts no row the previous one did not (a longer text to find), so only the rows
        shown are looked at."""
        if rule is None and self._filter is None:
            return
        self._filter = rule
        if rule is None:
            self._show(self._held, wider=True)
        else:
            self._show(_Ordered(rule.select(self._rows if narrower else self._held.rows)), narrower)

    def _show(self, shown: _Ordered, narrower: bool = False, wider: bool = False) -> None:
        """Show `shown` (rows held, in order) rather than the rows shown now, in a few signals
        whatever the number of rows that come and go, and with no Python call per row.

        In general, three signals: the rows to show are appended as one block (one run
        inserted); the block is put first, the rows shown until now after it (one layout
        change, through which selections and the current row move to the same rows in the
        block, or are let go if those are hidden now, as Qt's own filter proxy does); and
        those are cut off (one run removed).  Telling only the rows that come and go would
        take, for a scattered change, thousands of signals; and the row count never changes
        within the layout change, which views follow without rebuilding.

        `narrower` (no row comes: a longer text to find), the common case as one types: the
        rows that go are found (a C pass over the rows' identities) and removed in a few runs
        if they are few, else moved last in one layout change of the same size and cut off.
        Qt keeps a selection of the whole table through a layout change of the same size as
        it is (through any other, it follows each selected row: a Python call or two per row
        for a Python model).  `wider`: no row goes (then the same count is the same rows)."""
        old, new = self._rows, shown.rows
        if (narrower or wider) and len(new) == len(old):
            self._set_shown(shown)  # the same rows, in the same order
            return
        if narrower:
            there = set(map(id, new))  # rows shown are the very objects held
            going_at = list(compress(count(), map(not_, map(there.__contains__, map(id, old)))))
            runs = _runs_of(going_at) if len(going_at) <= SHOW_IN_RUNS_UP_TO else []
            if runs and len(runs) <= MAX_MOVES:
                rows = self._rows = list(old)  # a list of its own: `old` may be the rows held
                for first, last in reversed(runs):
                    self.beginRemoveRows(_ROOT, first, last)
                    del rows[first : last + 1]
                    self.endRemoveRows()
                self._set_shown(shown)
                return
            _emit_vertical(self.layoutAboutToBeChanged)
            self._rows = new + list(map(old.__getitem__, going_at))
            followed = self.persistentIndexList()
            if followed:
                self.changePersistentIndexList(followed, self._followed(followed, old, shown))
            _emit_vertical(self.layoutChanged)
            self.beginRemoveRows(_ROOT, len(new), len(old) - 1)
            self._set_shown(shown)
            self.endRemoveRows()
            return
        if new:
            self.beginInsertRows(_ROOT, len(old), len(old) + len(new) - 1)
            self._rows = old + new
            self.endInsertRows()
        if old and new:
            _emit_vertical(self.layoutAboutToBeChanged)
            self._rows = new + old
            followed = self.persistentIndexList()
            if followed:
                self.changePersistentIndexList(followed, self._followed(followed, old, shown))
            _emit_vertical(self.layoutChanged)
        if old:
            self.beginRemoveRows(_ROOT, len(new), len(new) + len(old) - 1)
            self._set_shown(shown)
            self.endRemoveRows()
        else:
            self._set_shown(shown)

    def _relayout(self, held: _Ordered, shown: _Ordered) -> None:
        """Hold `held` and show `shown` (the same rows as now, in another order) in one layout
        change: persistent indexes (a selection, the current row) follow their rows, and
        views and proxies rebuild their mapping in C++."""
        _emit_vertical(self.layoutAboutToBeChanged)
        old = self._rows
        self._held = held
        self._set_shown(shown)
        followed = self.persistentIndexList()
        if followed:
            self.changePersistentIndexList(followed, self._followed(followed, old, shown))
        _emit_vertical(self.layoutChanged)

    def _followed(
        self, indexes: list[QModelIndex], old: list[Row], shown: _Ordered
    ) -> list[QModelIndex]:
        """Where `indexes` (rows of `old`) are among `shown` (invalid: hidden now).  An index
        past `old` is one of `shown`'s block appended after it (`_show`), now first."""
        order = self._order_key()
        descending = self._sort_order == Qt.SortOrder.DescendingOrder
        where: dict[int, int] = {}
        if len(indexes) > FOLLOW_BY_SEARCH:  # every row's index, built in C (rows held as such)
            where = dict(zip(map(id, shown.rows), count()))
        moved: list[QModelIndex] = []
        for index in indexes:
            at = index.row()
            if at >= len(old):
                at -= len(old)
            elif at < 0:
                at = -1
            elif where:
                at = where.get(id(old[at]), -1)
            else:
                at = shown.index_of(old[at], order, descending)
            moved.append(self.createIndex(at, index.column()) if at >= 0 else QModelIndex())
        return moved

    # ---- reading -------------------------------------------------------------------------

    def document(self, row: int) -> dict[str, Any]:
        """The document shown at `row`."""
        return self._rows[row].doc

    def row(self, row: int) -> Row:
        """The row shown at `row`."""
        return self._rows[row]

    def documents(self) -> list[dict[str, Any]]:
        """Every document held (also those the filter hides), in the table's order."""
        return [r.doc for r in self._held.rows]

    def rows(self) -> list[Row]:
        """Every row held (also those the filter hides), in the table's order (the list
        itself: do not change it)."""
        return self._held.rows

    def shown_runs_of(self, paths: Collection[str]) -> list[tuple[int, int]]:
        """(first, last) of each run of rows shown whose paths are among `paths`."""
        return _runs_of([i for i, r in enumerate(self._rows) if r.doc["path"] in paths])

    def index(
        self, row: int, column: int, parent: QModelIndex | QPersistentModelIndex = _ROOT
    ) -> QModelIndex:
        # One Python call where Qt's own makes two (`rowCount` and `columnCount`, through
        # `hasIndex`): Qt asks for an index for each cell it paints and each row a selection
        # follows through a layout change.
        if 0 <= row < len(self._rows) and 0 <= column < len(COLUMNS) and not parent.isValid():
            return self.createIndex(row, column)
        return QModelIndex()

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


class DocumentFilter(QIdentityProxyModel):
    """Filters by status (None: all) and by a text found in the path or the title.

    It decides, and its source model (a `DocumentTableModel`, whose filter it becomes)
    applies the decision to its own rows: every row at once in one pass of plain Python when
    the status or the text changes (`select`), and each row a status report changes
    (`accepts`).  Rows pass through this proxy one to one, so Qt calls no Python per row: a
    `QSortFilterProxyModel` calls `filterAcceptsRow` for every row each time its filter
    changes, and once more for every row after each re-sort.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._status: str | None = None
        self._text = ""
        self._rows_of: DocumentTableModel | None = None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sorting happens in the source model (fast, precomputed keys); rows keep its order."""
        if self._rows_of is not None:
            self._rows_of.sort(column, order)

    def set_status(self, status: str | None) -> None:
        if status != self._status:
            narrower = self._status is None  # one status out of all: no row comes
            self._status = status
            self.refilter(narrower)

    def set_text(self, text: str) -> None:
        text = text.strip().lower()
        if text != self._text:
            narrower = self._text in text  # finds no row the previous text did not
            self._text = text
            self.refilter(narrower)

    def is_filtering(self) -> bool:
        return self._status is not None or bool(self._text)

    def refilter(self, narrower: bool = False) -> None:
        """Decide every row again (`narrower`: only rows shown now can be accepted now)."""
        if self._rows_of is not None:
            self._rows_of.set_filter(self if self.is_filtering() else None, narrower)

    def setSourceModel(self, model: Any) -> None:
        if self._rows_of is not None:
            self._rows_of.set_filter(None)
        super().setSourceModel(model)
        self._rows_of = model if isinstance(model, DocumentTableModel) else None
        if self.is_filtering():
            self.refilter()

    def accepts(self, row: Row) -> bool:
        """Whether `row` is shown (asked of each row a status report changes)."""
        return self._accepts(row)

    def select(self, rows: list[Row]) -> list[Row]:
        """The rows of `rows` that are shown, in their order: one comprehension, its test
        inlined (a method call per row would double the cost)."""
        status, text = self._status, self._text
        if not text:
            if status is None:
                return list(rows)
            return [r for r in rows if r.doc.get("status") == status]
        if status is None:
            return [r for r in rows if text in (r.haystack or _haystack(r.doc))]
        return [
            r
            for r in rows
            if r.doc.get("status") == status and text in (r.haystack or _haystack(r.doc))
        ]

    def _accepts(self, row: Row) -> bool:
        if self._status is not None and row.doc.get("status") != self._status:
            return False
        return not self._text or self._text in (row.haystack or _haystack(row.doc))


def _haystack(doc: dict[str, Any]) -> str:
    return f"{doc['path']}\n{doc.get('title') or ''}".lower()
