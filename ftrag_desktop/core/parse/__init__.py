"""The parser registry: which files we read, and `parse_file`, the one entry point.

The parser is chosen by extension; PDFs are also recognised by their magic bytes, so a `.pdf`
that is not one fails clearly and a PDF saved under a text extension is still read as a PDF.
Every failure caused by the file itself is a `ParseError` with a short reason (the status
shown to the user); no other exception type escapes for bad input.  Parsing runs inside the
guarded worker processes of `parse.pool` when called by the indexer.
"""

from __future__ import annotations

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
_PDF_MAGIC_WINDOW = 1024  # real readers accept junk before %PDF within the first KB

__all__ = [
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


def _read(path: Path, max_bytes: int) -> bytes:
    too_large_hint = "Raise parse_max_bytes in the settings to index it."
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ParseError(
                f"file too large ({_human_size(size)}; limit {_human_size(max_bytes)})",
                too_large_hint,
            )
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError as exc:
        raise ParseError("file vanished while reading") from exc
    except PermissionError as exc:
        raise ParseError("permission denied", "Allow your user to read this file.") from exc
    except IsADirectoryError as exc:
        raise ParseError("not a file (a directory)") from exc
    except OSError as exc:
        raise ParseError(f"could not read the file ({exc.strerror or exc})") from exc
    if len(data) > max_bytes:  # it grew between stat() and read()
        raise ParseError(f"file too large (over {_human_size(max_bytes)})", too_large_hint)
    return data


def parse_file(path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedDocument:
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
        return _dispatch(suffix, data, stem, max_bytes)
    except (ParseError, MemoryError):
        raise
    except RecursionError as exc:
        raise ParseError("too deeply nested to parse") from exc
    except Exception as exc:  # a parser bug or a hostile file must still end as a status
        raise ParseError(f"could not parse: {type(exc).__name__}: {exc}") from exc


def _dispatch(suffix: str, data: bytes, stem: str, max_bytes: int) -> ParsedDocument:
    if suffix == ".pdf":
        if b"%PDF" not in data[:_PDF_MAGIC_WINDOW]:
            raise ParseError(
                "not a PDF (content does not start with %PDF)",
                "The file has a .pdf name but holds something else.",
            )
        return pdf.parse(data, fallback_title=stem)
    if data.startswith(b"%PDF-") and suffix not in docx.EXTENSIONS:
        # A PDF saved under a text name; if it is not a readable PDF after all, it may be a
        # text that merely begins with "%PDF-", so try the extension's own parser too.
        try:
            return pdf.parse(data, fallback_title=stem)
        except ParseError as pdf_error:
            try:
                return _by_extension(suffix, data, stem, max_bytes)
            except ParseError:
                raise pdf_error from None
    return _by_extension(suffix, data, stem, max_bytes)


def _by_extension(suffix: str, data: bytes, stem: str, max_bytes: int) -> ParsedDocument:
    if suffix in markdown.EXTENSIONS:
        return markdown.parse(data, fallback_title=stem)
    if suffix in html.EXTENSIONS:
        return html.parse(data, fallback_title=stem)
    if suffix in docx.EXTENSIONS:
        return docx.parse(data, fallback_title=stem, max_bytes=max_bytes)
    return text.parse(data, fallback_title=stem)
