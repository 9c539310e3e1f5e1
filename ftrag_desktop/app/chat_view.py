"""The chat transcript and the question box: one conversation, with answers streamed in.

Answers are Markdown, rendered by QTextDocument (lists, code, tables).  Each `[n]` citation in
a finished answer becomes a `cite:<message index>:<n>` link; clicking it emits
`citation_activated` and never opens anything itself.  While an answer streams, tokens are
buffered and the Markdown is re-rendered at most every `RENDER_INTERVAL_MS`, so long answers
never stall the GUI.  Colours come from the palette, so light and dark themes both read well.

Message indexes are positions in `Conversation.messages` (a question, then its answer): the
view mirrors them as answers finish.  A failed answer is shown in the transcript, but takes no
index, since the conversation does not record it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QIcon,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPalette,
    QShortcut,
    QTextBlock,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextDocumentFragment,
    QTextFormat,
    QTextFrameFormat,
    QTextTable,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStyle,
    QTextBrowser,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ftrag_desktop.core.answer import AnswerResult, parse_citations
from ftrag_desktop.core.conversations import Conversation, Message
from ftrag_desktop.core.export import (
    CITATION,
    FENCE,
    answer_to_markdown,
    replace_citations,
    source_location,
)

RENDER_INTERVAL_MS = 50
CODE_BOX = QTextFormat.Property.UserProperty + 1  # marks the frames that hold code blocks
RENDER_BUDGET_S = 0.025  # GUI time spent rendering a shown conversation before yielding
PLACEHOLDER = "Ask a question about your documents…"
EMPTY_TEXT = (
    "<h3>Ask about your documents</h3>"
    "<p>Type a question below. The answer is written from the passages found in your "
    "watched folders, and every claim cites its source: click a <b>[1]</b> to see the "
    "passage and open the document at that page.</p>"
    "<p><b>Enter</b> sends · <b>Shift+Enter</b> adds a line · <b>Esc</b> stops an answer</p>"
)


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    """`a` moved a fraction `t` of the way to `b` (a tint that works on light and dark)."""
    return QColor(
        round(a.red() + (b.red() - a.red()) * t),
        round(a.green() + (b.green() - a.green()) * t),
        round(a.blue() + (b.blue() - a.blue()) * t),
    )


def _css(color: QColor) -> str:
    return color.name(QColor.NameFormat.HexRgb)


def timing_text(model: str, meta: Mapping[str, Any]) -> str:
    """`model · first token 0.4 s · 3.1 s total · 42 tokens/s`, from an answer's meta."""
    bits = [model] if model else []
    first, total = meta.get("first_token_s"), meta.get("total_s")
    if first is not None:
        bits.append(f"first token {float(first):.1f} s")
    if total:
        bits.append(f"{float(total):.1f} s total")
    tokens = meta.get("completion_tokens")
    if tokens and total and first is not None and float(total) - float(first) > 0:
        bits.append(f"{int(tokens) / (float(total) - float(first)):.0f} tokens/s")
    return " · ".join(bits)


def counts_text(message: Message) -> str:
    if message.meta.get("rag") is False:
        return "answered without your documents"
    cited = sum(1 for s in message.sources if s.get("cited"))
    text = f"{cited} cited · {len(message.sources)} retrieved"
    mode = message.meta.get("search_mode")
    if mode and mode != "hybrid":
        text += f" · {mode} search"
    return text


def _messages_from_result(result: AnswerResult) -> list[Message]:
    """The question and answer exactly as `Conversation.add_exchange` records them."""
    scratch = Conversation("", "", result.model)
    scratch.add_exchange(result)
    return scratch.messages


class _TextBlock(QTextBrowser):
    """A borderless, transparent text browser as tall as its content (the page scrolls, not it)."""

    clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.viewport().setAutoFillBackground(False)
        self.setStyleSheet("QTextBrowser { background: transparent; }")
        self.document().setDocumentMargin(2)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self.setFixedHeight(24)

    def _fit_height(self, *_: object) -> None:
        height = math.ceil(self.document().size().height()) + 2 * self.frameWidth()
        if height != self.height():
            self.setFixedHeight(height)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self._fit_height()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.clicked.emit()
        super().mousePressEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        # The transcript scrolls, not this block: hand the wheel to its scroll bar, as
        # QAbstractScrollArea does itself.
        parent = self.parentWidget()
        while parent is not None and not isinstance(parent, QScrollArea):
            parent = parent.parentWidget()
        if parent is None:
            event.ignore()
            return
        QCoreApplication.sendEvent(parent.verticalScrollBar(), event)
        event.accept()


