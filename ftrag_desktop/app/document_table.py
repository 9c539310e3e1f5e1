"""The Library's document table: prepared rows, a model that sorts itself, and a filter.

`prepare_row` turns one of `Engine.status()`'s documents into display strings and sort keys
(pure and quick, so the view can prepare thousands in small slices); `DocumentTableModel`
shows them and sorts itself by those keys; and `DocumentFilter` narrows them by status and by
text.
"""

from __future__ import annotations

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
# Beyond this many runs of rows to remove and insert, one reset is cheaper (each run costs
# the filter proxy and the view a pass over all rows; measured on 5,000 rows).
MAX_MOVES = 16


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
        self._positions: dict[str, int] | None = None  # see `_index_of`

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
        that views repaint only those.  Rows that came or went are removed and inserted in
        place, so that the filter looks at those rows only and the view keeps its selection
        and scroll position: a reset makes the filter look at every row again and the view lay
        everything out afresh, which under a stream of changes (a watched folder being
        reorganised) cost the GUI thread tens of milliseconds per status report.
        """
        if changed is not None and self._replace_in_place(rows, changed):
            return False
        rows = self._sorted(rows)
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

    def _replace_in_place(self, rows: list[Row], changed: set[str]) -> bool:
        """The common report while a folder is indexed: the same documents, a few of them
        with a new status.  Those rows are swapped where they are, without sorting or
        comparing all rows; False, having changed nothing, when rows came, went or move."""
        if len(rows) != len(self._rows) or len(changed) > len(rows) // 4:
            return False
        index_of = self._index_of()
        col = self._sort_col
        updates: list[tuple[int, Row]] = []
        for row in rows:
            path = row.doc["path"]
            if path not in changed:
                continue
            at = index_of.get(path)
            if at is None or self._rows[at].keys[col] != row.keys[col]:
                return False  # a new document, or one whose place in the order changes
            updates.append((at, row))
        for at, row in updates:
            self._rows[at] = row
        if updates:
            first = min(at for at, _ in updates)
            last = max(at for at, _ in updates)
            self.dataChanged.emit(self.index(first, 0), self.index(last, len(COLUMNS) - 1))
        return True

    def _index_of(self) -> dict[str, int]:
        """Row number by path, kept until the rows are reordered, added or removed."""
        if self._positions is None:
            self._positions = {r.doc["path"]: i for i, r in enumerate(self._rows)}
        return self._positions

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

    def _sorted(self, rows: list[Row]) -> list[Row]:
        col = self._sort_col
        reverse = self._sort_order == Qt.SortOrder.DescendingOrder
        return sorted(rows, key=lambda r: r.keys[col], reverse=reverse)

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
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return row.display[col]
        if role == SORT_ROLE:
            return row.keys[col]
        if role == PATH_ROLE:
            return str(row.doc["path"])
        status = str(row.doc.get("status", ""))
        if role == STATUS_ROLE:
            return status
        if role == Qt.ItemDataRole.DecorationRole and col == COL_STATUS:
            return self._icon(status)
        if role == Qt.ItemDataRole.ToolTipRole:
            error = row.doc.get("error")
            return str(error) if col == COL_REASON and error else row.tooltip
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (COL_PAGES, COL_CHUNKS, COL_SIZE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and col == COL_REASON and status == "failed":
            return QColor(STATUS_COLORS["failed"])
        return None


class DocumentFilter(QSortFilterProxyModel):
    """Filters by status (None: all) and by a text found in the path or the title."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._status: str | None = None
        self._text = ""
        self._rows_of: DocumentTableModel | None = None
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(False)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sorting happens in the source model (fast, precomputed keys); rows keep its order."""
        model = self.sourceModel()
        if isinstance(model, DocumentTableModel):
            model.sort(column, order)

    def set_status(self, status: str | None) -> None:
        self.beginFilterChange()
        self._status = status
        self.endFilterChange()

    def is_filtering(self) -> bool:
        return self._status is not None or bool(self._text)

    def refilter(self) -> None:
        self.beginFilterChange()
        self.endFilterChange()

    def set_text(self, text: str) -> None:
        self.beginFilterChange()
        self._text = text.strip().lower()
        self.endFilterChange()

    def setSourceModel(self, model: Any) -> None:
        super().setSourceModel(model)
        self._rows_of = model if isinstance(model, DocumentTableModel) else None

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        # Called once per row on every filter change: kept to a few attribute lookups.
        if self._status is None and not self._text:
            return True
        model = self._rows_of
        assert model is not None
        row = model.row(source_row)
        if self._status is not None and row.doc.get("status") != self._status:
            return False
        return not self._text or self._text in (row.haystack or _haystack(row.doc))


def _haystack(doc: dict[str, Any]) -> str:
    return f"{doc['path']}\n{doc.get('title') or ''}".lower()
