"""Answers as rich text: Markdown into a QTextDocument, styled from the palette, with links.

Qt's Markdown import lacks what answers need: `_polish` puts code blocks in shaded boxes,
gives tables a grid and a header row, and styles citations.  Each `[n]` citation becomes a
`cite:<message index>:<n>` link (`render_markdown`, or `link_citations` on an answer already
rendered); `parse_cite_url` reads one back.  `StreamRenderer` renders a streamed answer
re-rendering only its unsettled tail, so long answers stay cheap.  No widgets live here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from PySide6.QtCore import QUrl
from PySide6.QtGui import (
    QColor,
    QFont,
    QGuiApplication,
    QPalette,
    QTextBlock,
    QTextBlockFormat,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextDocumentFragment,
    QTextFormat,
    QTextFrameFormat,
    QTextTable,
)
from PySide6.QtWidgets import QTextBrowser

from ftrag_desktop.app.colors import mix
from ftrag_desktop.core.answer import parse_citations
from ftrag_desktop.core.export import CITATION, FENCE, replace_citations, source_location

__all__ = [
    "CODE_BOX",
    "StreamRenderer",
    "link_citations",
    "parse_cite_url",
    "render_markdown",
    "settled_length",
]

CODE_BOX = QTextFormat.Property.UserProperty + 1  # marks the frames that hold code blocks


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
    # The app palette: the browser's own Base is transparent (see chat_messages.TextBlock).
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
    code_bg = mix(base, text, 0.07)
    grid = mix(base, text, 0.25)
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
