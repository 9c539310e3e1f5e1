"""Parsers on generated inputs: every format, every failure reason, offsets that slice true."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pypdf
import pytest

from bench.hostile_input import bomb_pdf, many_pages_pdf, zip_bomb
from ftrag_desktop.core.parse import (
    PARSER_VERSION,
    SUPPORTED_EXTENSIONS,
    is_supported,
    parse_file,
)
from ftrag_desktop.core.types import ParsedDocument
from ftrag_desktop.errors import ParseError, UserError

# -- helpers ---------------------------------------------------------------------------------


def make_pdf(pages: list[str], title: str | None = None) -> bytes:
    """A small valid PDF whose pages show `pages` in Helvetica (built by hand, xref included)."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_id = 3 + 2 * n_pages
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, text in enumerate(pages):
        lines = text.split("\n")
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    info_ref = b""
    if title is not None:
        objects.append(f"<< /Title ({title}) >>".encode("latin-1"))
        info_ref = f" /Info {len(objects)} 0 R".encode()
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R" % (len(objects) + 1) + info_ref + b" >>\n"
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _para(text: str, style: str | None = None) -> str:
    props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
    return f'<w:p>{props}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>'


def make_docx(body: str, title: str | None = None) -> bytes:
    document = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<w:document xmlns:w="{W}"><w:body>{body}</w:body></w:document>'
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", document)
        if title is not None:
            archive.writestr(
                "docProps/core.xml",
                '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/'
                'metadata/core-properties" xmlns:dc="http://purl.org/dc/elements/1.1/">'
                f"<dc:title>{title}</dc:title></cp:coreProperties>",
            )
    return buf.getvalue()


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def reason_of(path: Path, **kwargs: int) -> str:
    with pytest.raises(ParseError) as info:
        parse_file(path, **kwargs)
    assert isinstance(info.value, UserError)
    return info.value.reason


def assert_offsets(doc: ParsedDocument, source: str) -> None:
    """Every block is the slice of the location text it claims to be."""
    for block in doc.blocks:
        assert source[block.start : block.start + len(block.text)] == block.text
        if block.line_start is not None:
            assert block.line_start == source.count("\n", 0, block.start) + 1


# -- registry --------------------------------------------------------------------------------


def test_registry_knows_the_formats() -> None:
    assert PARSER_VERSION >= 1
    for ext in (".pdf", ".txt", ".md", ".html", ".docx", ".py", ".json", ".csv", ".rs"):
        assert ext in SUPPORTED_EXTENSIONS
        assert is_supported(Path(f"notes/file{ext.upper()}"))
    assert all(ext == ext.lower() and ext.startswith(".") for ext in SUPPORTED_EXTENSIONS)
    assert not is_supported(Path("photo.jpg"))
    assert not is_supported(Path("Makefile"))


def test_unsupported_and_missing_files(tmp_path: Path) -> None:
    assert reason_of(write(tmp_path, "a.jpg", b"\xff\xd8")).startswith("unsupported file type")
    assert reason_of(tmp_path / "gone.txt") == "file vanished while reading"


def test_zero_byte_files_are_empty(tmp_path: Path) -> None:
    for ext in (".pdf", ".md", ".docx", ".txt", ".html"):
        assert reason_of(write(tmp_path, f"zero{ext}", b"")) == "empty file"
    assert reason_of(write(tmp_path, "blank.txt", "  \n\t\n ")) == "empty file"


def test_too_large_is_refused_before_reading(tmp_path: Path) -> None:
    path = write(tmp_path, "big.txt", "x" * 5000)
    assert reason_of(path, max_bytes=1024) == "file too large (5 KB; limit 1 KB, parse_max_bytes)"
    big = tmp_path / "huge.txt"
    with big.open("wb") as handle:  # sparse: 812 MB declared, nothing written
        handle.truncate(812 * 1024 * 1024)
    assert reason_of(big) == "file too large (812 MB; limit 200 MB, parse_max_bytes)"
    with pytest.raises(ParseError) as info:
        parse_file(big)
    assert "parse_max_bytes" in info.value.hint


