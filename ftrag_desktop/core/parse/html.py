"""HTML: the visible text (stdlib html.parser), split into sections at h1-h6.

Script, style, noscript, template, svg and the head (apart from its title) are skipped.  Block
elements start a new line (paragraph-like ones a blank line), whitespace inside a line is
collapsed, `<pre>` is kept verbatim.  Offsets are into this extracted text, which is the
location unit of an HTML document; the heading text itself lives in `heading_path`.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from ftrag_desktop.core.parse.text import decode_text, require_text
from ftrag_desktop.core.types import Block, ParsedDocument
from ftrag_desktop.errors import ParseError

EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})

_SKIP = frozenset({"script", "style", "noscript", "template", "svg", "math", "head", "iframe"})
_PARAGRAPH = frozenset(
    {
        "p", "div", "section", "article", "aside", "header", "footer", "main", "nav", "table",
        "ul", "ol", "dl", "blockquote", "pre", "figure", "figcaption", "form", "fieldset",
        "details", "summary", "address", "hr", "body", "h1", "h2", "h3", "h4", "h5", "h6",
    }
)  # fmt: skip
_LINE = frozenset({"br", "li", "tr", "dt", "dd", "caption", "option", "legend"})
_CELL = frozenset({"td", "th"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_SPACE = re.compile(r"\s+")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.pending_break = 0  # newlines owed before the next text
        self.pending_space = False
        self.pending_cell = False
        self.at_line_start = True
        self.skip_depth = 0
        self.pre_depth = 0
        self.in_title = False
        self.title = ""
        self.heading: tuple[int, int, list[str]] | None = None  # level, start offset, words
        # (level, heading text, offset where the heading starts, offset where its body starts)
        self.headings: list[tuple[int, str, int, int]] = []

    # -- output -------------------------------------------------------------
    def _break(self, newlines: int) -> None:
        self.pending_space = False
        self.pending_cell = False
        if self.length:
            self.pending_break = max(self.pending_break, newlines)

    def _write(self, text: str) -> None:
        if self.pending_break and self.length:
            self.parts.append("\n" * self.pending_break)
            self.length += self.pending_break
            self.at_line_start = True
        self.pending_break = 0
        if not self.at_line_start and (self.pending_cell or self.pending_space):
            sep = " | " if self.pending_cell else " "
            self.parts.append(sep)
            self.length += len(sep)
        self.pending_space = self.pending_cell = False
        self.parts.append(text)
        self.length += len(text)
        self.at_line_start = text.endswith("\n")

    # -- parser callbacks ---------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.skip_depth = 0  # an unclosed <head> ends where the body begins
        if tag == "title":
            self.in_title = True
            return
        if tag in _SKIP:
            self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if tag == "pre":
            self.pre_depth += 1
        if tag in _HEADINGS:
            self._break(2)
            self.heading = (_HEADINGS[tag], self.length, [])
        elif tag in _PARAGRAPH:
            self._break(2)
        elif tag in _LINE:
            self._break(1)
        elif tag in _CELL:
            self.pending_cell = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in _SKIP and tag != "head":
            self.skip_depth = max(0, self.skip_depth - 1)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
            return
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth:
            return
        if tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        if tag in _HEADINGS and self.heading is not None:
            level, start, words = self.heading
            self.heading = None
            self._break(2)
            text = _SPACE.sub(" ", "".join(words)).strip()
            self.headings.append((level, text, start, self.length))
        elif tag in _PARAGRAPH:
            self._break(2)
        elif tag in _LINE:
            self._break(1)

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title += data
            return
        if self.skip_depth:
            return
        if self.heading is not None:
            self.heading[2].append(data)
        if self.pre_depth:
            if data:
                self._write(data)
            return
        if data[:1].isspace():
            self.pending_space = True
        words = data.split()
        if words:
            self._write(" ".join(words))
            self.pending_space = data[-1].isspace()


def _decode(data: bytes) -> str:
    declared = _CHARSET.search(data[:4096])
    # A BOM wins over the meta tag; a page that could read its own meta tag is not UTF-16/32.
    bom = data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"))
    if declared and not bom and not declared.group(1).lower().startswith((b"utf-16", b"utf-32")):
        try:
            text = data.decode(declared.group(1).decode("ascii"))
        except (LookupError, UnicodeDecodeError):
            pass
        else:
            if "\x00" not in text[:8192]:
                return text
    return decode_text(data)


def parse(data: bytes, *, fallback_title: str) -> ParsedDocument:
    source = _decode(data)
    extractor = _Extractor()
    try:
        extractor.feed(source)
        extractor.close()
    except AssertionError as exc:  # html.parser signals hopeless markup this way
        raise ParseError(f"malformed HTML: {exc}") from exc
    text = "".join(extractor.parts)
    require_text(text)

    # Sections: body start, body end (where the next heading begins), heading path.
    sections: list[tuple[int, int, tuple[str, ...]]] = []
    stack: list[tuple[int, str]] = []
    body_start = 0
    path: tuple[str, ...] = ()
    for level, heading, heading_start, heading_body in extractor.headings:
        sections.append((body_start, heading_start, path))
        while stack and stack[-1][0] >= level:
            stack.pop()
        if heading:
            stack.append((level, heading))
        body_start, path = heading_body, tuple(t for _, t in stack)
    sections.append((body_start, len(text), path))

    blocks: list[Block] = []
    for start, end, heading_path in sections:
        body = text[start:end]
        if body.strip():
            blocks.append(Block(text=body, start=start, heading_path=heading_path))
    if not blocks:
        blocks.append(Block(text=text, start=0))

    first_h1 = next((h for level, h, _, _ in extractor.headings if level == 1 and h), "")
    title = _SPACE.sub(" ", extractor.title).strip() or first_h1 or fallback_title
    return ParsedDocument(title=title, blocks=tuple(blocks))
