"""The Library tab: watched folders, every document's status, live indexing progress.

It talks only to the `AppController`: commands go out through `add_folder`, `remove_folder`,
`pause_folder`, `rescan` and `retry`; what happens comes back through `library_event` (the
library service's events, delivered on the GUI thread) and `status_loaded` (a `StatusReport`
computed in the library process: the summary and only the documents changed since the last
report).  A report is asked for after each finished sync and at most every `STATUS_REFRESH_MS`
while indexing runs, never once per event; the rows of its documents are prepared here in slices
of a few milliseconds, so even a first report of 100,000 documents never stalls the GUI thread.

The view owns that traffic and the document list's filters; its panels are their own modules:
folder_panel (the watched folders and their buttons), indexing_panel (progress and what the
index holds) and document_table (the documents' rows, model and filter).
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QPalette
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
    QMenu,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QStyle,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.controller import AppController
from ftrag_desktop.app.document_table import (
    COL_CHUNKS,
    COL_FOLDER,
    COL_NAME,
    COL_PAGES,
    COL_REASON,
    COL_SIZE,
    COL_STATUS,
    PATH_ROLE,
    STATUS_ROLE,
    DocumentFilter,
    DocumentTableModel,
    Row,
    prepare_row,
)
from ftrag_desktop.app.folder_panel import FolderPanel
from ftrag_desktop.app.formatting import escape, human_eta, human_size
from ftrag_desktop.app.heap import settle_young
from ftrag_desktop.app.indexing_panel import KEYWORD_ONLY_PREFIX, IndexingPanel
from ftrag_desktop.app.scrollbars import flatten
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
from ftrag_desktop.core.status_report import StatusReport

# The document table, its columns and the formatting helpers moved to their own modules; the
# names callers used stay importable from here.
__all__ = [
    "COL_REASON",
    "DocumentFilter",
    "DocumentTableModel",
    "LibraryView",
    "human_eta",
    "human_size",
]

STATUS_REFRESH_MS = 2000  # at most one status reload this often while indexing runs
STATUS_SOON_MS = 150  # after a sync finished: soon, but coalescing a burst of events
STATUS_STALE_S = 30.0  # a reload that never answered (it failed and was logged) is forgotten
ROW_SLICE_S = 0.004  # rows of a status report are prepared in slices this long
log = logging.getLogger(__name__)
TABLE_SLICE = 64  # changes given to the table per slice (at most ~130 runs: ~10 ms)
# Between slices.  Each slice is followed by a repaint of the table (15 ms, 30-40 ms under
# load), which with no gap made a catch-up a run of stalls: 27 over 50 ms in a churn run
# (bench/churn.py --gui), 10 with this gap (and 17 with slices of 128).
TABLE_GAP_MS = 50

DEFAULT_EMBED_MODEL = "nomic-embed-text"


def _is_dark(widget: QWidget) -> bool:
    return widget.palette().color(QPalette.ColorRole.Window).lightness() < 128


def _icon_label(style: QStyle, icon: QStyle.StandardPixmap, size: int) -> QLabel:
    label = QLabel()
    label.setPixmap(style.standardIcon(icon).pixmap(size, size))
    return label


def _message_label() -> QLabel:
    """A wrapping label whose text can be selected (and copied into a bug report)."""
    label = QLabel()
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


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
        self._counts: dict[str, tuple[int, int]] = {}
        self._rows: dict[str, Row] = {}  # by path: every document the library reported
        self._reports: collections.deque[StatusReport] = collections.deque()
        self._prepared: list[Row] = []  # rows of the first queued report, prepared so far
        self._unapplied: tuple[set[str], set[str]] | None = (set(), set())  # see _finish_report
        self._table_timer_armed = False  # `_update_table` will run again on its own
        self._preparing = False
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
        banner_icon = _icon_label(style, QStyle.StandardPixmap.SP_MessageBoxInformation, 24)
        banner_icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self._banner_label = _message_label()
        self._banner_label.setTextFormat(Qt.TextFormat.RichText)
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
        error_icon = _icon_label(style, QStyle.StandardPixmap.SP_MessageBoxWarning, 20)
        self._error_label = _message_label()
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

        self._folder_panel = FolderPanel()
        panel = self._folder_panel
        panel.list.currentRowChanged.connect(self._on_folder_list_current_row_changed)
        panel.add_button.clicked.connect(self._on_add_button_clicked)
        panel.remove_button.clicked.connect(self._on_remove_button_clicked)
        panel.pause_button.clicked.connect(self._on_pause_button_clicked)
        panel.rescan_button.clicked.connect(self._on_rescan_button_clicked)
        self._indexing_panel = IndexingPanel()
        self._indexing_panel.failures_label.linkActivated.connect(
            self._on_failures_label_link_activated
        )
        # The panels' widgets under the names the view had for them before the panels existed
        # (tests/test_app_library.py reads them).
        self._folder_list = panel.list
        self._add_button = panel.add_button
        self._remove_button = panel.remove_button
        self._pause_button = panel.pause_button
        self._state_label = self._indexing_panel.state_label
        self._failures_label = self._indexing_panel.failures_label
        self._index_label = self._indexing_panel.index_label
        self._model_label = self._indexing_panel.model_label

        top = QHBoxLayout()
        top.setSpacing(10)
        top.addWidget(self._folder_panel, 3)
        top.addWidget(self._indexing_panel, 2)
        root.addLayout(top)
        root.addWidget(self._build_documents(), 1)

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
        flatten(self._table)
        self._table.setWordWrap(False)
        self._table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self._table.verticalHeader().hide()
        # Rows of one height: Qt then skips measuring each row when rows come and go.
        self._table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
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
            self._indexing_panel.show_state("Checking for changes…")
        # The controller reloads the status itself right after `engine_ready`.

    def _on_controller_library_event(self, event: object) -> None:
        if isinstance(event, LibraryChanged):
            self._set_folders(list(event.folders), list(event.paused))
            if not event.folders and not self._indexing:
                self._indexing_panel.show_state(
                    "No folders watched yet", "Add a folder to start indexing."
                )
            self._schedule_status(STATUS_SOON_MS)
        elif isinstance(event, SyncStarted):
            self._on_sync_started(event)
        elif isinstance(event, FileStarted):
            self._indexing_panel.show_current(event.path)
        elif isinstance(event, SyncProgress):
            self._on_sync_progress(event)
        elif isinstance(event, FileFailed):
            self._run_failures += 1
            self._indexing_panel.show_failures(self._run_failures)
            self._schedule_status(STATUS_REFRESH_MS)
        elif isinstance(event, (FileIndexed, FileRemoved, FileRenamed)):
            self._schedule_status(STATUS_REFRESH_MS)
        elif isinstance(event, EmbeddingProgress):
            self._set_indexing(True)
            self._indexing_panel.show_embedding_progress(event)
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
            self._indexing_panel.clear_run()
        self._set_indexing(True)
        self._indexing_panel.show_sync_started(event)

    def _on_sync_progress(self, event: SyncProgress) -> None:
        self._set_indexing(True)
        self._indexing_panel.show_sync_progress(event)

    def _on_sync_finished(self, event: SyncFinished) -> None:
        self._indexing_panel.show_sync_finished(event.summary)
        if event.summary.embedding == "semantic":
            self._keyword_reason = ""
        self._schedule_status(STATUS_SOON_MS)

    def _on_service_idle(self) -> None:
        self._set_indexing(False)
        self._indexing_panel.show_idle(len(self._folders_list), len(self._paused))
        self._schedule_status(STATUS_SOON_MS)

    def _on_notice(self, text: str) -> None:
        if text.startswith(KEYWORD_ONLY_PREFIX):
            self._keyword_reason = text[len(KEYWORD_ONLY_PREFIX) :].lstrip(": ").strip()
            self._update_banner()
            return
        self._indexing_panel.show_notice(text)

    def _on_controller_status_loaded(self, report: StatusReport) -> None:
        # Rows (display strings, sort keys) are prepared here, in slices: on a worker thread
        # the same Python work would hold the GIL this thread needs after every Qt call.
        self._reports.append(report)
        if not self._preparing:
            self._prepare_rows()

    def _prepare_rows(self) -> None:
        deadline = time.perf_counter() + ROW_SLICE_S
        roots = self._model.roots()
        while self._reports:
            report = self._reports[0]
            todo = report.changed
            while len(self._prepared) < len(todo):
                self._prepared.append(prepare_row(todo[len(self._prepared)], roots))
                if len(self._prepared) % 64 == 0 and time.perf_counter() > deadline:
                    self._preparing = True
                    QTimer.singleShot(0, self, self._prepare_rows)
                    return
            self._reports.popleft()
            rows, self._prepared = self._prepared, []
            self._finish_report(report, rows)
        self._preparing = False

    def _finish_report(self, report: StatusReport, rows: list[Row]) -> None:
        if report.full:
            self._rows.clear()
        for path in report.removed:
            self._rows.pop(path, None)
        for row in rows:
            self._rows[str(row.doc["path"])] = row
        # What the table has not been told yet, over every report since it last was (None:
        # anything may have changed).
        if report.full or self._unapplied is None:
            self._unapplied = None
        else:
            changed, removed = self._unapplied
            fresh = {str(r.doc["path"]) for r in rows}
            changed.difference_update(report.removed)
            changed.update(fresh)
            removed.difference_update(fresh)
            removed.update(report.removed)
        self._counts = report.folder_counts
        self._status_inflight_since = None
        self._status = dict(report.summary, documents_total=len(self._rows))
        if not self._reports:  # the table shows the newest report only
            self._apply_status(self._status)
            settle_young("status report")  # its rows live until the next: see app/heap.py
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
        self._indexing_panel.set_busy(indexing)

    def _show_error(self, message: str) -> None:
        self._error_label.setText(message)
        self._error.show()

    def _set_folders(self, folders: list[str], paused: list[str]) -> None:
        if list(folders) != self._folders_list and self._rows:
            # Each row names its folder from the watched roots: label them all afresh.
            self._controller.refresh_status(full=True)
        self._folders_list = list(folders)
        self._model.set_roots(self._folders_list)
        self._paused = set(paused)
        self._folder_panel.set_folders(self._folders_list, self._paused, self._folder_counts())
        self._update_buttons()

    def _folder_counts(self) -> dict[str, tuple[int, int]]:
        """Documents and failures per folder, as counted on the worker with the last status."""
        return {f: self._counts.get(f, (0, 0)) for f in self._folders_list}

    def _update_table(self) -> None:
        """Bring the table to `self._rows`, telling it only what changed (`_unapplied`), at
        most `TABLE_SLICE` changes per slice, `TABLE_GAP_MS` apart.  A watched folder being
        reorganised sends reports of thousands of changes (4,000 in one, measured), and
        applying one at once held the GUI thread 100 ms and more; a full report (the first)
        goes the same way, as the changes from what the table shows.  The table catches up
        at about 1,000 changes a second, with the event loop free between slices."""
        self._table_timer_armed = False
        rows = self._rows
        if self._unapplied is None:  # a full report: everything may have changed
            shown_paths = {r.doc["path"] for r in self._model.rows()}
            self._unapplied = (set(rows), shown_paths.difference(rows))
        changed, removed = self._unapplied
        if not changed and not removed and self._model.rowCount() == len(rows):
            return
        part_removed = set(itertools.islice(removed, TABLE_SLICE))
        part = list(itertools.islice(changed, TABLE_SLICE - len(part_removed)))
        removed.difference_update(part_removed)
        changed.difference_update(part)
        fresh = [rows[p] for p in part if p in rows]
        if (part or part_removed) and self._model.apply_changes(fresh, part_removed, None):
            if changed or removed or self._model.rowCount() != len(rows):
                self._table_timer_armed = True
                QTimer.singleShot(TABLE_GAP_MS, self, self._update_table)
            return
        # The table and the rows disagree, or the changes could not be applied as such:
        # every row at once.  (A row whose status changed may enter or leave the filter: the
        # model asks the filter about each row that changed, and shows or hides it.)
        self._unapplied = (set(), set())
        log.info("library table: every row given again (%d rows)", len(rows))
        selected = set(self.selected_paths())
        reset = self._model.set_rows(list(rows.values()))
        if reset and selected:
            self._select_paths(selected)

    def _apply_status(self, status: dict[str, Any]) -> None:
        """Show `status` and the rows in `self._rows` (the table in slices: `_update_table`)."""
        if not self._table_timer_armed:
            self._update_table()
        self._stack.setCurrentWidget(self._table if self._rows else self._empty)

        counts = status.get("counts") or {}
        self._filter_buttons[None].setText(f"All ({len(self._rows):,})")
        self._filter_buttons["failed"].setText(f"Failed ({int(counts.get('failed', 0)):,})")
        self._filter_buttons["pending"].setText(f"Pending ({int(counts.get('pending', 0)):,})")

        self._indexing_panel.show_index(status)

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
        model = escape(configured or DEFAULT_EMBED_MODEL)
        reason = self._keyword_reason or "no embedding model is available"
        reason = reason[0].upper() + reason[1:]
        if not reason.endswith("."):
            reason += "."
        pull = f"install Ollama, then run <code>ollama pull {model}</code>"
        how = pull if configured else f"choose an embedding model in Settings ({pull})"
        self._banner_label.setText(
            f"<b>Keyword search only</b> — {escape(reason)} "
            "Search matches your exact words, not their meaning.<br>"
            f"<b>To enable semantic search:</b> {how}. "
            "Vectors are added automatically, without re-reading your files."
        )
        self._banner.show()

    def _update_buttons(self) -> None:
        self._folder_panel.update_buttons()
        failed_selected = self._selected_failed()
        any_failed = int((self._status.get("counts") or {}).get("failed", 0)) > 0
        self._retry_button.setText(
            f"Retry selected ({len(failed_selected)})" if failed_selected else "Retry all failed"
        )
        self._retry_button.setEnabled(bool(failed_selected) or any_failed)

    # ---- selection helpers -----------------------------------------------------------

    def selected_folder(self) -> str | None:
        return self._folder_panel.selected_folder()

    def selected_paths(self) -> list[str]:
        rows = self._table.selectionModel().selectedRows()
        return [str(index.data(PATH_ROLE)) for index in rows]

    def _selected_failed(self) -> list[str]:
        rows = self._table.selectionModel().selectedRows()
        return [str(i.data(PATH_ROLE)) for i in rows if i.data(STATUS_ROLE) == "failed"]

    def _select_paths(self, paths: set[str]) -> None:
        """Select the rows of `paths` that are shown, found in the model's own list (asking
        each row's path through Qt cost a call per row) and selected in runs, at once."""
        chosen = QItemSelection()
        for first, last in self._model.shown_runs_of(paths):
            top = self._proxy.mapFromSource(self._model.index(first, 0))
            chosen.select(top, self._proxy.mapFromSource(self._model.index(last, 0)))
        if not chosen.isEmpty():
            flags = QItemSelectionModel.SelectionFlag
            self._table.selectionModel().select(chosen, flags.Select | flags.Rows)

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
            self._indexing_panel.show_state(f"Retrying {len(paths):,} files…")
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
