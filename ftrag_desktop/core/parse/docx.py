"""DOCX: paragraphs, headings and tables from `word/document.xml` (stdlib zipfile + ElementTree).

The extracted text (paragraphs separated by blank lines, table rows one line each with cells
joined by " | ") is the location unit of a DOCX; sections split at paragraphs styled
`Title`/`Heading1..9` (or carrying an outline level), with the heading text in `heading_path`.
Archive members are size-checked before they are inflated, so a zip bomb is refused cheaply.
"""

from __future__ import annotations

import io
import re
import zipfile
from xml.etree import ElementTree

from ftrag_desktop.core.types import Block, ParsedDocument
from ftrag_desktop.errors import ParseError

EXTENSIONS = frozenset({".docx", ".docm", ".dotx"})

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_MAX_RATIO = 100
_RATIO_CHECK_ABOVE = 1024 * 1024  # small members may compress very well legitimately
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_BOMB_HINT = "The file declares far more content than its size; it is not indexed for safety."


def _read_member(archive: zipfile.ZipFile, name: str, max_bytes: int) -> bytes | None:
    try:
        info = archive.getinfo(name)
    except KeyError:
        return None
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > max_bytes or (info.file_size > _RATIO_CHECK_ABOVE and ratio > _MAX_RATIO):
        raise ParseError("suspicious archive (zip bomb?)", _BOMB_HINT)
    out = bytearray()
    # The declared size can lie; count what actually comes out.
    with archive.open(info) as member:
        while chunk := member.read(1024 * 1024):
            out += chunk
            if len(out) > max_bytes or len(out) > max(info.file_size, 0) + 1024 * 1024:
                raise ParseError("suspicious archive (zip bomb?)", _BOMB_HINT)
    return bytes(out)


def _xml(data: bytes, what: str) -> ElementTree.Element:
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise ParseError(f"not a valid DOCX ({what} declares a DTD)")
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise ParseError(f"not a valid DOCX ({what} is not well-formed XML: {exc})") from exc


def _paragraph_text(paragraph: ElementTree.Element) -> str:
    pieces: list[str] = []
    for el in paragraph.iter():
        if el.tag == f"{_W}t" and el.text:
            pieces.append(el.text)
        elif el.tag == f"{_W}tab":
            pieces.append("\t")
        elif el.tag in (f"{_W}br", f"{_W}cr"):
            pieces.append("\n")
    return "".join(pieces)


def _heading_level(paragraph: ElementTree.Element) -> int | None:
    """0 for Title, 1..9 for headings, None for body text."""
    props = paragraph.find(f"{_W}pPr")
    if props is None:
        return None
    style = props.find(f"{_W}pStyle")
    if style is not None:
        name = style.get(f"{_W}val", "")
        if name.lower() == "title":
            return 0
        match = _HEADING_STYLE.match(name)
        if match:
            return int(match.group(1))
    outline = props.find(f"{_W}outlineLvl")
    if outline is not None:
        value = outline.get(f"{_W}val", "")
        if value.isdigit() and int(value) < 9:
            return int(value) + 1
    return None


def _items(body: ElementTree.Element) -> list[tuple[int | None, str]]:
    """Body content in reading order: (heading level or None, text) per paragraph or table."""
    items: list[tuple[int | None, str]] = []

    def visit(el: ElementTree.Element) -> None:
        if el.tag == f"{_W}p":
            items.append((_heading_level(el), _paragraph_text(el)))
        elif el.tag == f"{_W}tbl":
            rows: list[str] = []
            for row in el.iter(f"{_W}tr"):
                cells = [
                    " ".join(_paragraph_text(p).strip() for p in cell.iter(f"{_W}p")).strip()
                    for cell in row.findall(f"{_W}tc")
                ]
                if any(cells):
                    rows.append(" | ".join(cells))
            items.append((None, "\n".join(rows)))
        else:
            for child in el:
                visit(child)

    visit(body)
    return items


def parse(data: bytes, *, fallback_title: str, max_bytes: int) -> ParsedDocument:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ParseError(
            "not a valid DOCX (not a zip archive)",
            "Open the file in your word processor and save it again as .docx.",
        ) from exc
    with archive:
        try:
            document = _read_member(archive, "word/document.xml", max_bytes)
            core = _read_member(archive, "docProps/core.xml", max_bytes)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
            raise ParseError(f"not a valid DOCX (damaged archive: {exc})") from exc
    if document is None:
        raise ParseError("not a valid DOCX (no word/document.xml)")
    root = _xml(document, "word/document.xml")
    body = root.find(f"{_W}body")
    items = _items(body if body is not None else root)

    text_parts: list[str] = []
    length = 0
    # Sections: (body start, body end, heading path)
    sections: list[tuple[int, int, tuple[str, ...]]] = []
    stack: list[tuple[int, str]] = []
    body_start = 0
    path: tuple[str, ...] = ()
    title_paragraph = ""
    for level, item in items:
        item = item.strip()
        if not item:
            continue
        if text_parts:
            text_parts.append("\n\n")
            length += 2
        if level is not None:
            heading = re.sub(r"\s+", " ", item)
            if level == 0 and not title_paragraph:
                title_paragraph = heading
            sections.append((body_start, length, path))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading))
            path = tuple(t for _, t in stack)
            text_parts.append(item)
            length += len(item)
            body_start = length
        else:
            text_parts.append(item)
            length += len(item)
    sections.append((body_start, length, path))
    text = "".join(text_parts)
    if not text.strip():
        raise ParseError("empty file", "The document has no text to index.")

    blocks = [
        Block(text=text[start:end], start=start, heading_path=heading_path)
        for start, end, heading_path in sections
        if text[start:end].strip()
    ]
    if not blocks:  # headings only
        blocks = [Block(text=text, start=0)]

    title = ""
    if core is not None:
        try:
            element = _xml(core, "docProps/core.xml").find(_DC_TITLE)
        except ParseError:
            element = None
        if element is not None and element.text:
            title = re.sub(r"\s+", " ", element.text).strip()
    return ParsedDocument(title=title or title_paragraph or fallback_title, blocks=tuple(blocks))