class _QuestionWidget(QFrame):
    def __init__(self, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("question")
        who = QLabel("You")
        font = who.font()
        font.setBold(True)
        who.setFont(font)
        self.text = _TextBlock()
        self.text.setPlainText(text)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 8, 14, 8)
        layout.setSpacing(2)
        layout.addWidget(who)
        layout.addWidget(self.text)


class _AnswerWidget(QFrame):
    """One answer: a header, the Markdown text, a timing/counts line, and its actions."""

    selected = Signal(int)
    citation_clicked = Signal(int, int)
    copy_clicked = Signal(int)
    regenerate_clicked = Signal(int)
    export_clicked = Signal()

    def __init__(self, index: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("answer")
        self.index = index
        self.message: Message | None = None
        self._raw = ""
        self._title = QLabel("Answer")
        font = self._title.font()
        font.setBold(True)
        self._title.setFont(font)
        self._model = QLabel()
        self._model.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        header = QHBoxLayout()
        header.setSpacing(8)
        header.addWidget(self._title)
        header.addWidget(self._model)
        header.addStretch(1)

        self.browser = _TextBlock()
        self._stream = StreamRenderer(self.browser.document())
        self.browser.anchorClicked.connect(self._on_browser_anchor_clicked)
        self.browser.clicked.connect(self._on_browser_clicked)

        self.info = QLabel()
        self.info.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.info.setWordWrap(True)
        small = self.info.font()
        small.setPointSizeF(max(small.pointSizeF() * 0.9, 7.0))
        self.info.setFont(small)
        self.counts = QLabel()
        self.counts.setFont(small)
        self.counts.setForegroundRole(QPalette.ColorRole.PlaceholderText)

        sp = QStyle.StandardPixmap
        self.copy_button = self._action(
            "Copy", "Copy this answer as Markdown, with its sources", QIcon.ThemeIcon.EditCopy, None
        )
        self.copy_button.clicked.connect(lambda: self.copy_clicked.emit(self.index))
        self.regenerate_button = self._action(
            "Regenerate", "Ask the question again", QIcon.ThemeIcon.ViewRefresh, sp.SP_BrowserReload
        )
        self.regenerate_button.clicked.connect(lambda: self.regenerate_clicked.emit(self.index))
        self.export_button = self._action(
            "Export…",
            "Export the whole conversation to Markdown",
            QIcon.ThemeIcon.DocumentSaveAs,
            sp.SP_DialogSaveButton,
        )
        self.export_button.clicked.connect(self.export_clicked.emit)
        buttons = (self.copy_button, self.regenerate_button, self.export_button)
        if any(b.icon().isNull() for b in buttons):  # all with icons, or none
            for b in buttons:
                b.setIcon(QIcon())
                b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        footer = QHBoxLayout()
        footer.setSpacing(2)
        footer.addWidget(self.counts)
        footer.addStretch(1)
        footer.addWidget(self.copy_button)
        footer.addWidget(self.regenerate_button)
        footer.addWidget(self.export_button)
        self._actions = QWidget()
        self._actions.setLayout(footer)
        footer.setContentsMargins(0, 0, 0, 0)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 8, 14, 6)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self.browser)
        layout.addWidget(self.info)
        layout.addWidget(self._actions)
        self._actions.hide()

    def _action(
        self,
        text: str,
        tip: str,
        theme: QIcon.ThemeIcon,
        fallback: QStyle.StandardPixmap | None,
    ) -> QToolButton:
        button = QToolButton()
        button.setText(text)
        button.setToolTip(tip)
        icon = QIcon.fromTheme(theme)
        if icon.isNull() and fallback is not None:
            icon = self.style().standardIcon(fallback)
        if not icon.isNull():
            button.setIcon(icon)
        button.setAutoRaise(True)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        return button

    # ---- states ----------------------------------------------------------------------------

    def show_streaming(self, text: str) -> None:
        self._raw = text
        self._model.setText("")
        self.info.setText(
            "Generating…" if text else "Searching your documents and waiting for the model…"
        )
        self._actions.hide()
        self._stream.update(text)

    def show_message(self, message: Message, *, streamed: bool = False) -> None:
        """Show a recorded answer; `streamed`: it is the text just streamed into this widget,
        so only its citations still need linking (no costly full re-render)."""
        cancelled = bool(message.meta.get("cancelled"))
        text = message.content
        if streamed and text.strip() and text == self._raw:
            self._stream.update(text)
            link_citations(self.browser.document(), self.index, message.sources)
        else:
            if not text.strip():
                text = "_Stopped before any text was written._" if cancelled else "_(empty answer)_"
            render_markdown(self.browser, text, self.index, message.sources)
        self.message = message
        self._raw = message.content
        self._model.setText(message.model)
        info = timing_text("", message.meta)
        if cancelled:
            info = "Stopped · " + info if info else "Stopped"
        self.info.setText(info)
        self.info.setVisible(bool(info))
        self.counts.setText(counts_text(message))
        self._actions.show()

    def set_selected(self, selected: bool) -> None:
        self.setProperty("selected", selected)
        self.style().unpolish(self)
        self.style().polish(self)

    def set_busy(self, busy: bool) -> None:
        self.regenerate_button.setEnabled(not busy)

    def rerender(self) -> None:
        if self.message is not None:
            self.show_message(self.message)
        else:
            self._stream.reset()
            self._stream.update(self._raw)

    # ---- slots -----------------------------------------------------------------------------

    def _on_browser_clicked(self) -> None:
        if self.message is not None:
            self.selected.emit(self.index)

    def _on_browser_anchor_clicked(self, url: QUrl) -> None:
        parsed = parse_cite_url(url)
        if parsed is not None:
            self.citation_clicked.emit(*parsed)


