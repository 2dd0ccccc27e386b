"""Build real good and bad input files for ingestion tests.

Every function writes one file (or link) into a directory and returns its path. The files are
made by the same libraries real documents come from (reportlab, pypdf, python-docx), then
damaged the way real files get damaged (cut short, encrypted, mislabelled), so tests exercise
the code paths users hit rather than mocks of them.

`build_mixed_folder(dir)` writes all of them and says what is where, for folder-level tests
(ingestion must load the good files, report each bad one with its reason, and not loop).
"""

from __future__ import annotations

import os
import random
import zipfile
from pathlib import Path

# Facts on known pages of GOOD_PDF_PAGES: tests look for them on exactly these pages.
GOOD_PDF_PAGES: list[str] = [
    "Orchard Survey Report\n\n"
    "The north orchard holds 412 apple trees planted in 1998.\n\n"
    "Most of them are of the Bramley variety.",
    "Irrigation\n\n"
    "The irrigation pond was dug in 2004 and holds 3,600 cubic metres of water.",
    "Harvest\n\n"
    "The 2023 harvest yielded 58 tonnes of fruit, picked by a crew of 14 people.",
]
USER_PASSWORD = "s3cret-pass"
OWNER_PASSWORD = "owner-only-pass"
LATIN1_TEXT = (
    "Le café crème de Zoë coûte deux euros.\n"
    "Déjà vu à la façade naïve de l'hôtel, près de São Paulo et de Zürich.\n"
)
MARKDOWN_TEXT = """# Field Guide

Intro paragraph about the guide.

## Birds of the Marsh

The marsh harrier nests in reed beds from April.

```bash
# not a heading: a comment inside a code block
echo hello
```

### Waders

Curlews probe the mud at low tide.

Setext Title
------------

Setext headings are found too.
"""
HTML_TEXT = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Lantern Co. Product FAQ</title>
  <style>body { color: red; }</style>
  <script>var tracking = "do not index me";</script>
</head>
<body>
  <nav><a href="/">Home</a> | <a href="/shop">Shop</a></nav>
  <h1>Frequently asked questions</h1>
  <p>The Lantern Mini runs for <b>36 hours</b> on one charge.</p>
  <h2>Warranty</h2>
  <p>Every lantern has a warranty of five years.<br>Batteries are covered for two.</p>
  <table>
    <tr><th>Model</th><th>Weight</th></tr>
    <tr><td>Mini</td><td>240 g</td></tr>
  </table>
  <ul><li>Waterproof to IPX7</li><li>USB-C charging</li></ul>
  <footer>Copyright footer noise</footer>
</body>
</html>
"""
UTF8_TEXT = "The ferry to Isle Marrow leaves at 07:45 every weekday.\nTickets cost 12 euros.\n"


# --- PDFs --------------------------------------------------------------------------------------


def make_good_pdf(path: Path, pages: list[str]) -> Path:
    """Write a text PDF: one PDF page per string; blank lines in a string become paragraph gaps.

    Deterministic (reportlab invariant mode), so the bytes are the same on every run.
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import simpleSplit
    from reportlab.pdfgen import canvas

    path = Path(path)
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    width, height = A4
    font, size, leading = "Helvetica", 11, 14
    for text in pages:
        c.setFont(font, size)
        y = height - 72
        for paragraph in text.split("\n\n"):
            for raw_line in paragraph.split("\n"):
                for line in simpleSplit(raw_line, font, size, width - 144) or [""]:
                    c.drawString(72, y, line)
                    y -= leading
            y -= leading * 0.6  # the paragraph gap the loader detects
        c.showPage()
    c.save()
    return path


def make_truncated_pdf(path: Path) -> Path:
    """A real 3-page PDF cut in half, as an interrupted download or copy leaves it."""
    path = Path(path)
    make_good_pdf(path, GOOD_PDF_PAGES)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _encrypt(src: Path, dest: Path, user_password: str, owner_password: str) -> Path:
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=str(src))
    # RC4-128: pypdf writes and reads it natively; AES would need the `cryptography` package,
    # which the project does not install.
    writer.encrypt(
        user_password=user_password, owner_password=owner_password, algorithm="RC4-128"
    )
    with open(dest, "wb") as fh:
        writer.write(fh)
    return dest


def make_user_encrypted_pdf(path: Path, password: str = USER_PASSWORD) -> Path:
    """A PDF that cannot be opened without `password`."""
    path = Path(path)
    plain = path.with_name(path.name + ".plain.tmp")
    make_good_pdf(plain, GOOD_PDF_PAGES)
    try:
        return _encrypt(plain, path, user_password=password, owner_password=OWNER_PASSWORD)
    finally:
        plain.unlink()


def make_owner_only_pdf(path: Path) -> Path:
    """Encrypted with an owner password only (empty user password): readers open it freely."""
    path = Path(path)
    plain = path.with_name(path.name + ".plain.tmp")
    make_good_pdf(plain, GOOD_PDF_PAGES)
    try:
        return _encrypt(plain, path, user_password="", owner_password=OWNER_PASSWORD)
    finally:
        plain.unlink()


