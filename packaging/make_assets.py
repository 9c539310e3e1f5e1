"""Regenerate the packaging assets kept in `resources/` (run by hand; the outputs are committed).

    .venv/bin/python packaging/make_assets.py

- `resources/icons/ftrag.ico` (Windows) and `resources/icons/ftrag.icns` (macOS), built from the
  PNG icons, so that building needs no image library;
- `resources/samples/ftrag-sample.pdf`, the self-test's sample: two pages of our own text
  (MIT, like the app), AES-256 encrypted with an empty user password, so that parsing it also
  proves the bundle's `cryptography` works.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ICONS = REPO / "resources" / "icons"
SAMPLES = REPO / "resources" / "samples"
ICO_SIZES = (16, 32, 48, 64, 128, 256)
# ICNS element types holding PNG data, by pixel size.
ICNS_TYPES = {16: b"icp4", 32: b"icp5", 64: b"icp6", 128: b"ic07", 256: b"ic08", 512: b"ic09"}

SAMPLE_TITLE = "ftrag-desktop self-test sample"
SAMPLE_PAGES = (
    [
        "ftrag-desktop self-test sample",
        "",
        "This small document ships with ftrag-desktop. The self-test parses it",
        "to prove that the installed bundle can read PDF files, including",
        "encrypted ones, without anything else installed.",
    ],
    [
        "Page two",
        "",
        "The self-test looks for this sentence on the second page:",
        "amber lighthouse keepers count herons at dawn.",
    ],
)
SAMPLE_PHRASE = "amber lighthouse keepers count herons at dawn"


def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def make_ico(sizes: tuple[int, ...] = ICO_SIZES) -> bytes:
    """A Windows icon whose images are PNGs (understood since Windows Vista)."""
    images = [(ICONS / f"ftrag-{s}.png").read_bytes() for s in sizes]
    header = struct.pack("<HHH", 0, 1, len(images))
    offset = len(header) + 16 * len(images)
    entries, blobs = b"", b""
    for data in images:
        width, height = png_size(data)
        entries += struct.pack(
            "<BBBBHHII", width % 256, height % 256, 0, 0, 1, 32, len(data), offset + len(blobs)
        )
        blobs += data
    return header + entries + blobs


def make_icns() -> bytes:
    """A macOS icon family whose elements are PNGs."""
    body = b""
    for size, kind in ICNS_TYPES.items():
        data = (ICONS / f"ftrag-{size}.png").read_bytes()
        if png_size(data) != (size, size):
            raise ValueError(f"ftrag-{size}.png is not {size}x{size}")
        body += kind + struct.pack(">I", 8 + len(data)) + data
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def _pdf_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def make_plain_pdf() -> bytes:
    """A minimal PDF 1.4: Helvetica text, one content stream per page."""
    objects: list[bytes] = []
    n_pages = len(SAMPLE_PAGES)
    page_ids = [4 + 2 * i for i in range(n_pages)]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    for i, lines in enumerate(SAMPLE_PAGES):
        ops = ["BT", "/F1 18 Tf", "72 740 Td", "22 TL"]
        for j, line in enumerate(lines):
            if j == 1:
                ops.append("/F1 12 Tf")
            ops.append(f"{_pdf_string(line)} Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        content_id = page_ids[i] + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>".encode()
        )
        objects.append(
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream"
        )
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def make_sample_pdf() -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_plain_pdf())))
    writer.add_metadata({"/Title": SAMPLE_TITLE, "/Author": "ftrag-desktop"})
    writer.encrypt(user_password="", owner_password="ftrag-self-test", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def main() -> None:
    (ICONS / "ftrag.ico").write_bytes(make_ico())
    (ICONS / "ftrag.icns").write_bytes(make_icns())
    SAMPLES.mkdir(parents=True, exist_ok=True)
    (SAMPLES / "ftrag-sample.pdf").write_bytes(make_sample_pdf())
    for path in (ICONS / "ftrag.ico", ICONS / "ftrag.icns", SAMPLES / "ftrag-sample.pdf"):
        print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