class _ErrorWidget(QFrame):
    def __init__(self, message: str, partial: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("error")
        icon = QLabel()
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        icon.setPixmap(
            self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(size, size)
        )
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        title = QLabel("The answer could not be completed")
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        self.label = QLabel(message)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        text = QVBoxLayout()
        text.setSpacing(2)
        text.addWidget(title)
        text.addWidget(self.label)
        if partial.strip():
            before = QLabel("Text received before the error:")
            before.setForegroundRole(QPalette.ColorRole.PlaceholderText)
            partial_block = _TextBlock()
            render_markdown(partial_block, partial, None, [])
            text.addWidget(before)
            text.addWidget(partial_block)
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 8, 12, 8)
        row.addWidget(icon)
        row.addLayout(text, 1)


class _QuestionInput(QPlainTextEdit):
    """Enter sends, Shift+Enter adds a line; grows with its text up to a few lines."""

    submitted = Signal()

    MIN_LINES, MAX_LINES = 2, 8

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText(PLACEHOLDER)
        self.setTabChangesFocus(True)
        self.document().documentLayout().documentSizeChanged.connect(self._fit_height)
        self._fit_height()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
            else:
                self.submitted.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    def _fit_height(self, *_: object) -> None:
        line = self.fontMetrics().lineSpacing()
        lines = max(self.MIN_LINES, min(self.MAX_LINES, self.document().lineCount()))
        margins = self.contentsMargins()
        doc_margin = 2 * self.document().documentMargin()
        height = lines * line + int(doc_margin) + margins.top() + margins.bottom() + 2
        self.setFixedHeight(height)


def parse_cite_url(url: QUrl) -> tuple[int, int] | None:
    """`cite:<message index>:<source number>` -> (index, number)."""
    if url.scheme() != "cite":
        return None
    parts = url.path().split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def _citation_tip(src: Mapping[str, Any]) -> str:
    name = PurePath(str(src.get("path", "")).replace("\\", "/")).name
    where = source_location(src)
    return f"{name} — {where}" if where else name


def render_markdown(
    browser: QTextBrowser, text: str, index: int | None, sources: list[dict[str, Any]]
) -> None:
    """Show Markdown `text`; with an index, its `[n]` citations become `cite:` links."""
    by_number = {int(s.get("number", 0)): s for s in sources}
    if index is not None and by_number:

        def link(numbers: list[int], _original: str) -> str | None:
            known = [n for n in numbers if n in by_number]
            return "".join(f"[\\[{n}\\]](cite:{index}:{n})" for n in known) or None

        text = replace_citations(text, max(by_number), link)
    doc = browser.document()
    doc.setMarkdown(text)
    # The app palette: the browser's own Base is transparent (see _TextBlock).
    _polish(doc, QGuiApplication.palette(), by_number)


