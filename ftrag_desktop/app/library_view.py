"""The Library tab: watched folders, every document's status, live indexing progress.

It talks only to the `AppController`: commands go out through `add_folder`, `remove_folder`,
`pause_folder`, `rescan` and `retry`; what happens comes back through `library_event` (the
library service's events, delivered on the GUI thread) and `status_loaded` (`Engine.status()`,
computed on a worker).  The document table is refreshed after each finished sync and at most
every `STATUS_REFRESH_MS` while indexing runs, never once per event, so that a large first
index does not flood the GUI thread with table rebuilds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPointF,
    QRectF,
    QSize,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QIcon, QPainter, QPalette, QPixmap, QPolygonF
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QFileDialog,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QStyle,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.events import (
    EmbeddingProgress,
    FileFailed,
    FileIndexed,
    FileRemoved,
    FileRenamed,
    FileStarted,
    Notice,
    SyncFinished,
    SyncProgress,
    SyncStarted,
)
from ftrag_desktop.core.service import LibraryChanged, ServiceError, ServiceIdle

STATUS_REFRESH_MS = 2000  # at most one status reload this often while indexing runs
STATUS_SOON_MS = 150  # after a sync finished: soon, but coalescing a burst of events
STATUS_STALE_S = 30.0  # a reload that never answered (it failed and was logged) is forgotten

KEYWORD_ONLY_PREFIX = "keyword search only"
DEFAULT_EMBED_MODEL = "nomic-embed-text"

STATUS_LABELS = {"indexed": "Indexed", "failed": "Failed", "pending": "Pending"}
STATUS_COLORS = {"indexed": "#2e9d57", "failed": "#d64541", "pending": "#d99a1e"}

COL_NAME, COL_STATUS, COL_PAGES, COL_CHUNKS, COL_SIZE, COL_FOLDER, COL_REASON = range(7)
COLUMNS = ("Name", "Status", "Pages", "Chunks", "Size", "Folder", "Reason")

_ROOT = QModelIndex()  # the invisible root: the parent of every row

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
PATH_ROLE = Qt.ItemDataRole.UserRole + 2
STATUS_ROLE = Qt.ItemDataRole.UserRole + 3


# ---- formatting -------------------------------------------------------------------------


def human_size(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def human_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return "almost done"
    if seconds < 60:
        return f"about {int(seconds + 0.5)} s left"
    if seconds < 3600:
        return f"about {int(seconds / 60 + 0.5)} min left"
    hours, rest = divmod(int(seconds), 3600)
    return f"about {hours} h {rest // 60} min left"


def short_folder(path: str) -> str:
    """The folder shown to people: the home directory as `~`."""
    home = str(Path.home())
    if path == home or path.startswith(home + "/") or path.startswith(home + "\\"):
        return "~" + path[len(home) :]
    return path


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


def _glyph_icon(kind: str, color: QColor, size: int = 16) -> QIcon:
    """A crisp pause (two bars) or play (triangle) glyph in the palette's text colour.

    The style's own media icons are black on every palette: unreadable on a dark one.
    """
    scale = 2
    pix = QPixmap(size * scale, size * scale)
    pix.setDevicePixelRatio(scale)
    pix.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pix)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(color)
    unit = size / 16
    if kind == "pause":
        painter.drawRoundedRect(QRectF(4 * unit, 3 * unit, 3 * unit, 10 * unit), unit, unit)
        painter.drawRoundedRect(QRectF(9 * unit, 3 * unit, 3 * unit, 10 * unit), unit, unit)
    else:
        painter.drawPolygon(
            QPolygonF(
                [
                    QPointF(5 * unit, 3 * unit),
                    QPointF(13 * unit, 8 * unit),
                    QPointF(5 * unit, 13 * unit),
                ]
            )
        )
    painter.end()
    return QIcon(pix)


def _is_dark(widget: QWidget) -> bool:
    return widget.palette().color(QPalette.ColorRole.Window).lightness() < 128


# ---- the document table -----------------------------------------------------------------


class Row(NamedTuple):
    """One document, with everything the table shows precomputed (off the GUI thread)."""

    doc: dict[str, Any]
    display: tuple[str, ...]
    keys: tuple[Any, ...]
    tooltip: str


def folder_label(path: str, roots: list[str]) -> str:
    """A document's folder named from its watched root (the deepest root wins)."""
    parent = Path(path).parent
    for root in sorted(roots, key=len, reverse=True):
        if parent.is_relative_to(root):
            rel = parent.relative_to(root).as_posix()
            name = Path(root).name or root
            return name if rel == "." else f"{name}/{rel}"
    return short_folder(str(parent))


