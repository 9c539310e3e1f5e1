"""The built-in document viewer: a source opened at its page or passage, with the passage marked.

PDFs open in QtPdf at the cited page; the passage is marked through the PDF's own text layer
(the longest run of the passage's words found on the page becomes the search string, which
QPdfView paints over the page).  Markdown, text and code open as the original file text with the
passage selected; HTML and DOCX show their extracted text, which is what the index offsets
point into.  Files are read on a worker; a missing or unreadable file is reported by `failed`
and shown in place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QFont,
    QFontDatabase,
    QPalette,
    QResizeEvent,
    QTextCursor,
)
from PySide6.QtPdf import QPdfDocument, QPdfSearchModel
from PySide6.QtPdfWidgets import QPdfView
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.app.workers import run_in_background
from ftrag_desktop.core.highlight import find_passage
from ftrag_desktop.core.parse import parse_file
from ftrag_desktop.core.parse.text import decode_text
from ftrag_desktop.errors import UserError

EXTRACTED_FORMATS = frozenset({".html", ".htm", ".xhtml", ".docx"})
CODE_SUFFIXES = frozenset(
    {
        ".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".c", ".h",
        ".cpp", ".hpp", ".cc", ".cs", ".go", ".rs", ".rb", ".php", ".swift", ".sh", ".bash",
        ".sql", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".xml", ".csv",
        ".tsv", ".log", ".css", ".scss", ".lua", ".pl", ".r", ".scala", ".dart", ".hs", ".ml",
    }
)  # fmt: skip
ZOOM_STEP = 1.25
MIN_ZOOM, MAX_ZOOM = 0.25, 6.0
_SNIPPET_MAX_WORDS = 60  # a longer search string risks one mismatch losing the whole mark
_SHORT_SNIPPET_WORDS = 6

SETTLE_DELAYS_MS = (0, 50, 200)  # re-scroll after layout and fit-to-width settle
SETTLE_S = 1.0  # after a jump, layout changes for this long re-scroll to the target


class ElidedLabel(QLabel):
    """A one-line label that elides its text to the width it gets; the full text is the tooltip."""

    def __init__(
        self, text: str = "", mode: Qt.TextElideMode = Qt.TextElideMode.ElideMiddle
    ) -> None:
        super().__init__()
        self._full = ""
        self._mode = mode
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        self.setToolTip(text)
        self._elide()

    def full_text(self) -> str:
        return self._full

    def minimumSizeHint(self) -> QSize:
        return QSize(10, super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = self.contentsRect().width()
        shown = self.fontMetrics().elidedText(self._full, self._mode, width) if width > 0 else ""
        super().setText(shown or self._full)


class DocumentUnavailable(UserError):
    """The file of a source cannot be read (moved, deleted, no permission)."""


def open_externally(path: str) -> bool:
    """Open `path` with the application the desktop associates with it."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(path))


def show_in_folder(path: str) -> bool:
    """Open the folder that holds `path` in the desktop's file manager."""
    return QDesktopServices.openUrl(QUrl.fromLocalFile(str(Path(path).parent)))


@dataclass(frozen=True)
class _TextPlacement:
    """A text document ready for the editor: its text and the passage in Qt (UTF-16) units."""

    text: str
    start: int
    end: int
    found: bool
    code: bool


def _read_bytes(path: str) -> bytes:
    file = Path(path)
    where = f"{file.name} (in {file.parent})"
    try:
        return file.read_bytes()
    except FileNotFoundError as exc:
        raise DocumentUnavailable(
            f"{where} is no longer there.",
            "It was moved, renamed or deleted since it was indexed; the next scan updates the "
            "library.",
        ) from exc
    except PermissionError as exc:
        raise DocumentUnavailable(
            f"{where} cannot be read: permission denied.", "Allow your user to read the file."
        ) from exc
    except IsADirectoryError as exc:
        raise DocumentUnavailable(f"{where} is a folder, not a file.") from exc
    except OSError as exc:
        raise DocumentUnavailable(f"{where} could not be read ({exc.strerror or exc}).") from exc


def _qt_offset(text: str, offset: int) -> int:
    """A Python (code point) offset as a QTextDocument (UTF-16 unit) position."""
    head = text[:offset]
    return offset + sum(1 for ch in head if ord(ch) > 0xFFFF)