def settled_length(text: str, start: int = 0) -> int:
    """How much of streamed Markdown `text` (from `start`, a previous result) is final.

    Text is final up to the start of the last top-level block that follows a blank line
    outside code fences: later tokens cannot change how it renders.
    """
    boundary = start
    fence: str | None = None
    after_blank = False
    pos = start
    for line in text[start:].splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # the last line is still being written
        match = FENCE.match(line)
        if fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
        elif not line.strip():
            after_blank = True
        else:
            if after_blank and not line[0].isspace():
                boundary = pos
            after_blank = False
            if match:
                fence = match.group(1)
        pos += len(line)
    return boundary


class StreamRenderer:
    """Renders growing Markdown into a document, re-rendering only the unsettled tail.

    A full re-render of a long answer costs tens of milliseconds; rendering just the last
    block keeps every update small, whatever the answer's length.
    """

    def __init__(self, doc: QTextDocument) -> None:
        self._doc = doc
        self._settled = 0  # characters of text rendered for good
        self._tail_at: int | None = None  # where the tail's rendering starts in the document

    def reset(self) -> None:
        self._doc.clear()
        self._settled = 0
        self._tail_at = None

    def update(self, text: str) -> None:
        if len(text) < self._settled:
            self.reset()
        cursor = QTextCursor(self._doc)
        cursor.beginEditBlock()
        if self._tail_at is not None:
            cursor.setPosition(self._tail_at)
            cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            self._tail_at = None
            if not cursor.block().text():  # the tail may have lent this block its format
                if cursor.currentList() is not None:
                    cursor.currentList().remove(cursor.block())
                cursor.setBlockFormat(QTextBlockFormat())
                cursor.setBlockCharFormat(QTextCharFormat())
        boundary = settled_length(text, self._settled)
        if boundary > self._settled:
            self._append(cursor, text[self._settled : boundary])
            self._settled = boundary
        if text[self._settled :].strip():
            self._tail_at = self._append(cursor, text[self._settled :])
        cursor.endEditBlock()

    def _append(self, cursor: QTextCursor, markdown: str) -> int:
        """Render `markdown` at the end; returns the position from which to remove it again."""
        cursor.movePosition(QTextCursor.MoveOperation.End)
        start = cursor.position()
        separated = bool(self._doc.lastBlock().text())
        if separated:  # a fragment inserted into a non-empty block would lose its format
            cursor.insertBlock(QTextBlockFormat(), QTextCharFormat())
        at = cursor.position()
        part = QTextDocument()
        part.setMarkdown(markdown)
        _polish(part, QGuiApplication.palette(), {})
        cursor.insertFragment(QTextDocumentFragment(part))
        block = self._doc.findBlock(at)
        if separated and not block.text() and block.next().isValid():
            cursor.setPosition(at)
            cursor.deletePreviousChar()  # drop the separator block again
        return start


def _link_color(palette: QPalette) -> QColor:
    link = palette.color(QPalette.ColorRole.Link)
    base = palette.color(QPalette.ColorRole.Base)
    if abs(link.lightness() - base.lightness()) < 60:  # a link colour lost on this background
        link = palette.color(QPalette.ColorRole.Highlight)
    return link


def _style_citation(cf: QTextCharFormat, link: QColor, source: Mapping[str, Any] | None) -> None:
    cf.setFontUnderline(False)
    cf.setFontWeight(QFont.Weight.DemiBold)
    cf.setForeground(link)
    if source is not None:
        cf.setToolTip(_citation_tip(source))


def link_citations(doc: QTextDocument, index: int, sources: list[dict[str, Any]]) -> None:
    """Turn the `[n]` citations of an already rendered answer into `cite:` links, in place.

    Cheap (no Markdown parsing): used when an answer finishes streaming.  Code is skipped.
    """
    by_number = {int(s.get("number", 0)): s for s in sources}
    if not by_number:
        return
    link = _link_color(QGuiApplication.palette())
    cursor = QTextCursor(doc)
    cursor.beginEditBlock()
    block = doc.begin()
    while block.isValid():
        text = block.text()
        for match in reversed(list(CITATION.finditer(text))):
            start = block.position() + match.start()
            cursor.setPosition(start + 1)
            base = cursor.charFormat()
            frame = cursor.currentFrame()
            in_code = frame is not None and frame.frameFormat().boolProperty(CODE_BOX)
            if in_code or base.fontFixedPitch() or base.isAnchor():
                continue
            known = [n for n in parse_citations(match.group(0), max(by_number)) if n in by_number]
            if not known:
                continue
            cursor.setPosition(start)
            cursor.setPosition(start + len(match.group(0)), QTextCursor.MoveMode.KeepAnchor)
            cursor.removeSelectedText()
            for n in known:
                cf = QTextCharFormat(base)
                cf.setAnchor(True)
                cf.setAnchorHref(f"cite:{index}:{n}")
                _style_citation(cf, link, by_number[n])
                cursor.insertText(f"[{n}]", cf)
        block = block.next()
    cursor.endEditBlock()