def test_special_files_are_refused_without_blocking(tmp_path: Path) -> None:
    # Opening a named pipe for reading would wait for a writer forever.
    os.mkfifo(tmp_path / "pipe.txt")
    assert reason_of(tmp_path / "pipe.txt") == "not a regular file (a named pipe)"
    (tmp_path / "folder.md").mkdir()
    assert reason_of(tmp_path / "folder.md") == "not a regular file (a directory)"


def test_too_much_text_is_refused_with_its_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "long.txt", "word " * 1000)
    assert parse_file(path, max_chars=5000).blocks[0].text.startswith("word")
    assert reason_of(path, max_chars=4000) == (
        "too much text (5,000 characters; limit 4,000, parse_max_chars)"
    )
    pdf = write(tmp_path, "long.pdf", make_pdf(["x" * 80] * 3))
    assert reason_of(pdf, max_chars=200) == (
        "too much text (240 characters; limit 200, parse_max_chars)"
    )


# -- text ------------------------------------------------------------------------------------


def test_plain_text_is_one_block(tmp_path: Path) -> None:
    source = "First line\r\nsecond line\n\nthird paragraph é\n"
    doc = parse_file(write(tmp_path, "notes.txt", source))
    assert doc.title == "notes"
    assert len(doc.blocks) == 1
    assert doc.blocks[0].text == source
    assert (doc.blocks[0].start, doc.blocks[0].line_start, doc.blocks[0].page) == (0, 1, None)


def test_cp1252_text_decodes(tmp_path: Path) -> None:
    source = "Café – “quoted” €5 naïve"
    doc = parse_file(write(tmp_path, "legacy.txt", source.encode("cp1252")))
    assert doc.blocks[0].text == source


def test_latin1_fallback_for_bytes_cp1252_lacks(tmp_path: Path) -> None:
    data = b"caf\xe9 \x81 ok"  # 0x81 is undefined in cp1252
    assert parse_file(write(tmp_path, "odd.txt", data)).blocks[0].text == data.decode("latin-1")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32", "utf-8-sig"])
def test_bom_text_decodes(tmp_path: Path, encoding: str) -> None:
    source = "Grüße aus Köln\nzweite Zeile 日本語\n"
    data = source.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    doc = parse_file(write(tmp_path, "bom.txt", data))
    assert doc.blocks[0].text == source  # the BOM itself is not text


def test_binary_junk_is_refused(tmp_path: Path) -> None:
    junk = bytes(range(256)) * 40
    assert reason_of(write(tmp_path, "junk.md", junk)) == "binary content, not text"
    assert reason_of(write(tmp_path, "junk.txt", junk)) == "binary content, not text"
    controls = bytes([1, 2, 3, 4, 5, 6, 7, 8, 65]) * 300  # no NUL, but not text either
    assert reason_of(write(tmp_path, "ctl.log", controls)) == "binary content, not text"


# -- markdown --------------------------------------------------------------------------------

MARKDOWN = """---
title: "Field Guide"
tags: [a, b]
---
Intro before any heading.

# Install

Get it.

## Linux

```bash
# not a heading, a shell comment
apt install thing
```

~~~
## also not a heading
~~~

Setext Section
--------------

Under setext.

# Usage ##

Run it.
"""


def test_markdown_sections_and_paths(tmp_path: Path) -> None:
    doc = parse_file(write(tmp_path, "guide.md", MARKDOWN))
    assert doc.title == "Field Guide"
    paths = [b.heading_path for b in doc.blocks]
    assert paths == [(), ("Install",), ("Install", "Linux"), ("Install", "Setext Section"),
                     ("Usage",)]  # fmt: skip
    assert_offsets(doc, MARKDOWN)
    linux = doc.blocks[2].text
    assert "# not a heading, a shell comment" in linux
    assert "## also not a heading" in linux
    assert "title:" not in doc.blocks[0].text
    assert doc.blocks[0].line_start == 5
    assert doc.blocks[-1].text.strip() == "Run it."