def _normalise_newlines(text: str, start: int, end: int) -> tuple[str, int, int]:
    """`text` with CR LF and CR as LF (as the editor shows it), the span moved along."""
    if "\r" not in text:
        return text, start, end

    def norm(s: str) -> str:
        return s.replace("\r\n", "\n").replace("\r", "\n")

    return norm(text), len(norm(text[:start])), len(norm(text[:end]))


def _locate(text: str, passage: str, start: int, end: int) -> tuple[int, int, bool]:
    """Where the passage is in `text`: the stored offsets if they still hold, else a search."""
    if 0 <= start < end <= len(text) and text[start:end] == passage:
        return start, end, True
    if passage:
        exact = text.find(passage)
        if exact >= 0:
            return exact, exact + len(passage), True
        span = find_passage(text, passage)
        if span is not None:
            return span[0], span[1], True
    return 0, 0, False


def _place(text: str, passage: str, start: int, end: int, *, code: bool) -> _TextPlacement:
    a, b, found = _locate(text, passage, start, end)
    text, a, b = _normalise_newlines(text, a, b)
    return _TextPlacement(text, _qt_offset(text, a), _qt_offset(text, b), found, code)


def load_text_source(source: dict[str, Any]) -> _TextPlacement:
    """Read a text-format source's file (worker thread): original text, passage located."""
    path = str(source["path"])
    suffix = Path(path).suffix.lower()
    passage = str(source.get("text") or "")
    start, end = int(source.get("char_start") or 0), int(source.get("char_end") or 0)
    if suffix in EXTRACTED_FORMATS:
        if not Path(path).exists():
            _read_bytes(path)  # raises the clear "no longer there" error
        doc = parse_file(Path(path))
        parts: list[str] = []
        length = 0
        shown_heading: tuple[str, ...] = ()
        indexed_start, indexed_end = start, end  # offsets in the extracted text
        for block in doc.blocks:
            if block.heading_path and block.heading_path != shown_heading:
                heading = f"{block.heading_path[-1]}\n\n"
                parts.append(heading)
                length += len(heading)
                shown_heading = block.heading_path
            if block.start <= indexed_start < block.start + len(block.text):
                start = length + indexed_start - block.start
                end = length + indexed_end - block.start
            parts.append(block.text + "\n\n")
            length += len(block.text) + 2
        return _place("".join(parts), passage, start, end, code=False)
    text = decode_text(_read_bytes(path))
    return _place(text, passage, start, end, code=suffix in CODE_SUFFIXES)


def location_label(source: dict[str, Any]) -> str:
    """Where a passage is: "p. 3", a heading path, or "lines 4–9"."""
    if source.get("page"):
        return f"p. {source['page']}"
    heading = source.get("heading_path") or []
    if heading:
        return " › ".join(str(h) for h in heading)
    if source.get("line_start") is not None:
        end = source.get("line_end") or source["line_start"]
        if end == source["line_start"]:
            return f"line {end}"
        return f"lines {source['line_start']}–{end}"
    return ""