def _is_code(block: QTextBlock) -> bool:
    fmt = block.blockFormat()
    return fmt.hasProperty(QTextFormat.Property.BlockCodeFence) or fmt.nonBreakableLines()


def _polish(
    doc: QTextDocument, palette: QPalette, sources: Mapping[int, Mapping[str, Any]]
) -> None:
    """Palette-aware touches Qt's Markdown import lacks: code boxes, a table grid, citations."""
    base, text = palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)
    code_bg = _mix(base, text, 0.07)
    grid = _mix(base, text, 0.25)
    link = _link_color(palette)
    cursor = QTextCursor(doc)
    cursor.beginEditBlock()

    # Citations and inline code (formats only: positions do not move).
    edits: list[tuple[int, int, QTextCharFormat]] = []
    block = doc.begin()
    while block.isValid():
        it = block.begin()
        while not _is_code(block) and not it.atEnd():
            frag = it.fragment()
            cf = frag.charFormat()
            href = cf.anchorHref() if cf.isAnchor() else ""
            if href.startswith("cite:"):
                number = href.rsplit(":", 1)[-1]
                source = sources.get(int(number)) if number.isdigit() else None
                _style_citation(cf, link, source)
                edits.append((frag.position(), frag.length(), cf))
            elif cf.fontFixedPitch():
                cf.setBackground(code_bg)
                edits.append((frag.position(), frag.length(), cf))
            it += 1
        block = block.next()
    for position, length, cf in edits:
        cursor.setPosition(position)
        cursor.setPosition(position + length, QTextCursor.MoveMode.KeepAnchor)
        cursor.setCharFormat(cf)

    bold = QTextCharFormat()
    bold.setFontWeight(QFont.Weight.Bold)
    # Tables: a light grid, a shaded header, and no stray empty first line in a cell.
    for frame in doc.rootFrame().childFrames():
        if not isinstance(frame, QTextTable):
            continue
        tf = frame.format()
        tf.setBorder(1)
        tf.setBorderBrush(grid)
        tf.setBorderStyle(QTextFrameFormat.BorderStyle.BorderStyle_Solid)
        tf.setBorderCollapse(True)
        tf.setCellPadding(5)
        tf.setCellSpacing(0)
        tf.setTopMargin(4)
        tf.setBottomMargin(4)
        frame.setFormat(tf)
        for row in reversed(range(frame.rows())):
            for col in reversed(range(frame.columns())):
                cell = frame.cellAt(row, col)
                first = doc.findBlock(cell.firstPosition())
                if not first.text() and first.next().position() < cell.lastPosition():
                    cursor.setPosition(first.position())
                    cursor.deleteChar()  # md4c leaves an empty block before the text
                    cursor.setBlockFormat(QTextBlockFormat())
                if row == 0:
                    cell_fmt = cell.format()
                    cell_fmt.setBackground(code_bg)
                    cell.setFormat(cell_fmt)
                    cursor.setPosition(cell.firstPosition())
                    cursor.setPosition(cell.lastPosition(), QTextCursor.MoveMode.KeepAnchor)
                    cursor.mergeCharFormat(bold)

    # Code blocks: each run of code lines goes into a shaded, padded box.
    runs: list[tuple[int, int]] = []
    block = doc.begin()
    while block.isValid():
        if _is_code(block):
            start = block.position()
            while block.next().isValid() and _is_code(block.next()):
                block = block.next()
            runs.append((start, block.position() + block.length() - 1))
        block = block.next()
    box = QTextFrameFormat()
    box.setProperty(CODE_BOX, True)
    box.setBackground(code_bg)
    box.setPadding(8)
    box.setBorder(0)
    box.setTopMargin(4)
    box.setBottomMargin(6)
    for start, end in reversed(runs):
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        cursor.insertFrame(box)
        before = doc.findBlock(start)  # the emptied block the code was lifted out of
        if before.position() > 0 and not before.text() and _is_code(before):
            cursor.setPosition(before.position())
            cursor.deletePreviousChar()
    block = doc.begin()
    while block.isValid():
        if _is_code(block):
            fmt = block.blockFormat()
            fmt.setNonBreakableLines(False)  # wrap long code lines rather than clip them
            cursor.setPosition(block.position())
            cursor.setBlockFormat(fmt)
        block = block.next()
    cursor.endEditBlock()


