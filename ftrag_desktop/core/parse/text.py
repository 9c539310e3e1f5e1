"""Plain text and source code: decoding (BOMs, UTF-8, cp1252, latin-1) and the one-block parse.

The decoded text is kept exactly as decoded (no newline translation), so that offsets into it
match what an editor opening the same file shows.  Markdown and HTML reuse `decode_text`.
"""

from __future__ import annotations

import codecs

from ftrag_desktop.core.types import Block, ParsedDocument
from ftrag_desktop.errors import ParseError

EXTENSIONS = frozenset(
    {
        # prose, logs and data
        ".txt", ".text", ".log", ".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".yaml", ".yml",
        ".toml", ".ini", ".cfg", ".conf", ".properties", ".env", ".xml", ".rst", ".tex", ".bib",
        ".org", ".adoc", ".asciidoc", ".srt", ".vtt",
        # source code
        ".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".kts",
        ".c", ".h", ".cpp", ".hpp", ".cc", ".hh", ".cxx", ".cs", ".go", ".rs", ".rb", ".php",
        ".swift", ".sh", ".bash", ".zsh", ".fish", ".ps1", ".bat", ".cmd", ".sql", ".r", ".m",
        ".scala", ".lua", ".pl", ".pm", ".css", ".scss", ".sass", ".less", ".vue", ".svelte",
        ".dart", ".ex", ".exs", ".erl", ".hs", ".ml", ".clj", ".jl", ".nim", ".zig", ".v",
        ".graphql", ".proto", ".gradle", ".cmake", ".mk", ".dockerfile", ".tf", ".ipynb",
    }
)  # fmt: skip

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SNIFF = 8192
# Control characters that never appear in real text (tab, newlines, form feed, ESC excluded).
_CONTROL = frozenset(chr(c) for c in range(32) if c not in (9, 10, 12, 13, 27)) | {"\x7f"}


def decode_text(data: bytes) -> str:
    """Bytes to text: a BOM decides; else strict UTF-8, then cp1252, then latin-1.

    Raises ParseError("binary content, not text") for NUL bytes (outside a UTF-16/32 BOM) or
    text dominated by control characters.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise ParseError(f"not valid {encoding.upper()} text ({exc.reason})") from exc
            _reject_binary(text)
            return text
    if b"\x00" in data[:_SNIFF]:
        raise ParseError("binary content, not text", "This file looks like a binary file.")
    text = ""
    for encoding in ("utf-8", "cp1252", "latin-1"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    _reject_binary(text)
    return text


def _reject_binary(text: str) -> None:
    head = text[:_SNIFF]
    if not head:
        return
    controls = sum(1 for ch in head if ch in _CONTROL)
    if "\x00" in head or controls / len(head) > 0.1:
        raise ParseError("binary content, not text", "This file looks like a binary file.")


def require_text(text: str) -> None:
    """Raise ParseError("empty file") when there is nothing but whitespace."""
    if not text.strip():
        raise ParseError("empty file", "The file has no text to index.")


def parse(data: bytes, *, fallback_title: str) -> ParsedDocument:
    """The whole decoded file as one block starting at line 1."""
    text = decode_text(data)
    require_text(text)
    return ParsedDocument(title=fallback_title, blocks=(Block(text=text, start=0, line_start=1),))