def make_pdf_with_blank_page2(path: Path) -> Path:
    """3 pages; page 2 carries only drawings (like a scanned page without OCR), no text."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    path = Path(path)
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    c.drawString(72, 770, "Page one has a text layer about granite quarries.")
    c.showPage()
    for i in range(12):
        c.setFillGray(i / 12)
        c.rect(60 + i * 38, 300 + (i % 4) * 60, 30, 200, stroke=1, fill=1)
    c.line(50, 100, 540, 780)
    c.showPage()
    c.drawString(72, 770, "Page three has a text layer about slate roofs.")
    c.showPage()
    c.save()
    return path


def make_pdf_damaged_trailer(path: Path) -> Path:
    """The good 3-page PDF with its trailer's /Root key garbled (a flipped byte).

    PDFium refuses the file ("data format error"); pypdf finds the catalog by scanning the
    objects, so this is a file only the pypdf fallback can read.
    """
    path = Path(path)
    make_good_pdf(path, GOOD_PDF_PAGES)
    data = path.read_bytes()
    assert data.count(b"/Root") == 1, "reportlab wrote an unexpected trailer"
    path.write_bytes(data.replace(b"/Root", b"/Rooq"))
    return path


def make_pdf_with_outline(path: Path) -> Path:
    """GOOD_PDF_PAGES with a bookmark outline: one entry per page, titled by its first line."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    path = Path(path)
    c = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    _, height = A4
    for number, text in enumerate(GOOD_PDF_PAGES, start=1):
        title, _, body = text.partition("\n\n")
        c.setFont("Helvetica-Bold", 14)
        c.drawString(72, height - 72, title)
        c.bookmarkPage(f"p{number}")
        c.addOutlineEntry(title, f"p{number}", level=0)
        c.setFont("Helvetica", 11)
        y = height - 100
        for line in body.split("\n"):
            c.drawString(72, y, line)
            y -= 14
        c.showPage()
    c.save()
    return path


def make_not_really_pdf(path: Path) -> Path:
    """An HTML error page saved under a .pdf name (a common failed-download result)."""
    path = Path(path)
    path.write_text("<html><body>404 Not Found</body></html>\n", encoding="utf-8")
    return path


# --- text ------------------------------------------------------------------------------------


def make_empty_txt(path: Path) -> Path:
    path = Path(path)
    path.write_bytes(b"")
    return path


def make_whitespace_txt(path: Path) -> Path:
    path = Path(path)
    path.write_bytes(b"  \n\t\r\n   \n")
    return path


def make_binary_txt(path: Path, size: int = 4096, seed: int = 7) -> Path:
    """Random bytes, NULs included, named .txt (e.g. a renamed executable or archive)."""
    path = Path(path)
    data = bytearray(random.Random(seed).randbytes(size))
    data[10:14] = b"\x00\x00\x00\x00"
    path.write_bytes(bytes(data))
    return path


def make_latin1_txt(path: Path) -> Path:
    path = Path(path)
    path.write_bytes(LATIN1_TEXT.encode("latin-1"))
    return path


def make_utf8_txt(path: Path, bom: bool = False) -> Path:
    path = Path(path)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + UTF8_TEXT.encode("utf-8"))
    return path


def make_markdown(path: Path) -> Path:
    path = Path(path)
    path.write_text(MARKDOWN_TEXT, encoding="utf-8")
    return path


def make_html(path: Path) -> Path:
    path = Path(path)
    path.write_text(HTML_TEXT, encoding="utf-8")
    return path


# --- DOCX ------------------------------------------------------------------------------------


def make_docx(path: Path) -> Path:
    """A Word file with a title, a heading, paragraphs and a table in between."""
    import docx

    path = Path(path)
    document = docx.Document()
    document.add_heading("Quarterly Board Minutes", level=0)  # style "Title"
    document.add_paragraph("The board met on 3 May 2024 in the Elm Room.")
    document.add_heading("Budget", level=1)
    document.add_paragraph("The budget for the new library wing is 1.2 million euros.")
    table = document.add_table(rows=2, cols=3)
    for cell, text in zip(table.rows[0].cells, ["Item", "Owner", "Due"], strict=True):
        cell.text = text
    for cell, text in zip(table.rows[1].cells, ["Roof survey", "Ines Ward", "June"], strict=True):
        cell.text = text
    document.add_paragraph("The meeting closed at 16:10.")
    document.save(str(path))
    return path


def make_corrupt_docx(path: Path) -> Path:
    """Plain text saved as .docx: not a zip archive at all."""
    path = Path(path)
    path.write_text("this is not a word document\n", encoding="utf-8")
    return path