class ChatView(QWidget):
    """Centre panel: the transcript of one conversation and the question box."""

    question_submitted = Signal(str)
    stop_requested = Signal()
    regenerate_requested = Signal(int)  # index of the assistant message
    citation_activated = Signal(int, int)  # (assistant message index, source number)
    answer_selected = Signal(int)  # index of the assistant message the user clicked
    export_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._messages: list[Message] = []
        self._answers: dict[int, _AnswerWidget] = {}
        self._selected: int | None = None
        self._streaming: _AnswerWidget | None = None
        self._stream_text = ""
        self._follow = True
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(RENDER_INTERVAL_MS)
        self._render_timer.timeout.connect(self._on_render_timer_timeout)
        # Answers of a shown conversation not rendered yet (newest last): a long conversation
        # is rendered a slice at a time, newest first, so switching to it never stalls.
        self._unrendered: list[tuple[_AnswerWidget, Message]] = []
        self._unrendered_timer = QTimer(self)
        self._unrendered_timer.setSingleShot(True)
        self._unrendered_timer.setInterval(0)
        self._unrendered_timer.timeout.connect(self._render_unrendered)
        self._build()
        self._apply_style()

    # ---- layout ----------------------------------------------------------------------------

    def _build(self) -> None:
        self._transcript = QWidget()
        self._transcript.setObjectName("transcript")
        self._column = QVBoxLayout(self._transcript)
        self._column.setContentsMargins(16, 16, 16, 16)
        self._column.setSpacing(10)
        self._empty = QLabel(EMPTY_TEXT)
        self._empty.setWordWrap(True)
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self._empty.setContentsMargins(24, 24, 24, 24)
        self._empty.setMaximumWidth(620)
        self._empty_box = QWidget()
        centred = QHBoxLayout(self._empty_box)
        centred.addStretch(1)
        centred.addWidget(self._empty, 4)
        centred.addStretch(1)
        self._column.addWidget(self._empty_box, 1)
        self._column.addStretch(1)

        self._scroll = QScrollArea()
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._scroll.setWidget(self._transcript)
        self._scroll.setBackgroundRole(QPalette.ColorRole.Base)
        bar = self._scroll.verticalScrollBar()
        bar.rangeChanged.connect(self._on_scrollbar_range_changed)
        bar.valueChanged.connect(self._on_scrollbar_value_changed)

        self.input = _QuestionInput()
        self.input.submitted.connect(self._on_input_submitted)
        self.input.textChanged.connect(self._update_buttons)
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(False)
        self.send_button.setAutoDefault(False)
        self.send_button.setToolTip("Send the question (Enter)")
        self.send_button.clicked.connect(self._on_input_submitted)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAutoDefault(False)
        self.stop_button.setToolTip("Stop the answer (Esc)")
        self.stop_button.clicked.connect(self.stop_requested.emit)
        buttons = QVBoxLayout()
        buttons.setSpacing(4)
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addStretch(1)
        row = QHBoxLayout()
        row.setContentsMargins(12, 8, 12, 4)
        row.addWidget(self.input, 1)
        row.addLayout(buttons)
        hint = QLabel("Enter to send · Shift+Enter for a new line · Esc to stop")
        hint.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        small = hint.font()
        small.setPointSizeF(max(small.pointSizeF() * 0.85, 7.0))
        hint.setFont(small)
        hint.setContentsMargins(14, 0, 12, 6)

        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Plain)
        line.setForegroundRole(QPalette.ColorRole.Mid)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self._scroll, 1)
        layout.addWidget(line)
        layout.addLayout(row)
        layout.addWidget(hint)

        self._stop_shortcut = QShortcut(QKeySequence(Qt.Key.Key_Escape), self)
        self._stop_shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        self._stop_shortcut.activated.connect(self.stop_requested.emit)
        self.input.installEventFilter(self)
        self._set_streaming(False)

    def _apply_style(self) -> None:
        pal = self.palette()
        base, text = pal.color(QPalette.ColorRole.Base), pal.color(QPalette.ColorRole.Text)
        highlight = pal.color(QPalette.ColorRole.Highlight)
        question_bg = _mix(base, highlight, 0.12)
        error = QColor(200, 40, 40)
        self._transcript.setStyleSheet(
            f"""
            QWidget#transcript {{ background: {_css(base)}; }}
            QFrame#question {{
                background: {_css(question_bg)};
                border: 1px solid {_css(_mix(base, highlight, 0.3))};
                border-radius: 10px;
            }}
            QFrame#answer {{ border: 1px solid transparent; border-radius: 10px; }}
            QFrame#answer[selected="true"] {{
                border: 1px solid {_css(_mix(base, highlight, 0.55))};
                background: {_css(_mix(base, text, 0.03))};
            }}
            QFrame#error {{
                background: {_css(_mix(base, error, 0.12))};
                border: 1px solid {_css(_mix(base, error, 0.7))};
                border-radius: 10px;
            }}
            """
        )

    # ---- public API ------------------------------------------------------------------------

    def show_conversation(self, conv: Conversation) -> None:
        """Render all of `conv`'s messages (any answer being streamed is dropped)."""
        self._render_timer.stop()
        self._streaming = None
        self._stream_text = ""
        self._clear()
        self._messages = list(conv.messages)
        last_answer = None
        for index, message in enumerate(self._messages):
            if message.role == "user":
                self._add(_QuestionWidget(message.content))
            elif message.role == "assistant":
                widget = self._new_answer(index)
                self._unrendered.append((widget, message))
                self._add(widget)
                last_answer = index
        self._render_unrendered()
        self._set_streaming(False)
        self._mark_selected(last_answer)
        self._follow = True
        self._scroll_to_end()

    def begin_answer(self, question: str) -> None:
        """Show `question` and an empty answer to be streamed; the input waits, Stop is on."""
        if self._streaming is not None:
            self._render_timer.stop()
        self._add(_QuestionWidget(question))
        widget = self._new_answer(len(self._messages) + 1)
        widget.show_streaming("")
        self._add(widget)
        self._streaming = widget
        self._stream_text = ""
        if self.input.toPlainText().strip() == question.strip():
            self.input.clear()
        self._set_streaming(True)
        self._follow = True
        self._scroll_to_end()

    def append_token(self, text: str) -> None:
        """Add streamed text; the Markdown is re-rendered at most every RENDER_INTERVAL_MS."""
        if self._streaming is None:
            return
        self._stream_text += text
        if not self._render_timer.isActive():
            self._render_timer.start()

    def finish_answer(self, result: AnswerResult) -> None:
        """Final text with clickable citations, the model and the timings."""
        self._render_timer.stop()
        widget = self._streaming
        if widget is None:
            widget = self._new_answer(len(self._messages) + 1)
            self._add(_QuestionWidget(result.question))
            self._add(widget)
        question, answer = _messages_from_result(result)
        self._messages += [question, answer]
        widget.index = len(self._messages) - 1
        self._answers[widget.index] = widget
        widget.show_message(answer, streamed=True)
        self._streaming = None
        self._stream_text = ""
        self._set_streaming(False)
        self._mark_selected(widget.index)

    def fail_answer(self, message: str) -> None:
        """Show the error in the transcript where the answer would have been."""
        self._render_timer.stop()
        partial = self._stream_text
        if self._streaming is not None:
            self._answers.pop(self._streaming.index, None)
            position = self._column.indexOf(self._streaming)
            self._drop(self._streaming)
            self._column.insertWidget(position, _ErrorWidget(message, partial))
        else:
            self._add(_ErrorWidget(message, ""))
        self._streaming = None
        self._stream_text = ""
        self._set_streaming(False)
        self._scroll_to_end()

    def select_answer(self, index: int) -> None:
        """Mark the answer at `index` as the selected one (does not emit `answer_selected`)."""
        self._mark_selected(index)

    def is_streaming(self) -> bool:
        return self._streaming is not None

    def answer_text(self, index: int) -> str:
        """The plain text shown for the answer at `index` (for tests and accessibility)."""
        widget = self._answers.get(index)
        return widget.browser.toPlainText() if widget else ""

    def answer_browser(self, index: int) -> QTextBrowser | None:
        widget = self._answers.get(index)
        return widget.browser if widget else None

    def streaming_text(self) -> str:
        return self._streaming.browser.toPlainText() if self._streaming else ""

    def transcript_text(self) -> str:
        """Everything the transcript shows, as plain text (for tests)."""
        out: list[str] = []
        for widget in self._column_widgets():
            if isinstance(widget, _QuestionWidget):
                out.append(widget.text.toPlainText())
            elif isinstance(widget, _AnswerWidget):
                out.append(widget.browser.toPlainText())
            elif isinstance(widget, _ErrorWidget):
                out.append(widget.label.text())
        return "\n".join(out)

    # ---- slots -----------------------------------------------------------------------------

    def _on_input_submitted(self) -> None:
        text = self.input.toPlainText().strip()
        if text and self._streaming is None:
            self.question_submitted.emit(text)

    def _on_render_timer_timeout(self) -> None:
        if self._streaming is not None:
            self._streaming.show_streaming(self._stream_text)

    def _on_answer_selected(self, index: int) -> None:
        self._mark_selected(index)
        self.answer_selected.emit(index)

    def _on_answer_copy_clicked(self, index: int) -> None:
        widget = self._answers.get(index)
        if widget is not None and widget.message is not None:
            QGuiApplication.clipboard().setText(answer_to_markdown(widget.message))

    def _on_answer_regenerate_clicked(self, index: int) -> None:
        if self._streaming is None:
            self.regenerate_requested.emit(index)

    def _on_scrollbar_range_changed(self, _low: int, high: int) -> None:
        if self._follow:
            self._scroll.verticalScrollBar().setValue(high)

    def _on_scrollbar_value_changed(self, value: int) -> None:
        bar = self._scroll.verticalScrollBar()
        self._follow = value >= bar.maximum() - 24

    # ---- events ----------------------------------------------------------------------------

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            watched is self.input
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Escape
        ):
            self.stop_requested.emit()
            return True
        return super().eventFilter(watched, event)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_style()
            for widget in self._answers.values():
                widget.rerender()

    # ---- helpers ---------------------------------------------------------------------------

    def _new_answer(self, index: int) -> _AnswerWidget:
        widget = _AnswerWidget(index)
        widget.selected.connect(self._on_answer_selected)
        widget.citation_clicked.connect(self.citation_activated)
        widget.copy_clicked.connect(self._on_answer_copy_clicked)
        widget.regenerate_clicked.connect(self._on_answer_regenerate_clicked)
        widget.export_clicked.connect(self.export_requested)
        self._answers[index] = widget
        return widget

    def _add(self, widget: QWidget) -> None:
        self._empty_box.hide()
        self._column.insertWidget(self._column.count() - 1, widget)  # before the stretch

    def _render_unrendered(self) -> None:
        deadline = time.monotonic() + RENDER_BUDGET_S
        while self._unrendered:
            widget, message = self._unrendered.pop()
            widget.show_message(message)
            if time.monotonic() >= deadline:
                break
        if self._unrendered:
            self._unrendered_timer.start()

    def is_rendering(self) -> bool:
        """True while older answers of the shown conversation are still being rendered."""
        return bool(self._unrendered)

    def _clear(self) -> None:
        self._unrendered.clear()
        self._unrendered_timer.stop()
        for widget in self._column_widgets():
            if widget is not self._empty_box:
                self._drop(widget)
        self._answers.clear()
        self._selected = None
        self._empty_box.show()

    def _drop(self, widget: QWidget) -> None:
        self._column.removeWidget(widget)
        widget.hide()
        widget.setParent(None)
        widget.deleteLater()

    def _column_widgets(self) -> list[QWidget]:
        items = (self._column.itemAt(i) for i in range(self._column.count()))
        return [w for item in items if item is not None and (w := item.widget()) is not None]

    def _mark_selected(self, index: int | None) -> None:
        if self._selected is not None and self._selected in self._answers:
            self._answers[self._selected].set_selected(False)
        self._selected = index
        if index is not None and index in self._answers:
            self._answers[index].set_selected(True)

    def _set_streaming(self, streaming: bool) -> None:
        self.input.setEnabled(not streaming)
        self.stop_button.setEnabled(streaming)
        self._stop_shortcut.setEnabled(streaming)
        for widget in self._answers.values():
            widget.set_busy(streaming)
        self._update_buttons()
        if not streaming:
            self.input.setFocus()

    def _update_buttons(self) -> None:
        idle = self._streaming is None
        self.send_button.setEnabled(idle and bool(self.input.toPlainText().strip()))

    def _scroll_to_end(self) -> None:
        bar = self._scroll.verticalScrollBar()
        bar.setValue(bar.maximum())
