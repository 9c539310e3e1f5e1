"""PDF through pypdf: one block per page that has text, page numbers 1-based.

Each page's extracted text is normalised (newlines unified, trailing spaces and runs of blank
lines trimmed) *before* it is stored, so chunk offsets index the stored page text exactly.
pypdf's own warnings about non-conforming files are routed to our logger at debug level and
only counted in `ParsedDocument.warnings`.

Hostile files are refused with a reason that names the limit: more pages than `max_pages`
(the page tree's /Count is read before the tree is walked, and the walk itself is capped), and
more than `max_inflated` of decompressed stream data in one document (a decompression bomb: a
few KB of FlateDecode that inflate to gigabytes).  pypdf caps each stream on its own (75 MB)
but keeps every decoded stream cached, so only a budget over the whole document bounds memory.
"""

from __future__ import annotations

import io
import logging
import re
import threading
from typing import Any

from ftrag_desktop.core.types import Block, ParsedDocument
from ftrag_desktop.errors import ParseError

EXTENSIONS = frozenset({".pdf"})

log = logging.getLogger(__name__)

_ENCRYPTED_HINT = (
    "The PDF needs a password; remove the password protection and save a copy in the folder."
)
_SCANNED_HINT = (
    "The pages are images without a text layer. Run OCR on it (for example with ocrmypdf) "
    "and save the result in the folder."
)
_CORRUPT_HINT = "The file is damaged or incomplete; open it in a PDF viewer and save a fresh copy."
_PAGES_HINT = "Split the PDF into smaller files, or raise parse_max_pages in the settings."
_BOMB_HINT = (
    "Its compressed content expands far beyond its size, as decompression bombs do; it is "
    "not indexed for safety. Raise parse_max_bytes in the settings if you trust the file."
)
DEFAULT_MAX_PAGES = 10_000
DEFAULT_MAX_INFLATED = 200 * 1024 * 1024
# Page tree nodes besides the pages: a tree whose nodes have two kids or more has fewer nodes
# than pages, so twice the page limit (and some slack) refuses no real document.
_TREE_SLACK = 1_000
# pypdf's per-stream output caps: its own 75 MB, or the document's budget when that is smaller.
_STREAM_CAP = 75 * 1024 * 1024
_OUTPUT_LIMITS = (
    "zlib_maximum_output_length",
    "lzw_maximum_output_length",
    "run_length_maximum_output_length",
    "brotli_maximum_output_length",
)
_JUNK_TITLES = frozenset(
    {
        "untitled",
        "untitled document",
        "title",
        "document",
        "unknown",
        "none",
        "null",
        "slide 1",
        "microsoft word",
        "model",
        "layout1",
        "page 1",
    }
)
_FILENAME_TITLE = re.compile(
    r"\.(docx?|pdf|dvi|tex|rtf|odt|indd|pptx?|xlsx?|txt|html?|ps|eps|qxd|p65|exe|ai|psd|dwg)$",
    re.IGNORECASE,
)
_WORD_PREFIX = re.compile(r"^microsoft (word|powerpoint|excel) - ", re.IGNORECASE)