def folder_counts(docs: list[dict[str, Any]], folders: list[str]) -> dict[str, tuple[int, int]]:
    """(documents, failed) per watched folder; pure, so it runs on a worker."""
    counts: dict[str, tuple[int, int]] = {}
    for folder in folders:
        prefix = folder.rstrip("/\\")
        mine = [d for d in docs if str(d["path"]).startswith((prefix + "/", prefix + "\\"))]
        counts[folder] = (len(mine), sum(1 for d in mine if d.get("status") == "failed"))
    return counts


def prepare_rows(docs: list[dict[str, Any]], roots: list[str]) -> list[Row]:
    """Display strings and sort keys for every document; pure, so it runs on a worker."""
    order = {"failed": 0, "pending": 1, "indexed": 2}
    rows = []
    for doc in docs:
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
            f"{order.get(status, 3)}{name.lower()}",
            int(doc.get("pages") or 0),
            int(doc.get("chunks") or 0),
            int(doc.get("size") or 0),
            display[COL_FOLDER].lower(),
            display[COL_REASON].lower(),
        )
        title = str(doc.get("title") or "")
        tooltip = f"{path}\n{title}" if title and title != Path(path).stem else path
        rows.append(Row(doc, display, keys, tooltip))
    return rows


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

    def set_roots(self, roots: list[str]) -> None:
        self._roots = list(roots)

    def roots(self) -> list[str]:
        return list(self._roots)

    def folder_label(self, path: str) -> str:
        return folder_label(path, self._roots)

    def set_documents(self, docs: list[dict[str, Any]]) -> bool:
        """Prepare rows here (small lists and tests); the view prepares big ones on a worker."""
        return self.set_rows(prepare_rows(docs, self._roots))

    def set_rows(self, rows: list[Row]) -> bool:
        """Replace the rows; True when the set of paths changed (a reset, selection lost)."""
        rows = self._sorted(rows)
        same_rows = [r.doc["path"] for r in rows] == [r.doc["path"] for r in self._rows]
        if same_rows:
            self._rows = rows
            if rows:
                self.dataChanged.emit(self.index(0, 0), self.index(len(rows) - 1, len(COLUMNS) - 1))
            return False
        self.beginResetModel()
        self._rows = rows
        self.endResetModel()
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
        self._rows = self._sorted(self._rows)
        self.layoutChanged.emit()

    def document(self, row: int) -> dict[str, Any]:
        return self._rows[row].doc

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

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        model = self.sourceModel()
        assert isinstance(model, DocumentTableModel)
        doc = model.document(source_row)
        if self._status is not None and doc.get("status") != self._status:
            return False
        if self._text:
            haystack = f"{doc['path']}\n{doc.get('title') or ''}".lower()
            return self._text in haystack
        return True


# ---- the view ---------------------------------------------------------------------------