def test_markdown_title_falls_back_to_h1_then_stem(tmp_path: Path) -> None:
    doc = parse_file(write(tmp_path, "a.md", "Text\n\n## Sub\n\nx\n\n# Real Title\n\ny\n"))
    assert doc.title == "Real Title"
    assert parse_file(write(tmp_path, "plain-notes.md", "just text\n")).title == "plain-notes"


def test_markdown_rule_after_paragraph_is_not_heading(tmp_path: Path) -> None:
    source = "line one\nline two\n---\n\n- item\n---\n"
    doc = parse_file(write(tmp_path, "r.md", source))
    assert [b.heading_path for b in doc.blocks] == [()]
    assert_offsets(doc, source)


# -- html ------------------------------------------------------------------------------------

HTML = """<!doctype html><html><head><title>The  Page</title>
<style>body { color: red }</style><script>var hidden = "secret";</script></head>
<body><noscript>enable js</noscript><template><p>tpl</p></template>
<p>Lead   paragraph
 text.</p>
<h1>Main</h1><p>Alpha &amp; beta.</p>
<h2>Details</h2><ul><li>one</li><li>two</li></ul>
<table><tr><th>k</th><td>v</td></tr></table>
<script>alert("no")</script>
<h1>Other</h1><p>Last<br>line</p></body></html>"""


def test_html_visible_text_and_sections(tmp_path: Path) -> None:
    doc = parse_file(write(tmp_path, "page.html", HTML))
    assert doc.title == "The Page"
    everything = "\n".join(b.text for b in doc.blocks)
    for hidden in ("color", "secret", "enable js", "tpl", "alert"):
        assert hidden not in everything
    assert [b.heading_path for b in doc.blocks] == [(), ("Main",), ("Main", "Details"),
                                                    ("Other",)]  # fmt: skip
    assert doc.blocks[0].text.strip() == "Lead paragraph text."
    assert doc.blocks[1].text.strip() == "Alpha & beta."
    assert doc.blocks[2].text.strip() == "one\ntwo\n\nk | v"
    assert doc.blocks[3].text.strip() == "Last\nline"
    # Offsets index one extracted text: blocks appear in order, without overlap.
    ends = [b.start + len(b.text) for b in doc.blocks]
    assert all(ends[i] <= doc.blocks[i + 1].start for i in range(len(ends) - 1))


def test_html_title_from_h1_and_meta_charset(tmp_path: Path) -> None:
    html = '<html><head><meta charset="windows-1252"></head><body><h1>Caf\xe9</h1>x</body>'
    doc = parse_file(write(tmp_path, "c.htm", html.encode("cp1252")))
    assert doc.title == "Café"


# -- docx ------------------------------------------------------------------------------------


def test_docx_headings_and_table(tmp_path: Path) -> None:
    body = (
        _para("Document Title", "Title")
        + _para("Preface text.")
        + _para("Setup", "Heading1")
        + _para("Install the tool.")
        + _para("On Linux", "Heading2")
        + "<w:p><w:r><w:t>Tab</w:t><w:tab/><w:t>bed</w:t><w:br/><w:t>broken</w:t></w:r></w:p>"
        + "<w:tbl><w:tr><w:tc>" + _para("Name") + "</w:tc><w:tc>" + _para("Value")
        + "</w:tc></w:tr><w:tr><w:tc>" + _para("alpha") + "</w:tc><w:tc>" + _para("1")
        + "</w:tc></w:tr></w:tbl>"
        + _para("Usage", "Heading1")
        + _para("Run it.")
    )  # fmt: skip
    doc = parse_file(write(tmp_path, "report.docx", make_docx(body, title="Quarterly Report")))
    assert doc.title == "Quarterly Report"
    by_path = {b.heading_path: b.text for b in doc.blocks}
    assert by_path[("Document Title",)].strip() == "Preface text."
    assert by_path[("Document Title", "Setup")].strip() == "Install the tool."
    linux = by_path[("Document Title", "Setup", "On Linux")]
    assert "Tab\tbed\nbroken" in linux
    assert "Name | Value\nalpha | 1" in linux
    assert by_path[("Document Title", "Usage")].strip() == "Run it."
    starts = [b.start for b in doc.blocks]
    assert starts == sorted(starts)