def make_truncated_docx(path: Path) -> Path:
    """A real .docx cut in half: starts like a zip, but its directory is gone."""
    path = Path(path)
    make_docx(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_docx_missing_body(path: Path) -> Path:
    """A valid zip that lacks word/document.xml."""
    path = Path(path)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        zf.writestr("hello.txt", "hi")
    return path


def make_docx_bad_content_types(path: Path) -> Path:
    """A real .docx whose [Content_Types].xml lost its namespace: well-formed, wrong shape."""
    path = Path(path)
    good = path.with_name(path.name + ".good.tmp")
    make_docx(good)
    try:
        with zipfile.ZipFile(good) as zin, zipfile.ZipFile(path, "w") as zout:
            for name in zin.namelist():
                data = zin.read(name)
                if name == "[Content_Types].xml":
                    data = b'<?xml version="1.0"?><Types/>'
                zout.writestr(name, data)
    finally:
        good.unlink()
    return path


# --- links -----------------------------------------------------------------------------------


def make_symlink_loop(directory: Path, name: str = "loopdir") -> Path:
    """`directory/name/loop -> ..`: a walker that follows directory links never ends.

    Returns the link. `directory/name/inside.txt` is a real file a walker must find once.
    """
    base = Path(directory) / name
    base.mkdir(parents=True, exist_ok=True)
    (base / "inside.txt").write_text("A file next to a symlink loop.\n", encoding="utf-8")
    link = base / "loop"
    os.symlink("..", link, target_is_directory=True)
    return link


def make_self_symlink(path: Path) -> Path:
    """`x.txt -> x.txt`: opening it fails with ELOOP."""
    path = Path(path)
    os.symlink(path.name, path)
    return path


def make_dangling_symlink(path: Path) -> Path:
    path = Path(path)
    os.symlink(path.name + ".missing-target", path)
    return path


# --- everything at once ------------------------------------------------------------------------


def build_mixed_folder(directory: Path) -> dict:
    """Write every good and bad case into `directory`; return what is where.

    Returns a dict with keys (paths are relative to `directory`, as str):
      good:      {path: {"pages": n or None, "contains": [(page, text), ...]}} files that load
      failures:  {path: reason substring of the LoadError}
      passwords: {path: password} that opens an otherwise failing file
      empty_pages: {path: [page numbers without text]}
      symlink_loops: [directory links that point back up]
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    make_good_pdf(d / "good.pdf", GOOD_PDF_PAGES)
    make_markdown(d / "guide.md")
    make_html(d / "faq.html")
    make_docx(d / "minutes.docx")
    make_utf8_txt(d / "ferry.txt")
    make_latin1_txt(d / "latin1.txt")
    make_owner_only_pdf(d / "owner_only.pdf")
    make_pdf_with_blank_page2(d / "scanned_page2.pdf")
    make_truncated_pdf(d / "truncated.pdf")
    make_user_encrypted_pdf(d / "encrypted.pdf")
    make_not_really_pdf(d / "not_a_pdf.pdf")
    make_empty_txt(d / "empty.txt")
    make_whitespace_txt(d / "blank.txt")
    make_binary_txt(d / "junk.txt")
    make_corrupt_docx(d / "corrupt.docx")
    make_truncated_docx(d / "truncated.docx")
    make_self_symlink(d / "selfloop.txt")
    make_dangling_symlink(d / "dangling.txt")
    loop = make_symlink_loop(d)

    good = {
        "good.pdf": {
            "pages": 3,
            "contains": [(1, "412 apple trees"), (2, "3,600 cubic metres"), (3, "58 tonnes")],
        },
        "guide.md": {"pages": None, "contains": [(None, "marsh harrier")]},
        "faq.html": {"pages": None, "contains": [(None, "36 hours")]},
        "minutes.docx": {"pages": None, "contains": [(None, "Roof survey | Ines Ward | June")]},
        "ferry.txt": {"pages": None, "contains": [(None, "07:45")]},
        "latin1.txt": {"pages": None, "contains": [(None, "café crème")]},
        "owner_only.pdf": {"pages": 3, "contains": [(2, "3,600 cubic metres")]},
        "scanned_page2.pdf": {"pages": 3, "contains": [(3, "slate roofs")]},
        "loopdir/inside.txt": {"pages": None, "contains": [(None, "symlink loop")]},
    }
    failures = {
        "truncated.pdf": "truncated or corrupt",
        "encrypted.pdf": "PDF is encrypted and needs a password",
        "not_a_pdf.pdf": "not a PDF file",
        "empty.txt": "empty file (0 bytes)",
        "blank.txt": "no text in file",
        "junk.txt": "binary content, not text",
        "corrupt.docx": "not a DOCX file",
        "truncated.docx": "truncated or corrupt",
        "selfloop.txt": "symlink loop",
        "dangling.txt": "broken symlink",
    }
    return {
        "good": good,
        "failures": failures,
        "passwords": {"encrypted.pdf": USER_PASSWORD},
        "empty_pages": {"scanned_page2.pdf": [2]},
        "symlink_loops": [str(loop.relative_to(d))],
    }
