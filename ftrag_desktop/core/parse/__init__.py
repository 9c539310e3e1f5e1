"""The parser registry: which files we read, and `parse_file`, the one entry point.

The parser is chosen by extension; PDFs are also recognised by their magic bytes, so a `.pdf`
that is not one fails clearly and a PDF saved under a text extension is still read as a PDF.
Every failure caused by the file itself is a `ParseError` with a short reason (the status
shown to the user); no other exception type escapes for bad input.  Parsing runs inside the
guarded worker processes of `parse.pool` when called by the indexer.

Limits, each named in the reason when hit (the settings of the same name set them): the file's
size (`parse_max_bytes`, checked on the open handle before reading, and also the most a PDF
or DOCX may decompress to), a PDF's pages (`parse_max_pages`) and the text one document may
yield (`parse_max_chars`: every character becomes chunks, vectors and index rows in the
indexer, so this bounds the indexer's memory for one document).  Only regular files are read:
a named pipe or device with a document's name is refused without opening it for long.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ftrag_desktop.core.parse import docx, html, markdown, pdf, text
from ftrag_desktop.core.types import ParsedDocument
from ftrag_desktop.errors import ParseError

# Bump whenever any parser's output changes: documents parsed by an older version are re-parsed.
PARSER_VERSION: int = 1

SUPPORTED_EXTENSIONS: frozenset[str] = (
    pdf.EXTENSIONS | text.EXTENSIONS | markdown.EXTENSIONS | html.EXTENSIONS | docx.EXTENSIONS
)
DEFAULT_MAX_BYTES = 200 * 1024 * 1024
DEFAULT_MAX_PAGES = pdf.DEFAULT_MAX_PAGES
DEFAULT_MAX_CHARS = 10_000_000
_READ_BLOCK = 1 << 20
_NOT_REGULAR = {
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a directory",
}
_PDF_MAGIC_WINDOW = 1024  # real readers accept junk before %PDF within the first KB

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_CHARS",
    "DEFAULT_MAX_PAGES",
    "PARSER_VERSION",
    "SUPPORTED_EXTENSIONS",
    "ParseError",
    "is_supported",
    "parse_file",
]


def is_supported(path: Path) -> bool:
    """Whether `path` has an extension we can parse (the content is checked on parsing)."""
    return path.suffix.lower() in SUPPORTED_EXTENSIONS


def _human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.0f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} bytes"


def _too_large(size: int, max_bytes: int) -> ParseError:
    return ParseError(
        f"file too large ({_human_size(size)}; limit {_human_size(max_bytes)}, parse_max_bytes)",
        "Raise parse_max_bytes in the settings to index it.",
    )


def _read(path: Path, max_bytes: int) -> bytes:
    try:
        # O_NONBLOCK: opening a named pipe must not wait for a writer; the check below refuses
        # it.  Checking the open handle, not the name, leaves no gap for a swap in between.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError as exc:
        raise ParseError("file vanished while reading") from exc
    except PermissionError as exc:
        raise ParseError("permission denied", "Allow your user to read this file.") from exc
    except IsADirectoryError as exc:
        raise ParseError("not a file (a directory)") from exc
    except OSError as exc:
        raise ParseError(f"could not read the file ({(exc.strerror or str(exc)).lower()})") from exc
    try:
        st = os.fstat(fd)
        kind = _NOT_REGULAR.get(stat.S_IFMT(st.st_mode))
        if kind is not None:
            raise ParseError(f"not a regular file ({kind})", "Only ordinary files are indexed.")
        if st.st_size > max_bytes:
            raise _too_large(st.st_size, max_bytes)
        # One read of the size fstat() gave; more only if the file is growing meanwhile.
        pieces: list[bytes] = []
        total = 0
        want = st.st_size + 1
        with open(fd, "rb", buffering=0, closefd=False) as raw:
            while total <= max_bytes:
                piece = raw.read(min(want, max_bytes + 1 - total))
                if not piece:
                    break
                pieces.append(piece)
                total += len(piece)
                want = _READ_BLOCK
    except OSError as exc:
        raise ParseError(f"could not read the file ({(exc.strerror or str(exc)).lower()})") from exc
    finally:
        os.close(fd)
    if total > max_bytes:  # it grew between fstat() and the end of the read
        raise _too_large(total, max_bytes)
    return b"".join(pieces)  # no copy for the usual single piece


def parse_file(
    path: Path,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> ParsedDocument:
    """Parse one file into a titled list of located blocks; raises ParseError(reason)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise ParseError(f"unsupported file type ({suffix or 'no extension'})")
    data = _read(path, max_bytes)
    if not data or data.isspace():
        raise ParseError("empty file", "The file has no text to index.")
    stem = path.stem or path.name
    try:
        document = _dispatch(suffix, data, stem, _Limits(max_bytes, max_pages))
    except (ParseError, MemoryError):
        raise
    except RecursionError as exc:
        raise ParseError("too deeply nested to parse") from exc
    except Exception as exc:  # a parser bug or a hostile file must still end as a status
        raise ParseError(f"could not parse: {type(exc).__name__}: {exc}") from exc
    chars = sum(len(block.text) for block in document.blocks)
    if chars > max_chars:
        raise ParseError(
            f"too much text ({chars:,} characters; limit {max_chars:,}, parse_max_chars)",
            "Split the file into smaller ones, or raise parse_max_chars in the settings "
            "(indexing takes about 50 bytes of memory per character).",
        )
    return document


class _Limits:
    """What one parse may consume, handed down to the format parsers."""

    __slots__ = ("max_bytes", "max_pages")

    def __init__(self, max_bytes: int, max_pages: int) -> None:
        self.max_bytes = max_bytes
        self.max_pages = max_pages


def _dispatch(suffix: str, data: bytes, stem: str, limits: _Limits) -> ParsedDocument:
    if suffix == ".pdf":
        if b"%PDF" not in data[:_PDF_MAGIC_WINDOW]:
            raise ParseError(
                "not a PDF (content does not start with %PDF)",
                "The file has a .pdf name but holds something else.",
            )
        return _pdf(data, stem, limits)
    if data.startswith(b"%PDF-") and suffix not in docx.EXTENSIONS:
        # A PDF saved under a text name; if it is not a readable PDF after all, it may be a
        # text that merely begins with "%PDF-", so try the extension's own parser too.
        try:
            return _pdf(data, stem, limits)
        except ParseError as pdf_error:
            try:
                return _by_extension(suffix, data, stem, limits.max_bytes)
            except ParseError:
                raise pdf_error from None
    return _by_extension(suffix, data, stem, limits.max_bytes)


def _pdf(data: bytes, stem: str, limits: _Limits) -> ParsedDocument:
    return pdf.parse(
        data, fallback_title=stem, max_pages=limits.max_pages, max_inflated=limits.max_bytes
    )


def _by_extension(suffix: str, data: bytes, stem: str, max_bytes: int) -> ParsedDocument:
    if suffix in markdown.EXTENSIONS:
        return markdown.parse(data, fallback_title=stem)
    if suffix in html.EXTENSIONS:
        return html.parse(data, fallback_title=stem)
    if suffix in docx.EXTENSIONS:
        return docx.parse(data, fallback_title=stem, max_bytes=max_bytes)
    return text.parse(data, fallback_title=stem)