class DocumentViewer(QWidget):
    """Shows one source at a time: a PDF page with the passage marked, or text with it selected."""

    opened = Signal(str, int)  # path, page (0 for non-PDF) once shown
    failed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._source: dict[str, Any] = {}
        self._target: tuple[int, float] | None = None  # (page index, y) last scrolled to
        self._settle_until = 0.0  # until then, a layout change scrolls to the target again
        self._request = 0  # a newer open_source makes results of older reads stale
        self._pending_pdf: tuple[int, dict[str, Any]] | None = None
        self._buffer: QBuffer | None = None
        self._path = ""
        self._page = 0
        self._marked = False
        self._text_zoom = 0
        self._readable = True
        self._build()
        self._show_message("No document open", "Click a source to open it here.")

    # ---- layout ---------------------------------------------------------------------------

    def _build(self) -> None:
        self._title = ElidedLabel(mode=Qt.TextElideMode.ElideRight)
        font = self._title.font()
        font.setBold(True)
        self._title.setFont(font)
        self._location = ElidedLabel()
        self._location.setForegroundRole(QPalette.ColorRole.PlaceholderText)

        self._prev = self._tool_button("‹", "Previous page (Page Up)", self._on_prev_clicked)
        self._next = self._tool_button("›", "Next page (Page Down)", self._on_next_clicked)
        self._page_label = QLabel()
        self._page_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._page_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("Page 888 of 888"))
        self._zoom_out = self._tool_button("−", "Zoom out (Ctrl+-)", self._on_zoom_out_clicked)
        self._zoom_in = self._tool_button("+", "Zoom in (Ctrl++)", self._on_zoom_in_clicked)
        self._zoom_label = QLabel()
        self._zoom_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._zoom_label.setMinimumWidth(self.fontMetrics().horizontalAdvance("8888%"))
        self._fit = self._tool_button("Fit width", "Fit the page width", self._on_fit_clicked)
        self._fit.setCheckable(True)
        self._external = QPushButton("Open with system app")
        self._external.setToolTip("Open the file in the application your system uses for it")
        self._external.clicked.connect(self._on_external_clicked)
        self._folder = QPushButton("Show in folder")
        self._folder.setToolTip("Open the folder that holds the file")
        self._folder.clicked.connect(self._on_folder_clicked)

        titles = QVBoxLayout()
        titles.setSpacing(0)
        titles.addWidget(self._title)
        titles.addWidget(self._location)
        bar = QHBoxLayout()
        bar.setContentsMargins(10, 6, 8, 6)
        bar.setSpacing(4)
        bar.addLayout(titles, 1)
        for widget in (self._prev, self._page_label, self._next):
            bar.addWidget(widget)
        bar.addSpacing(10)
        for widget in (self._zoom_out, self._zoom_label, self._zoom_in, self._fit):
            bar.addWidget(widget)
        bar.addSpacing(10)
        bar.addWidget(self._external)
        bar.addWidget(self._folder)
        toolbar = QFrame()
        toolbar.setLayout(bar)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)

        self._document = QPdfDocument(self)
        self._document.statusChanged.connect(self._on_document_status_changed)
        self._search = QPdfSearchModel(self)
        self._search.setDocument(self._document)
        self._pdf = QPdfView(self)
        self._pdf.setPageMode(QPdfView.PageMode.MultiPage)
        self._pdf.setZoomMode(QPdfView.ZoomMode.FitToWidth)
        # A fixed viewport width keeps fit-to-width pages from re-flowing when the bar appears,
        # so that the scroll position computed for a passage stays right.
        self._pdf.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self._pdf.setDocument(self._document)
        self._pdf.setSearchModel(self._search)
        self._pdf.pageNavigator().currentPageChanged.connect(self._on_navigator_page_changed)
        self._pdf.zoomFactorChanged.connect(self._update_controls)
        # QtPdf lays the pages out later than `jump()` returns (6.11 only once it paints); the
        # scroll range grows then, and the cited place is scrolled to again.
        self._pdf.verticalScrollBar().rangeChanged.connect(self._on_pdf_range_changed)

        self._text = QPlainTextEdit(self)
        self._text.setReadOnly(True)
        self._text.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self._text.document().setDocumentMargin(16)

        self._message_title = QLabel()
        big = self._message_title.font()
        big.setPointSizeF(big.pointSizeF() * 1.25)
        big.setBold(True)
        self._message_title.setFont(big)
        self._message_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._message_body = QLabel()
        self._message_body.setWordWrap(True)
        self._message_body.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._message_body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        message = QWidget()
        mv = QVBoxLayout(message)
        mv.addStretch(1)
        mv.addWidget(self._message_title)
        mv.addWidget(self._message_body)
        mv.addStretch(2)
        mv.setContentsMargins(40, 20, 40, 20)

        self._stack = QStackedWidget()
        self._stack.addWidget(self._pdf)
        self._stack.addWidget(self._text)
        self._stack.addWidget(message)
        self._message_page = message

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(toolbar)
        layout.addWidget(line)
        layout.addWidget(self._stack, 1)

    def _tool_button(self, text: str, tip: str, slot: Any) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        button.setAutoRaise(True)
        if len(text) == 1:
            font = button.font()
            font.setPointSizeF(font.pointSizeF() * 1.3)
            button.setFont(font)
            button.setFixedWidth(button.sizeHint().height() + 4)
        button.clicked.connect(slot)
        return button

    # ---- public API -----------------------------------------------------------------------

    def open_source(self, source: dict[str, Any]) -> None:
        """Open the source's file at its page (PDF) or passage (text formats)."""
        self._request += 1
        request = self._request
        self._target = None
        self._source = dict(source)
        self._path = str(source.get("path") or "")
        self._page = 0
        self._marked = False
        self._readable = True
        self._pending_pdf = None
        file = Path(self._path)
        self._title.setText(file.name or "(no file)")
        self._title.setToolTip(self._path)
        where = location_label(source)
        self._location.setText(f"{where}  ·  {file.parent}" if where else str(file.parent))
        self._location.setToolTip(str(file.parent))
        self._show_message(f"Opening {file.name}…", "")
        path = self._path
        if file.suffix.lower() == ".pdf":
            run_in_background(
                lambda: _read_bytes(path),
                on_done=lambda data: self._on_pdf_read(request, data),
                on_error=lambda message: self._on_read_failed(request, message),
            )
        else:
            run_in_background(
                lambda: load_text_source(source),
                on_done=lambda placement: self._on_text_read(request, placement),
                on_error=lambda message: self._on_read_failed(request, message),
            )

    def current_page(self) -> int:
        """The 1-based page shown for a PDF; 0 for other formats or nothing open."""
        if self._stack.currentWidget() is not self._pdf:
            return 0
        return self._pdf.pageNavigator().currentPage() + 1

    def current_path(self) -> str:
        return self._path

    def selected_text(self) -> str:
        """The text selected in a text document (the passage, once opened), newlines as \\n."""
        return self._text.textCursor().selectedText().replace("\u2029", "\n")

    def passage_marked(self) -> bool:
        """Whether the passage was found and marked in the shown document."""
        return self._marked

    # ---- loading --------------------------------------------------------------------------

    def _is_current(self, request: int) -> bool:
        """Whether a read's result is still wanted: the newest request, the viewer still alive."""
        return request == self._request and shiboken6.isValid(self)

    def _on_read_failed(self, request: int, message: str, *, file_readable: bool = False) -> None:
        if not self._is_current(request):
            return
        name = Path(self._path).name or "the document"
        self._show_message(f"Could not open {name}", message)
        self._readable = file_readable  # a damaged PDF: the system app may still cope
        self._update_controls()
        self.failed.emit(message)

    def _on_pdf_read(self, request: int, data: object) -> None:
        if not self._is_current(request) or not isinstance(data, bytes):
            return
        self._search.setSearchString("")
        self._document.close()
        buffer = QBuffer(self)
        buffer.setData(QByteArray(data))
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        old, self._buffer = self._buffer, buffer
        self._pending_pdf = (request, self._source)
        self._document.load(buffer)  # from memory: quick, and reports Ready or Error at once
        if old is not None:
            old.deleteLater()

    def _on_document_status_changed(self, status: QPdfDocument.Status) -> None:
        if self._pending_pdf is None:
            return
        request, source = self._pending_pdf
        if request != self._request:
            self._pending_pdf = None
            return
        if status == QPdfDocument.Status.Ready:
            self._pending_pdf = None
            self._show_pdf(source)
        elif status == QPdfDocument.Status.Error:
            self._pending_pdf = None
            self._on_read_failed(request, self._pdf_error_message(), file_readable=True)

    def _pdf_error_message(self) -> str:
        name = Path(self._path).name
        error = self._document.error()
        if error in (
            QPdfDocument.Error.IncorrectPassword,
            QPdfDocument.Error.UnsupportedSecurityScheme,
        ):
            return f"{name} is password-protected. Use “Open with system app” to read it."
        if error == QPdfDocument.Error.InvalidFileFormat:
            return f"{name} is not a readable PDF (the file may be damaged)."
        return f"{name} could not be opened as a PDF ({error.name})."

    def _show_pdf(self, source: dict[str, Any]) -> None:
        count = self._document.pageCount()
        page = min(max(int(source.get("page") or 1), 1), max(count, 1))
        self._stack.setCurrentWidget(self._pdf)
        navigator = self._pdf.pageNavigator()
        navigator.jump(page - 1, QPointF(), navigator.currentZoom())
        self._scroll_to(page - 1, 0.0)  # the page's top, even when it already was current
        self._marked = self._mark_pdf_passage(page, str(source.get("text") or ""))
        self._page = page
        self._update_controls()
        request = self._request
        for delay_ms in SETTLE_DELAYS_MS:
            # `self` as context: the timer dies with the viewer.
            QTimer.singleShot(delay_ms, self, lambda: self._settle_scroll(request))
        self.opened.emit(self._path, page)

    def _mark_pdf_passage(self, page: int, passage: str) -> bool:
        """Mark the passage on `page` via the search model and scroll to it; False if not found."""
        self._search.setSearchString("")
        if not passage.strip():
            return False
        page_text = self._document.getAllText(page - 1).text()
        span = find_passage(page_text, passage)
        if span is None:
            return False
        words = page_text[span[0] : span[1]].split()
        for snippet_words in (words[:_SNIPPET_MAX_WORDS], words[:_SHORT_SNIPPET_WORDS]):
            self._search.setSearchString(" ".join(snippet_words))
            results = self._search.resultsOnPage(page - 1)
            if results:
                self._scroll_to(page - 1, results[0].location().y())
                return True
        self._search.setSearchString("")
        return False

    def _pixels_per_point(self, page_index: int) -> float:
        """The view's scale for a page; QPdfView does not expose its layout, so redo its sums."""
        if self._pdf.zoomMode() == QPdfView.ZoomMode.FitToWidth:
            margins = self._pdf.documentMargins()
            usable = self._pdf.viewport().width() - margins.left() - margins.right()
            width = self._document.pagePointSize(page_index).width()
            return usable / width if width > 0 else 1.0
        return self._pdf.zoomFactor() * self._pdf.logicalDpiY() / 72.0

    def _settle_scroll(self, request: int) -> None:
        """Scroll to the target again once the view has its final size (fit-to-width zoom
        changes with the width, and a view that was just shown is laid out later)."""
        if request == self._request and self._target is not None:
            self._scroll_to(*self._target)

    def _on_pdf_range_changed(self, _low: int, _high: int) -> None:
        if self._target is not None and time.monotonic() < self._settle_until:
            self._scroll_to(*self._target, restart=False)

    def _scroll_to(self, page_index: int, y_points: float, *, restart: bool = True) -> None:
        """Scroll so that `y_points` on the page sits in the upper part of the view."""
        self._target = (page_index, y_points)
        if restart:
            self._settle_until = time.monotonic() + SETTLE_S
        if self._pdf.pageMode() != QPdfView.PageMode.MultiPage:
            return
        top = float(self._pdf.documentMargins().top())
        for index in range(page_index):
            height = self._document.pagePointSize(index).height()
            top += height * self._pixels_per_point(index) + self._pdf.pageSpacing()
        scale = self._pixels_per_point(page_index)
        view_height = self._pdf.viewport().height()
        target = top + y_points * scale - view_height / 4
        # The view's middle stays on the page (QtPdf 6.11 calls the page at the middle the
        # current one), and the view never starts above the page's top.
        bottom = top + self._document.pagePointSize(page_index).height() * scale
        target = min(target, bottom - view_height / 2)
        self._pdf.verticalScrollBar().setValue(round(max(target, top)))

    def _on_text_read(self, request: int, placement: object) -> None:
        if not self._is_current(request) or not isinstance(placement, _TextPlacement):
            return
        font = (
            QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
            if placement.code
            else QFont(self.font())
        )
        if not placement.code:
            font.setPointSizeF(font.pointSizeF() * 1.08)
        self._text.setFont(font)
        self._text_zoom = 0
        self._text.setLineWrapMode(
            QPlainTextEdit.LineWrapMode.NoWrap
            if placement.code
            else QPlainTextEdit.LineWrapMode.WidgetWidth
        )
        self._text.setPlainText(placement.text)
        self._stack.setCurrentWidget(self._text)
        cursor = QTextCursor(self._text.document())
        if placement.found:
            cursor.setPosition(placement.start)
            cursor.setPosition(placement.end, QTextCursor.MoveMode.KeepAnchor)
        # The passage is the selection, painted like a marker (as in the sources panel) and
        # kept when the view loses focus.
        palette = self._text.palette()
        background, foreground = _marker_colours(self)
        for group in (QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive):
            palette.setColor(group, QPalette.ColorRole.Highlight, background)
            palette.setColor(group, QPalette.ColorRole.HighlightedText, foreground)
        self._text.setPalette(palette)
        self._text.setTextCursor(cursor)
        self._text.centerCursor()
        self._marked = placement.found
        self._update_controls()
        self.opened.emit(self._path, 0)

    # ---- controls -------------------------------------------------------------------------

    def _show_message(self, title: str, body: str) -> None:
        self._message_title.setText(title)
        self._message_body.setText(body)
        self._message_body.setVisible(bool(body))
        self._stack.setCurrentWidget(self._message_page)
        self._update_controls()

    def _update_controls(self) -> None:
        is_pdf = self._stack.currentWidget() is self._pdf
        is_text = self._stack.currentWidget() is self._text
        has_file = bool(self._path)
        for widget in (self._prev, self._next, self._page_label, self._fit):
            widget.setVisible(is_pdf)
        for widget in (self._zoom_in, self._zoom_out, self._zoom_label):
            widget.setVisible(is_pdf or is_text)
        self._external.setEnabled(has_file and self._readable)
        self._folder.setEnabled(has_file)
        if is_pdf:
            page, count = self.current_page(), self._document.pageCount()
            self._page_label.setText(f"Page {page} of {count}")
            self._prev.setEnabled(page > 1)
            self._next.setEnabled(page < count)
            fit = self._pdf.zoomMode() == QPdfView.ZoomMode.FitToWidth
            self._fit.setChecked(fit)
            zoom = self._effective_pdf_zoom() if fit else self._pdf.zoomFactor()
            self._zoom_label.setText(f"{zoom * 100:.0f}%")
        elif is_text:
            self._zoom_label.setText(f"{100 + 10 * self._text_zoom}%")

    def _on_navigator_page_changed(self, _page: int) -> None:
        self._update_controls()

    def _jump_by(self, delta: int) -> None:
        navigator = self._pdf.pageNavigator()
        page = min(max(navigator.currentPage() + delta, 0), self._document.pageCount() - 1)
        navigator.jump(page, QPointF(), navigator.currentZoom())

    def _on_prev_clicked(self) -> None:
        self._jump_by(-1)

    def _on_next_clicked(self) -> None:
        self._jump_by(1)

    def _zoom_by(self, factor: float) -> None:
        if self._stack.currentWidget() is self._text:
            step = 1 if factor > 1 else -1
            if -5 <= self._text_zoom + step <= 15:
                self._text_zoom += step
                self._text.zoomIn(step)
        else:
            current = self._pdf.zoomFactor()
            if self._pdf.zoomMode() != QPdfView.ZoomMode.Custom:
                current = self._effective_pdf_zoom()
            self._pdf.setZoomMode(QPdfView.ZoomMode.Custom)
            self._pdf.setZoomFactor(min(max(current * factor, MIN_ZOOM), MAX_ZOOM))
        self._update_controls()

    def _effective_pdf_zoom(self) -> float:
        """The zoom factor that fit-to-width currently amounts to."""
        scale = self._pixels_per_point(max(self.current_page() - 1, 0))
        return max(scale / (self._pdf.logicalDpiY() / 72.0), MIN_ZOOM)

    def _on_zoom_in_clicked(self) -> None:
        self._zoom_by(ZOOM_STEP)

    def _on_zoom_out_clicked(self) -> None:
        self._zoom_by(1 / ZOOM_STEP)

    def _on_fit_clicked(self) -> None:
        self._pdf.setZoomMode(QPdfView.ZoomMode.FitToWidth)
        self._update_controls()

    def _on_external_clicked(self) -> None:
        if self._path:
            open_externally(self._path)

    def _on_folder_clicked(self) -> None:
        if self._path:
            show_in_folder(self._path)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._update_controls()  # the fit-to-width zoom percentage follows the width

    def keyPressEvent(self, event: Any) -> None:
        if self._stack.currentWidget() is self._pdf:
            if event.key() == Qt.Key.Key_PageDown:
                self._jump_by(1)
                return
            if event.key() == Qt.Key.Key_PageUp:
                self._jump_by(-1)
                return
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            if event.key() in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
                self._zoom_by(ZOOM_STEP)
                return
            if event.key() == Qt.Key.Key_Minus:
                self._zoom_by(1 / ZOOM_STEP)
                return
        super().keyPressEvent(event)


def _marker_colours(widget: QWidget) -> tuple[QColor, QColor]:
    """Marker background and text colour for the passage, on a light or a dark palette."""
    if widget.palette().base().color().lightness() < 128:
        return QColor("#6b5400"), QColor("#fff6d6")
    return QColor("#ffe58f"), QColor("#1f1a00")