def test_docx_title_falls_back_to_stem(tmp_path: Path) -> None:
    doc = parse_file(write(tmp_path, "memo.docx", make_docx(_para("hello"))))
    assert doc.title == "memo"
    assert doc.blocks[0].text == "hello"


def test_docx_failures(tmp_path: Path) -> None:
    junk = write(tmp_path, "junk.docx", os.urandom(4096))
    assert reason_of(junk) == "not a valid DOCX (not a zip archive)"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("hello.txt", "hi")
    missing = write(tmp_path, "nodoc.docx", buf.getvalue())
    assert reason_of(missing) == "not a valid DOCX (no word/document.xml)"
    empty = write(tmp_path, "empty.docx", make_docx(_para("   ")))
    assert reason_of(empty) == "empty file"


def test_docx_zip_bomb_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b" " * (20 * 1024 * 1024))
    data = buf.getvalue()
    assert len(data) < 100 * 1024  # 20 MB declared inside a tiny file
    bomb = write(tmp_path, "bomb.docx", data)
    assert reason_of(bomb) == "suspicious archive (zip bomb?)"
    # Declared size beyond the byte limit is refused even at a harmless ratio.
    assert reason_of(bomb, max_bytes=1024 * 1024) == "suspicious archive (zip bomb?)"


# -- pdf -------------------------------------------------------------------------------------


def test_pdf_pages_titles_and_empty_pages(tmp_path: Path) -> None:
    data = make_pdf(["Hello page one", "", "Third page text"], title="A Real Title")
    doc = parse_file(write(tmp_path, "doc.pdf", data))
    assert doc.pages == 3
    assert doc.title == "A Real Title"
    assert [b.page for b in doc.blocks] == [1, 3]  # the empty page is skipped
    assert "Hello page one" in doc.blocks[0].text
    assert all(b.start == 0 and b.text == b.text.strip() for b in doc.blocks)
    untitled = parse_file(write(tmp_path, "scan-2024.pdf", make_pdf(["x y"], title="doc1.docx")))
    assert untitled.title == "scan-2024"


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    with pytest.raises(ParseError) as info:
        parse_file(write(tmp_path, "scan.pdf", make_pdf(["", ""])))
    assert info.value.reason == "no text layer (scanned?)"
    assert "OCR" in info.value.hint


def test_pdf_magic_bytes(tmp_path: Path) -> None:
    fake = write(tmp_path, "fake.pdf", b"<html>this is not a pdf</html>")
    assert reason_of(fake) == "not a PDF (content does not start with %PDF)"
    junk = write(tmp_path, "junk.pdf", os.urandom(3000).replace(b"%PDF", b"...."))
    assert reason_of(junk) == "not a PDF (content does not start with %PDF)"
    # Leading garbage within the first KB is tolerated, as real readers do.
    lead = write(tmp_path, "lead.pdf", b"\r\n garbage \n" + make_pdf(["after garbage"]))
    assert "after garbage" in parse_file(lead).blocks[0].text
    # A PDF saved under a text extension is read as a PDF.
    disguised = parse_file(write(tmp_path, "disguised.txt", make_pdf(["inside a pdf"])))
    assert disguised.pages == 1
    assert "inside a pdf" in disguised.blocks[0].text
    # A text that merely begins with %PDF- stays text.
    note = parse_file(write(tmp_path, "note.md", "%PDF-1.7 is the version we target.\n"))
    assert note.blocks[0].text.startswith("%PDF-1.7 is the version")