class _PypdfWarnings(logging.Handler):
    """Counts pypdf's warnings per thread and passes them on to our logger at debug."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        self.local.count = getattr(self.local, "count", 0) + 1
        try:
            message = record.getMessage()
        except Exception:  # a malformed record must not break parsing
            message = str(record.msg)
        log.debug("pypdf: %s", message)


_handler = _PypdfWarnings()
_pypdf_logger = logging.getLogger("pypdf")
_pypdf_logger.addHandler(_handler)
_pypdf_logger.propagate = False


class _InflateBudget(threading.local):
    """Decompressed bytes one parse may still produce (per thread: a parse is one thread)."""

    left: int | None = None  # None: no parse is counting
    exceeded = False


_budget = _InflateBudget()
_counting_installed = False
_install_lock = threading.Lock()  # the viewer may parse on two threads at once


def _install_counting() -> None:
    """Count every stream pypdf decodes against the running parse's budget.

    pypdf decodes all streams through `pypdf.filters.decode_stream_data`, looked up by name at
    each call, so wrapping that one function sees them all.  Over budget, the stream is refused
    (nothing is cached) and the parse is marked: even if pypdf swallows the error somewhere,
    `parse` still reports the bomb.
    """
    global _counting_installed
    with _install_lock:
        if not _counting_installed:
            _wrap_decoder()
            _counting_installed = True


def _wrap_decoder() -> None:
    from pypdf import filters

    original = filters.decode_stream_data

    def counted(stream: Any) -> bytes:
        data: bytes = original(stream)
        left = _budget.left
        if left is not None:
            left -= len(data)
            _budget.left = left
            if left < 0:
                _budget.exceeded = True
                raise _Inflated()
        return data

    filters.decode_stream_data = counted


class _Inflated(Exception):
    """The document's decoded streams passed the budget."""


def normalise_page_text(text: str) -> str:
    """Unify newlines, drop NULs and trailing spaces, keep at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[ \t\f\v]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def _meaningful_title(raw: object) -> str:
    if not isinstance(raw, str):
        return ""
    title = re.sub(r"\s+", " ", raw.replace("\x00", "")).strip()
    title = _WORD_PREFIX.sub("", title)
    if len(title) < 3 or not any(ch.isalpha() for ch in title):
        return ""
    if title.lower() in _JUNK_TITLES or _FILENAME_TITLE.search(title):
        return ""
    return title


def parse(
    data: bytes,
    *,
    fallback_title: str,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_inflated: int = DEFAULT_MAX_INFLATED,
) -> ParsedDocument:
    """Parse a whole PDF; raises ParseError(reason) for files that cannot or must not be read.

    `max_pages` bounds the page count, `max_inflated` the decompressed stream bytes.
    """
    # Imported here: the app's window needs this module (its viewer) long before any PDF.
    from pypdf import apply_configuration
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PdfReadError

    _install_counting()
    _handler.local.count = 0
    _budget.left, _budget.exceeded = max_inflated, False
    limits: dict[str, Any] = {
        # A page tree larger than the page limit allows is refused while pypdf walks it.
        "page_tree_maximum_entries": 2 * max_pages + _TREE_SLACK,
        # No single stream may inflate past what the whole document may.
        **{name: min(_STREAM_CAP, max_inflated) for name in _OUTPUT_LIMITS},
    }
    try:
        with apply_configuration(None, **limits):
            document = _parse(data, fallback_title, max_pages)
    except MemoryError:
        raise
    except Exception as exc:
        if _budget.exceeded:  # whatever pypdf made of the refusal, the bomb is the reason
            raise _bomb(max_inflated) from exc
        if isinstance(exc, ParseError):
            raise
        if isinstance(exc, FileNotDecryptedError):
            raise ParseError("encrypted", _ENCRYPTED_HINT) from exc
        if isinstance(exc, LimitReachedError):
            raise _limit_error(exc, max_pages, max_inflated) from exc
        if isinstance(exc, PdfReadError):
            raise ParseError(f"corrupt PDF: {exc}", _CORRUPT_HINT) from exc
        # pypdf raises many types on broken files
        raise ParseError(f"corrupt PDF: {type(exc).__name__}: {exc}", _CORRUPT_HINT) from exc
    finally:
        exceeded = _budget.exceeded
        _budget.left, _budget.exceeded = None, False
    if exceeded:  # a decode refused inside pypdf, which carried on without that stream
        raise _bomb(max_inflated)
    noise = _handler.local.count
    if noise:
        warnings = (*document.warnings, f"pypdf reported {noise} problem(s) with this file")
        document = ParsedDocument(document.title, document.blocks, document.pages, warnings)
    return document


def _human(size: int) -> str:
    return f"{size / (1024 * 1024):g} MB" if size >= 1024 * 1024 else f"{size:,} bytes"


def _bomb(max_inflated: int) -> ParseError:
    return ParseError(
        f"PDF content inflates to more than {_human(max_inflated)} "
        "(decompression bomb?; limit parse_max_bytes)",
        _BOMB_HINT,
    )


def _too_many_pages(count: int | None, max_pages: int) -> ParseError:
    counted = f"{count:,}" if count is not None else f"more than {max_pages:,}"
    return ParseError(
        f"too many pages ({counted}; limit {max_pages:,}, parse_max_pages)", _PAGES_HINT
    )


def _limit_error(exc: Exception, max_pages: int, max_inflated: int) -> ParseError:
    """One of pypdf's own safety limits, in words: pages, inflation, or another resource."""
    message = str(exc).lower()
    if "page tree" in message:
        return _too_many_pages(None, max_pages)
    if "decompress" in message or "decoding" in message:
        per_stream = min(_STREAM_CAP, max_inflated)
        limit = "; limit parse_max_bytes" if per_stream == max_inflated else ""
        return ParseError(
            f"a PDF stream inflates to more than {_human(per_stream)} (decompression bomb?{limit})",
            _BOMB_HINT,
        )
    return ParseError(f"PDF exceeds a safety limit of the reader ({exc})", _BOMB_HINT)


