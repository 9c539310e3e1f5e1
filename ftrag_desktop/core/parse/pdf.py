"""PDF through pypdf: one block per page that has text, page numbers 1-based.

Each page's extracted text is normalised (newlines unified, trailing spaces and runs of blank
lines trimmed) *before* it is stored, so chunk offsets index the stored page text exactly.
pypdf's own warnings about non-conforming files are routed to our logger at debug level and
only counted in `ParsedDocument.warnings`.
"""

from __future__ import annotations

import io
import logging
import re
import threading

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


def parse(data: bytes, *, fallback_title: str) -> ParsedDocument:
    # Imported here: the app's window needs this module (its viewer) long before any PDF.
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    _handler.local.count = 0
    try:
        document = _parse(data, fallback_title)
    except (ParseError, MemoryError):
        raise
    except FileNotDecryptedError as exc:
        raise ParseError("encrypted", _ENCRYPTED_HINT) from exc
    except PdfReadError as exc:
        raise ParseError(f"corrupt PDF: {exc}", _CORRUPT_HINT) from exc
    except Exception as exc:  # pypdf raises many types on broken files
        raise ParseError(f"corrupt PDF: {type(exc).__name__}: {exc}", _CORRUPT_HINT) from exc
    noise = _handler.local.count
    if noise:
        warnings = (*document.warnings, f"pypdf reported {noise} problem(s) with this file")
        document = ParsedDocument(document.title, document.blocks, document.pages, warnings)
    return document


def _parse(data: bytes, fallback_title: str) -> ParsedDocument:
    import pypdf
    from pypdf.errors import DependencyError

    reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        try:
            decrypted = reader.decrypt("")
        except (NotImplementedError, DependencyError) as exc:
            raise ParseError(f"encrypted with an unsupported method ({exc})") from exc
        if decrypted == pypdf.PasswordType.NOT_DECRYPTED:
            raise ParseError("encrypted", _ENCRYPTED_HINT)
    page_count = len(reader.pages)
    warnings: list[str] = []
    blocks: list[Block] = []
    for number, page in enumerate(reader.pages, start=1):
        try:
            raw = page.extract_text()
        except MemoryError:
            raise
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