def test_truncated_pdfs_fail_with_a_specific_reason(tmp_path: Path) -> None:
    data = make_pdf(["Some text on a page"] * 3)
    for cut in (12, 40, len(data) // 3, len(data) - 30):
        with pytest.raises(ParseError) as info:
            parse_file(write(tmp_path, f"cut{cut}.pdf", data[:cut]))
        assert info.value.reason.startswith("corrupt PDF: ")
        assert len(info.value.reason) > len("corrupt PDF: ")
        assert info.value.hint


def test_pdf_decompression_bombs_are_refused_by_budget(tmp_path: Path) -> None:
    bomb = "PDF content inflates to more than {} (decompression bomb?; limit parse_max_bytes)"
    # One stream of 1 GB in a 3 KB file: stopped as it passes the per-stream cap.
    one = write(tmp_path, "one.pdf", bomb_pdf(1024 * 1024 * 1024))
    assert one.stat().st_size < 10_000
    assert reason_of(one) == "a PDF stream inflates to more than 75 MB (decompression bomb?)"
    assert reason_of(one, max_bytes=8 * 1024 * 1024) == (
        "a PDF stream inflates to more than 8 MB (decompression bomb?; limit parse_max_bytes)"
    )
    with pytest.raises(ParseError) as info:
        parse_file(one)
    assert "parse_max_bytes" in info.value.hint
    # Ten streams of 4 MB: each harmless, together over a 16 MB budget (pypdf alone would
    # keep all of them in memory).
    many = write(tmp_path, "many.pdf", bomb_pdf(4 * 1024 * 1024, pages=10))
    assert reason_of(many, max_bytes=16 * 1024 * 1024) == bomb.format("16 MB")
    # Within the budget the same file is just a PDF with no text.
    assert reason_of(many, max_bytes=64 * 1024 * 1024) == "no text layer (scanned?)"


def test_pdf_page_limit_uses_the_claimed_and_the_real_count(tmp_path: Path) -> None:
    pages = write(tmp_path, "pages.pdf", make_pdf(["one", "two", "three"]))
    assert parse_file(pages, max_pages=3).pages == 3
    assert reason_of(pages, max_pages=2) == "too many pages (3; limit 2, parse_max_pages)"
    # A root that claims 1 page over a tree of 30: the count of the walk decides.
    liar = write(tmp_path, "liar.pdf", many_pages_pdf(30, claimed=1, fanout=5))
    assert reason_of(liar, max_pages=10) == "too many pages (30; limit 10, parse_max_pages)"
    # A tree far past the limit is not walked to its end: pypdf stops at twice the limit.
    huge = write(tmp_path, "huge.pdf", many_pages_pdf(5000, claimed=1, fanout=50))
    assert reason_of(huge, max_pages=10) == (
        "too many pages (more than 10; limit 10, parse_max_pages)"
    )


def test_docx_zip_bomb_with_a_lying_header(tmp_path: Path) -> None:
    honest = tmp_path / "honest.docx"
    zip_bomb(honest, "word/document.xml", 256 * 1024 * 1024)
    assert honest.stat().st_size < 1024 * 1024
    assert reason_of(honest) == "suspicious archive (zip bomb?)"
    lying = tmp_path / "lying.docx"
    zip_bomb(lying, "word/document.xml", 256 * 1024 * 1024, declared=10_000)
    assert reason_of(lying) in (
        "suspicious archive (zip bomb?)",
        "not a valid DOCX (damaged archive: Bad CRC-32 for file 'word/document.xml')",
    )


def test_encrypted_pdfs(tmp_path: Path) -> None:
    for user_password, expect_ok in (("secret", False), ("", True)):
        writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(make_pdf(["classified"]))))
        writer.encrypt(user_password=user_password, owner_password="owner", algorithm="AES-256")
        buf = io.BytesIO()
        writer.write(buf)
        path = write(tmp_path, f"enc-{expect_ok}.pdf", buf.getvalue())
        if expect_ok:
            assert "classified" in parse_file(path).blocks[0].text
        else:
            with pytest.raises(ParseError) as info:
                parse_file(path)
            assert info.value.reason == "encrypted"
            assert "password" in info.value.hint