def _declared_pages(reader: Any) -> int | None:
    """The page count the document claims (/Count of its page tree root), read cheaply."""
    try:
        count = reader.trailer["/Root"].get_object()["/Pages"].get_object()["/Count"]
        return int(count)
    except MemoryError:
        raise
    except Exception:  # a broken root: the full walk below reports it properly
        return None


def _parse(data: bytes, fallback_title: str, max_pages: int) -> ParsedDocument:
    import pypdf
    from pypdf.errors import DependencyError, LimitReachedError

    reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        try:
            decrypted = reader.decrypt("")
        except (NotImplementedError, DependencyError) as exc:
            raise ParseError(f"encrypted with an unsupported method ({exc})") from exc
        if decrypted == pypdf.PasswordType.NOT_DECRYPTED:
            raise ParseError("encrypted", _ENCRYPTED_HINT)
    declared = _declared_pages(reader)
    if declared is not None and declared > max_pages:
        raise _too_many_pages(declared, max_pages)
    page_count = len(reader.pages)
    if page_count > max_pages:  # /Count understated the tree
        raise _too_many_pages(page_count, max_pages)
    warnings: list[str] = []
    blocks: list[Block] = []
    for number, page in enumerate(reader.pages, start=1):
        if _budget.exceeded:  # pypdf swallowed a refusal: stop at once all the same
            raise _Inflated()
        try:
            raw = page.extract_text()
        except (MemoryError, LimitReachedError, _Inflated):
            raise  # a resource limit: the whole file is refused, not just this page
        except Exception as exc:  # one broken page must not cost the rest of the file
            warnings.append(f"page {number}: text extraction failed ({type(exc).__name__})")
            log.debug("page %d text extraction failed", number, exc_info=True)
            continue
        text = normalise_page_text(raw or "")
        if text:
            blocks.append(Block(text=text, start=0, page=number))
    if not blocks:
        if page_count == 0:
            raise ParseError("empty PDF (no pages)")
        raise ParseError("no text layer (scanned?)", _SCANNED_HINT)

    title = ""
    try:
        metadata = reader.metadata
        title = _meaningful_title(metadata.title if metadata is not None else None)
    except MemoryError:
        raise
    except Exception:  # broken metadata is common and harmless
        warnings.append("unreadable metadata")
    return ParsedDocument(
        title=title or fallback_title,
        blocks=tuple(blocks),
        pages=page_count,
        warnings=tuple(warnings),
    )
