"""All 150 shared real-world PDFs through the guarded pool: every file ends well.

Encryption ground truth comes from pypdf itself, independently of our parser: a file whose
empty user password does not open it needs a password and must fail as "encrypted".
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pypdf
import pytest

from ftrag_desktop.core.chunk import chunk_document
from ftrag_desktop.core.parse.pool import ParseOutcome, ParsePool
from tests.conftest import PDF_DIR


def needs_password(path: Path) -> bool:
    reader = pypdf.PdfReader(path)
    return bool(reader.is_encrypted) and reader.decrypt("") == pypdf.PasswordType.NOT_DECRYPTED


@pytest.fixture(scope="module")
def outcomes() -> dict[str, ParseOutcome]:
    paths = sorted(PDF_DIR.rglob("*.pdf"))
    started = time.monotonic()
    with ParsePool(workers=2, timeout_s=60) as pool:
        results = {o.path: o for o in pool.map(paths)}
    elapsed = time.monotonic() - started
    # Printed, not asserted: speed belongs in bench/ (it depends on the machine's load).
    print(f"\nparsed {len(paths)} PDFs with 2 workers in {elapsed:.1f} s")
    return results


def test_every_pdf_ends_with_a_document_or_a_specific_reason(
    outcomes: dict[str, ParseOutcome],
) -> None:
    manifest = [json.loads(line) for line in (PDF_DIR / "manifest.jsonl").open()]
    assert len(outcomes) == len(manifest) == 150
    for path, outcome in outcomes.items():
        if outcome.document is None:
            assert outcome.error.strip(), path
            assert "Traceback" not in outcome.error
            assert not outcome.error.startswith(("parser error", "the parser crashed")), (
                path,
                outcome.error,
            )
            continue
        doc = outcome.document
        assert outcome.error == ""
        assert doc.title.strip()
        assert doc.pages is not None and doc.pages >= 1
        assert doc.blocks and all(b.text.strip() for b in doc.blocks)
        pages = [b.page for b in doc.blocks]
        assert all(p is not None and 1 <= p <= doc.pages for p in pages), path
        assert pages == sorted(set(pages))  # one block per page, in order
        for chunk in chunk_document(doc):
            block = next(b for b in doc.blocks if b.page == chunk.page)
            assert block.text[chunk.char_start : chunk.char_end] == chunk.text


def test_known_failures_have_the_right_reason(outcomes: dict[str, ParseOutcome]) -> None:
    manifest = {
        str(PDF_DIR.parent / row["path"]): row
        for row in map(json.loads, (PDF_DIR / "manifest.jsonl").open())
    }
    locked = 0
    for path, row in manifest.items():
        outcome = outcomes[path]
        if row.get("encrypted") and needs_password(Path(path)):
            locked += 1
            assert outcome.error == "encrypted", (path, outcome.error)
            assert "password" in outcome.hint
        elif row["bytes"] == 0:
            assert outcome.error == "empty file"
        elif row["pypdf_status"] != "ok":
            assert outcome.error.startswith("corrupt PDF: "), (path, outcome.error)
        elif row.get("text_chars_first3pages", 0) > 0 and row.get("pages", 0) <= 3:
            # pypdf found text when the manifest was made: we must find it too.
            assert outcome.document is not None, (path, outcome.error)
    # README: several files carry a user password (r2..r6, libreoffice, password-example...).
    assert locked >= 8
    scanned = [o for o in outcomes.values() if o.error == "no text layer (scanned?)"]
    assert scanned and all("OCR" in o.hint for o in scanned)