class LibraryView(QWidget):
    """The Library tab.  Emits `document_activated(path)` when a document is double-clicked."""

    document_activated = Signal(str)

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("library-view")
        self._controller = controller
        self._folders_list: list[str] = []
        self._paused: set[str] = set()
        self._status: dict[str, Any] = {}
        self._keyword_reason = ""
        self._status_seq = 0
        self._counts: dict[str, tuple[int, int]] = {}
        self._indexing = False
        self._run_failures = 0
        self._status_inflight_since: float | None = None
        self._status_dirty = False
        self._status_timer = QTimer(self)
        self._status_timer.setSingleShot(True)
        self._status_timer.timeout.connect(self._on_status_timer_timeout)
        self._build()
        self._restyle()

        controller.library_event.connect(self._on_controller_library_event)
        controller.status_loaded.connect(self._on_controller_status_loaded)
        controller.engine_ready.connect(self._on_controller_engine_ready)
        if controller.engine is not None:  # created after the library opened
            self._on_controller_engine_ready(controller.engine)
            self._schedule_status(0)

    # ---- layout ----------------------------------------------------------------------

    def _build(self) -> None:
        style = self.style()
        root = QVBoxLayout(self)
        root.setContentsMargins(12, 12, 12, 12)
        root.setSpacing(10)

        # Keyword-only banner and the error line: hidden until needed.
        self._banner = QFrame()
        self._banner.setObjectName("keyword-banner")
        banner_row = QHBoxLayout(self._banner)
        banner_row.setContentsMargins(12, 10, 12, 10)
        banner_icon = QLabel()
        banner_icon.setPixmap(
            style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxInformation).pixmap(24, 24)
        )
        banner_icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self._banner_label = QLabel()
        self._banner_label.setWordWrap(True)
        self._banner_label.setTextFormat(Qt.TextFormat.RichText)
        self._banner_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._banner_rescan = QPushButton("Rescan now")
        self._banner_rescan.setToolTip("Compute the missing vectors now (files are not re-read)")
        self._banner_rescan.clicked.connect(self._on_banner_rescan_clicked)
        banner_row.addWidget(banner_icon)
        banner_row.addWidget(self._banner_label, 1)
        banner_row.addWidget(self._banner_rescan, 0, Qt.AlignmentFlag.AlignVCenter)
        self._banner.hide()
        root.addWidget(self._banner)

        self._error = QFrame()
        self._error.setObjectName("error-line")
        error_row = QHBoxLayout(self._error)
        error_row.setContentsMargins(12, 8, 8, 8)
        error_icon = QLabel()
        error_icon.setPixmap(
            style.standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(20, 20)
        )
        self._error_label = QLabel()
        self._error_label.setWordWrap(True)
        self._error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setAutoRaise(True)
        close.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_TitleBarCloseButton))
        close.setToolTip("Dismiss")
        close.clicked.connect(self._error.hide)
        error_row.addWidget(error_icon, 0, Qt.AlignmentFlag.AlignTop)
        error_row.addWidget(self._error_label, 1)
        error_row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self._error.hide()
        root.addWidget(self._error)

        top = QHBoxLayout()
        top.setSpacing(10)
        top.addWidget(self._build_folders(), 3)
        top.addWidget(self._build_progress(), 2)
        root.addLayout(top)
        root.addWidget(self._build_documents(), 1)

    def _build_folders(self) -> QGroupBox:
        style = self.style()
        box = QGroupBox("Watched folders")
        row = QHBoxLayout(box)
        self._folder_list = QListWidget()
        self._folder_list.setObjectName("folder-list")
        self._folder_list.setMinimumHeight(96)
        self._folder_list.setMaximumHeight(150)
        self._folder_list.setUniformItemSizes(True)
        self._folder_list.setIconSize(QSize(28, 28))
        self._folder_list.setSpacing(2)
        self._folder_list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self._folder_list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self._folder_list.currentRowChanged.connect(self._on_folder_list_current_row_changed)
        row.addWidget(self._folder_list, 1)

        buttons = QVBoxLayout()
        buttons.setSpacing(6)
        self._add_button = QPushButton("Add folder…")
        self._add_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_FileDialogNewFolder))
        self._add_button.clicked.connect(self._on_add_button_clicked)
        self._remove_button = QPushButton("Remove")
        self._remove_button.setIcon(
            style.standardIcon(QStyle.StandardPixmap.SP_DialogDiscardButton)
        )
        self._remove_button.setToolTip("Stop watching; the files stay on disk")
        self._remove_button.clicked.connect(self._on_remove_button_clicked)
        self._pause_button = QPushButton("Pause")
        self._pause_button.setToolTip("Stop indexing changes in this folder until resumed")
        self._pause_button.clicked.connect(self._on_pause_button_clicked)
        self._rescan_button = QPushButton("Rescan now")
        self._rescan_button.setIcon(style.standardIcon(QStyle.StandardPixmap.SP_BrowserReload))
        self._rescan_button.setToolTip("Look for changes now (the selected folder, or all)")
        self._rescan_button.clicked.connect(self._on_rescan_button_clicked)
        for button in (
            self._add_button,
            self._remove_button,
            self._pause_button,
            self._rescan_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)
        row.addLayout(buttons)
        return box

    def _build_progress(self) -> QGroupBox:
        box = QGroupBox("Indexing")
        col = QVBoxLayout(box)
        col.setSpacing(4)
        self._state_label = QLabel("Opening the library…")
        font = self._state_label.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self._state_label.setFont(font)
        self._progress = QProgressBar()
        self._progress.setTextVisible(False)
        self._progress.setMaximumHeight(10)
        self._progress.setRange(0, 0)
        self._progress.hide()
        self._detail_label = QLabel("")  # "12 of 150 files · 2.3 files/s · about 1 min left"
        self._current_label = QLabel("")
        self._current_label.setMinimumWidth(40)
        self._failures_label = QLabel("")
        self._failures_label.setTextFormat(Qt.TextFormat.RichText)
        self._failures_label.linkActivated.connect(self._on_failures_label_link_activated)
        self._failures_label.hide()
        self._notice_label = QLabel("")
        self._notice_label.setWordWrap(True)
        self._notice_label.hide()
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Plain)
        line.setStyleSheet("color: palette(mid);")
        self._index_label = QLabel("")
        self._index_label.setWordWrap(True)
        self._model_label = QLabel("")
        self._model_label.setWordWrap(True)
        for widget in (
            self._state_label,
            self._progress,
            self._detail_label,
            self._current_label,
            self._failures_label,
            self._notice_label,
        ):
            col.addWidget(widget)
        col.addStretch(1)
        col.addWidget(line)
        col.addWidget(self._index_label)
        col.addWidget(self._model_label)
        return box

    def _build_documents(self) -> QGroupBox:
        box = QGroupBox("Documents")
        col = QVBoxLayout(box)
        bar = QHBoxLayout()
        bar.setSpacing(6)
        self._filter_group = QButtonGroup(self)
        self._filter_group.setExclusive(True)
        self._filter_buttons: dict[str | None, QPushButton] = {}
        for key, label in ((None, "All"), ("failed", "Failed"), ("pending", "Pending")):
            button = QPushButton(label)
            button.setCheckable(True)
            button.setChecked(key is None)
            button.setProperty("filter_key", key or "")
            self._filter_group.addButton(button)
            self._filter_buttons[key] = button
            bar.addWidget(button)
        self._filter_group.buttonClicked.connect(self._on_filter_group_button_clicked)
        bar.addSpacing(8)
        self._search = QLineEdit()
        self._search.setPlaceholderText("Find in list (name, folder or title)")
        self._search.setClearButtonEnabled(True)
        self._search.textChanged.connect(self._on_search_text_changed)
        bar.addWidget(self._search, 1)
        self._retry_button = QPushButton("Retry failed")
        self._retry_button.setIcon(
            self.style().standardIcon(QStyle.StandardPixmap.SP_DialogRetryButton)
        )
        self._retry_button.setEnabled(False)
        self._retry_button.clicked.connect(self._on_retry_button_clicked)
        bar.addWidget(self._retry_button)
        col.addLayout(bar)

        self._model = DocumentTableModel(self)
        self._proxy = DocumentFilter(self)
        self._proxy.setSourceModel(self._model)
        self._table = QTableView()
        self._table.setObjectName("document-table")
        self._table.setModel(self._proxy)
        self._table.setSortingEnabled(True)
        self._table.sortByColumn(COL_NAME, Qt.SortOrder.AscendingOrder)
        self._table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self._table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self._table.setAlternatingRowColors(True)
        self._table.setShowGrid(False)
        self._table.setWordWrap(False)
        self._table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self._table.verticalHeader().hide()
        self._table.verticalHeader().setDefaultSectionSize(self._table.fontMetrics().height() + 10)
        header = self._table.horizontalHeader()
        header.setHighlightSections(False)
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        metrics = self._table.fontMetrics()
        widths = {
            COL_NAME: 40,
            COL_STATUS: 11,
            COL_PAGES: 7,
            COL_CHUNKS: 8,
            COL_SIZE: 10,
            COL_FOLDER: 20,
        }
        for column, chars in widths.items():
            header.resizeSection(column, metrics.averageCharWidth() * chars + 16)
        self._table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self._table.customContextMenuRequested.connect(self._on_table_custom_context_menu_requested)
        self._table.doubleClicked.connect(self._on_table_double_clicked)
        self._table.selectionModel().selectionChanged.connect(self._on_table_selection_changed)

        self._empty = QLabel(
            "<p style='font-size:large'><b>No documents yet</b></p>"
            "<p>Add a folder to watch, or drop files on the window.<br>"
            "Every PDF, Word, Markdown, HTML and text file in it is indexed,<br>"
            "and kept up to date as you change them.</p>"
        )
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setTextFormat(Qt.TextFormat.RichText)
        self._stack = QStackedWidget()
        self._stack.addWidget(self._empty)
        self._stack.addWidget(self._table)
        col.addWidget(self._stack, 1)
        self._update_buttons()
        return box

    def _restyle(self) -> None:
        """Banner colours that read well on both light and dark palettes."""
        if _is_dark(self):
            banner = "background:#3a3320; border:1px solid #7a6a30; border-radius:6px;"
            error = "background:#432626; border:1px solid #8a3b3b; border-radius:6px;"
        else:
            banner = "background:#fff6dc; border:1px solid #e6cf86; border-radius:6px;"
            error = "background:#fdecec; border:1px solid #e4a3a3; border-radius:6px;"
        self._banner.setStyleSheet(f"QFrame#keyword-banner {{{banner}}}")
        self._error.setStyleSheet(f"QFrame#error-line {{{error}}}")

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            self._restyle()
            self._update_buttons()
        super().changeEvent(event)

    # ---- controller signals ----------------------------------------------------------

    def _on_controller_engine_ready(self, _engine: object) -> None:
        self._set_folders(self._controller.watched_folders(), sorted(self._paused))
        if not self._indexing:
            self._state_label.setText("Checking for changes…")
        # The controller reloads the status itself right after `engine_ready`.

    def _on_controller_library_event(self, event: object) -> None:
        if isinstance(event, LibraryChanged):
            self._set_folders(list(event.folders), list(event.paused))
            if not event.folders and not self._indexing:
                self._state_label.setText("No folders watched yet")
                self._detail_label.setText("Add a folder to start indexing.")
            self._schedule_status(STATUS_SOON_MS)
        elif isinstance(event, SyncStarted):
            self._on_sync_started(event)
        elif isinstance(event, FileStarted):
            self._show_current(event.path)
        elif isinstance(event, SyncProgress):
            self._on_sync_progress(event)
        elif isinstance(event, FileFailed):
            self._run_failures += 1
            self._show_failures()
            self._schedule_status(STATUS_REFRESH_MS)
        elif isinstance(event, (FileIndexed, FileRemoved, FileRenamed)):
            self._schedule_status(STATUS_REFRESH_MS)
        elif isinstance(event, EmbeddingProgress):
            self._set_indexing(True)
            self._state_label.setText("Computing vectors")
            self._progress.setRange(0, max(event.total, 1))
            self._progress.setValue(event.done)
            self._detail_label.setText(
                f"computing vectors: {event.done:,}/{event.total:,} passages ({event.model})"
            )
            self._show_current("")
        elif isinstance(event, Notice):
            self._on_notice(event.text)
        elif isinstance(event, SyncFinished):
            self._on_sync_finished(event)
        elif isinstance(event, ServiceIdle):
            self._on_service_idle()
        elif isinstance(event, ServiceError):
            self._show_error(event.message)

    def _on_sync_started(self, event: SyncStarted) -> None:
        if not self._indexing:  # a new run: failures are counted afresh
            self._run_failures = 0
            self._failures_label.hide()
            self._notice_label.hide()
        self._set_indexing(True)
        name = Path(event.root).name or event.root
        if event.to_index:
            self._state_label.setText(f"Indexing {name}")
            self._progress.setRange(0, event.to_index)
            self._progress.setValue(0)
            self._detail_label.setText(f"0 of {event.to_index:,} files")
        else:
            self._state_label.setText(f"Checking {name}")
            self._progress.setRange(0, 0)  # busy indicator
            self._detail_label.setText(f"{event.unchanged:,} files unchanged")
        self._show_current("")

    def _on_sync_progress(self, event: SyncProgress) -> None:
        self._set_indexing(True)
        self._progress.setRange(0, max(event.total, 1))
        self._progress.setValue(event.done)
        parts = [f"{event.done:,} of {event.total:,} files"]
        if event.files_per_s > 0:
            parts.append(f"{event.files_per_s:.1f} files/s")
        eta = human_eta(event.eta_s) if event.done < event.total else ""
        if eta:
            parts.append(eta)
        self._detail_label.setText(" · ".join(parts))
        self._show_current(event.current)

    def _on_sync_finished(self, event: SyncFinished) -> None:
        summary = event.summary
        parts = []
        if summary.indexed:
            parts.append(f"{summary.indexed:,} indexed")
        if summary.removed:
            parts.append(f"{summary.removed:,} removed")
        if summary.renamed:
            parts.append(f"{summary.renamed:,} renamed")
        if summary.failed:
            parts.append(f"{summary.failed:,} failed")
        if summary.embedded:
            parts.append(f"{summary.embedded:,} vectors computed")
        name = Path(summary.root).name or summary.root
        verb = "stopped" if summary.cancelled else "done"
        what = ", ".join(parts) if parts else "no changes"
        self._detail_label.setText(f"{name}: {verb} ({what}) in {summary.seconds:.1f} s")
        self._show_current("")
        if summary.embedding == "semantic":
            self._keyword_reason = ""
        self._schedule_status(STATUS_SOON_MS)

    def _on_service_idle(self) -> None:
        self._set_indexing(False)
        self._show_current("")
        paused = len(self._paused)
        if not self._folders_list:
            self._state_label.setText("No folders watched yet")
        else:
            self._state_label.setText(
                "Up to date"
                + (f" · {paused} folder{'s' if paused > 1 else ''} paused" if paused else "")
            )
        self._schedule_status(STATUS_SOON_MS)

    def _on_notice(self, text: str) -> None:
        if text.startswith(KEYWORD_ONLY_PREFIX):
            self._keyword_reason = text[len(KEYWORD_ONLY_PREFIX) :].lstrip(": ").strip()
            self._update_banner()
            return
        self._notice_label.setText(text)
        self._notice_label.show()

    def _on_controller_status_loaded(self, status: dict[str, Any]) -> None:
        # The rows (display strings, sort keys) are prepared on a worker: with thousands of
        # documents that is tens of milliseconds the GUI thread must not spend.
        self._status_seq += 1
        seq, roots = self._status_seq, self._model.roots()
        docs: list[dict[str, Any]] = list(status.get("documents") or [])
        folders = list(self._folders_list)
        run_in_background(
            lambda: (prepare_rows(docs, roots), folder_counts(docs, folders)),
            on_done=lambda result: self._on_rows_prepared(seq, status, result),
            owner=self,
        )

    def _on_rows_prepared(self, seq: int, status: dict[str, Any], result: object) -> None:
        if seq != self._status_seq:
            return  # a newer status is on its way
        assert isinstance(result, tuple)
        rows, self._counts = result
        self._status_inflight_since = None
        self._status = status
        self._apply_status(status, rows)
        if self._status_dirty:
            self._status_dirty = False
            self._schedule_status(STATUS_REFRESH_MS if self._indexing else STATUS_SOON_MS)

    # ---- status refresh (coalesced and throttled) ------------------------------------

    def _schedule_status(self, delay_ms: int) -> None:
        """Reload `Engine.status()` after `delay_ms`, merging requests; one reload at a time."""
        inflight = self._status_inflight_since
        if inflight is not None and time.monotonic() - inflight < STATUS_STALE_S:
            self._status_dirty = True
            return
        if self._status_timer.isActive():
            if self._status_timer.remainingTime() <= delay_ms:
                return
            self._status_timer.stop()
        self._status_timer.start(delay_ms)

    def _on_status_timer_timeout(self) -> None:
        if self._controller.engine is None:
            return
        self._status_inflight_since = time.monotonic()
        self._controller.refresh_status()

    # ---- applying state --------------------------------------------------------------

    def _set_indexing(self, indexing: bool) -> None:
        self._indexing = indexing
        self._progress.setVisible(indexing)
        if not indexing:
            self._progress.setRange(0, 1)
            self._progress.setValue(1)

    def _show_current(self, path: str) -> None:
        self._current_label.setVisible(bool(path))
        if not path:
            self._current_label.setText("")
            return
        text = f"Now: {Path(path).name}"
        metrics = self._current_label.fontMetrics()
        width = max(self._current_label.width(), 200)
        self._current_label.setText(metrics.elidedText(text, Qt.TextElideMode.ElideMiddle, width))
        self._current_label.setToolTip(path)

    def _show_failures(self) -> None:
        n = self._run_failures
        color = STATUS_COLORS["failed"]
        files = "file" if n == 1 else "files"
        self._failures_label.setText(
            f"<span style='color:{color}'>{n} {files} could not be read</span>"
            " · <a href='failed'>show</a>"
        )
        self._failures_label.setVisible(n > 0)

    def _show_error(self, message: str) -> None:
        self._error_label.setText(message)
        self._error.show()

    def _set_folders(self, folders: list[str], paused: list[str]) -> None:
        current = self.selected_folder()
        self._folders_list = list(folders)
        self._model.set_roots(self._folders_list)
        self._paused = set(paused)
        counts = self._folder_counts()
        style = self.style()
        self._folder_list.clear()
        for folder in folders:
            is_paused = folder in self._paused
            total, failed = counts.get(folder, (0, 0))
            extra = []
            if total:
                extra.append(f"{total:,} documents")
            if failed:
                extra.append(f"{failed:,} failed")
            if is_paused:
                extra.append("paused")
            name = Path(folder).name or folder
            label = name + (f"  ·  {', '.join(extra)}" if extra else "")
            label += f"\n{short_folder(folder)}"
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, folder)
            item.setToolTip(folder + ("\nPaused: changes are not indexed" if is_paused else ""))
            item.setIcon(
                _glyph_icon("pause", QColor(STATUS_COLORS["pending"]), 28)
                if is_paused
                else style.standardIcon(QStyle.StandardPixmap.SP_DirIcon)
            )
            if is_paused:
                item.setForeground(
                    self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
                )
            self._folder_list.addItem(item)
            if folder == current:
                self._folder_list.setCurrentItem(item)
        if self._folder_list.currentRow() < 0 and folders:
            self._folder_list.setCurrentRow(0)
        self._update_buttons()

    def _folder_counts(self) -> dict[str, tuple[int, int]]:
        """Documents and failures per folder, as counted on the worker with the last status."""
        return {f: self._counts.get(f, (0, 0)) for f in self._folders_list}

    def _apply_status(self, status: dict[str, Any], rows: list[Row]) -> None:
        docs: list[dict[str, Any]] = list(status.get("documents") or [])
        selected = set(self.selected_paths())
        reset = self._model.set_rows(rows)
        if self._proxy.is_filtering() and not reset:
            self._proxy.refilter()  # statuses changed: a row may enter or leave the filter
        if reset and selected:
            self._select_paths(selected)
        self._stack.setCurrentWidget(self._table if docs else self._empty)

        counts = status.get("counts") or {}
        self._filter_buttons[None].setText(f"All ({len(docs):,})")
        self._filter_buttons["failed"].setText(f"Failed ({int(counts.get('failed', 0)):,})")
        self._filter_buttons["pending"].setText(f"Pending ({int(counts.get('pending', 0)):,})")

        size = human_size(int(status.get("index_bytes") or 0))
        chunks = int(status.get("chunks") or 0)
        self._index_label.setText(
            f"Index size: <b>{size}</b> · {len(docs):,} documents · {chunks:,} passages"
        )
        model = str(status.get("embedding_model") or "")
        search = str(status.get("search") or "")
        if model:
            dim = status.get("embedding_dim")
            dims = f" ({dim} dimensions)" if dim else ""
            text = f"Embedding model: <b>{model}</b>{dims}<br>Search: {search}"
        elif not docs:
            configured = _escape(str(status.get("configured_embedding_model") or "none"))
            text = f"Embedding model: <b>{configured}</b> (used once documents are added)"
        else:
            text = f"Embedding model: <b>none</b><br>Search: {search or KEYWORD_ONLY_PREFIX}"
        building = status.get("building_model")
        if building:
            missing = int(status.get("vectors_missing") or 0)
            text += f"<br>Adding vectors for <b>{building}</b> ({missing:,} to go)"
        self._model_label.setText(text)

        self._set_folders(self._folders_list, sorted(self._paused))
        self._update_banner()
        self._update_buttons()

    def _update_banner(self) -> None:
        status = self._status
        keyword_only = str(status.get("search", "")).startswith(KEYWORD_ONLY_PREFIX)
        has_docs = bool((status.get("counts") or {}).get("indexed", 0))
        show = keyword_only and (has_docs or bool(self._keyword_reason))
        if not show:
            self._banner.hide()
            return
        configured = str(status.get("configured_embedding_model") or "")
        model = _escape(configured or DEFAULT_EMBED_MODEL)
        reason = self._keyword_reason or "no embedding model is available"
        reason = reason[0].upper() + reason[1:]
        if not reason.endswith("."):
            reason += "."
        pull = f"install Ollama, then run <code>ollama pull {model}</code>"
        how = pull if configured else f"choose an embedding model in Settings ({pull})"
        self._banner_label.setText(
            f"<b>Keyword search only</b> — {_escape(reason)} "
            "Search matches your exact words, not their meaning.<br>"
            f"<b>To enable semantic search:</b> {how}. "
            "Vectors are added automatically, without re-reading your files."
        )
        self._banner.show()

    def _update_buttons(self) -> None:
        folder = self.selected_folder()
        has_folder = folder is not None
        self._remove_button.setEnabled(has_folder)
        self._pause_button.setEnabled(has_folder)
        paused = folder in self._paused if folder else False
        self._pause_button.setText("Resume" if paused else "Pause")
        color = self.palette().color(QPalette.ColorRole.ButtonText)
        self._pause_button.setIcon(_glyph_icon("play" if paused else "pause", color))
        self._rescan_button.setEnabled(bool(self._folders_list))
        failed_selected = self._selected_failed()
        any_failed = int((self._status.get("counts") or {}).get("failed", 0)) > 0
        self._retry_button.setText(
            f"Retry selected ({len(failed_selected)})" if failed_selected else "Retry all failed"
        )
        self._retry_button.setEnabled(bool(failed_selected) or any_failed)

    # ---- selection helpers -----------------------------------------------------------

    def selected_folder(self) -> str | None:
        item = self._folder_list.currentItem()
        return str(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def selected_paths(self) -> list[str]:
        rows = self._table.selectionModel().selectedRows()
        return [str(index.data(PATH_ROLE)) for index in rows]

    def _selected_failed(self) -> list[str]:
        rows = self._table.selectionModel().selectedRows()
        return [str(i.data(PATH_ROLE)) for i in rows if i.data(STATUS_ROLE) == "failed"]

    def _select_paths(self, paths: set[str]) -> None:
        selection = self._table.selectionModel()
        for row in range(self._proxy.rowCount()):
            index = self._proxy.index(row, 0)
            if index.data(PATH_ROLE) in paths:
                selection.select(
                    index,
                    selection.SelectionFlag.Select | selection.SelectionFlag.Rows,
                )

    # ---- user actions ----------------------------------------------------------------

    def _on_add_button_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder to watch")
        if folder:
            self._controller.add_folder(folder)

    def _on_remove_button_clicked(self) -> None:
        folder = self.selected_folder()
        if folder is None:
            return
        answer = QMessageBox.question(
            self,
            "Remove folder",
            f"Stop watching {folder}?\n\n"
            "The files stay on disk; they leave the index, and answers will no longer "
            "cite them.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer == QMessageBox.StandardButton.Yes:
            self._controller.remove_folder(folder)
            self._after_current_scan("Removing")

    def _on_pause_button_clicked(self) -> None:
        folder = self.selected_folder()
        if folder is not None:
            self._controller.pause_folder(folder, folder not in self._paused)
            self._after_current_scan("Pausing")

    def _after_current_scan(self, what: str) -> None:
        """Commands wait for the scan that is running: say so instead of seeming ignored."""
        if self._indexing:
            self._on_notice(f"{what} when the current scan finishes…")

    def _on_rescan_button_clicked(self) -> None:
        self._controller.rescan(self.selected_folder())

    def _on_banner_rescan_clicked(self) -> None:
        self._controller.rescan(None)

    def _on_retry_button_clicked(self) -> None:
        paths = self._selected_failed() or [
            str(d["path"]) for d in self._model.documents() if d.get("status") == "failed"
        ]
        self.retry(paths)

    def retry(self, paths: list[str]) -> None:
        """Parse these files again (the Retry action)."""
        if paths:
            self._state_label.setText(f"Retrying {len(paths):,} files…")
            self._controller.retry(paths)

    def _on_folder_list_current_row_changed(self, _row: int) -> None:
        self._update_buttons()

    def _on_table_selection_changed(self, *_: object) -> None:
        self._update_buttons()

    def _on_table_double_clicked(self, index: QModelIndex) -> None:
        self.document_activated.emit(str(index.data(PATH_ROLE)))

    def _on_table_custom_context_menu_requested(self, pos: Any) -> None:
        failed = self._selected_failed()
        paths = self.selected_paths()
        if not paths:
            return
        menu = QMenu(self)
        retry = menu.addAction(f"Retry ({len(failed)})" if len(failed) > 1 else "Retry")
        retry.setEnabled(bool(failed))
        retry.triggered.connect(lambda: self.retry(failed))
        open_action = menu.addAction("Open")
        open_action.setEnabled(len(paths) == 1)
        open_action.triggered.connect(lambda: self.document_activated.emit(paths[0]))
        menu.exec(self._table.viewport().mapToGlobal(pos))

    def _on_filter_group_button_clicked(self, button: QPushButton) -> None:
        key = str(button.property("filter_key") or "") or None
        self._proxy.set_status(key)

    def _on_failures_label_link_activated(self, _link: str) -> None:
        self.set_filter("failed")

    def _on_search_text_changed(self, text: str) -> None:
        self._proxy.set_text(text)

    def set_filter(self, status: str | None) -> None:
        """Show all documents (None), or only "failed" or "pending" ones."""
        self._filter_buttons[status].setChecked(True)
        self._proxy.set_status(status)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


__all__ = ["DocumentFilter", "DocumentTableModel", "LibraryView", "human_eta", "human_size"]
