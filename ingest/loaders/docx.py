"""Word .docx files: paragraphs and tables in document order, headings located."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import docx
from docx.exceptions import PythonDocxError
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph
from lxml import etree

from rag.types import Page

from .base import LoadError

# An OLE2 compound file: a legacy .doc renamed, or an Office file encrypted with a password
# (Office wraps encrypted .docx files in OLE2, so they are no longer zip archives).
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _check_container(path: Path) -> None:
    """Give a specific reason when the file is not a readable zip archive at all."""
    head = _read_head(path)
    if head.startswith(_OLE2_MAGIC):
        raise LoadError(
            "DOCX is encrypted with a password or is an old binary .doc file renamed to .docx"
        )
    if not head.startswith(b"PK"):
        raise LoadError("not a DOCX file (not a zip archive)")
    if not zipfile.is_zipfile(path):
        raise LoadError("file is truncated or corrupt: incomplete zip archive")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as exc:
        raise LoadError(f"file is truncated or corrupt: damaged zip archive ({exc})") from exc
    # Other zip-based files renamed to .docx (.zip, .epub, .xlsx, .odt) would otherwise fail deep
    # inside python-docx with a KeyError or AttributeError that says nothing to a user.
    if "[Content_Types].xml" not in names or not any(n.startswith("word/") for n in names):
        raise LoadError("not a DOCX file (a zip archive without Word document parts)")


def _read_head(path: Path, n: int = 8) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except FileNotFoundError as exc:
        raise LoadError("file disappeared while reading") from exc
    except PermissionError as exc:
        raise LoadError("permission denied") from exc
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc


def _is_heading(paragraph: Paragraph) -> bool:
    try:
        name = paragraph.style.name if paragraph.style is not None else ""
    except (KeyError, ValueError, AttributeError):
        # A style id that the styles part does not define: treat as body text.
        return False
    return bool(name) and name.startswith(("Heading", "Title"))


def _row_text(row) -> str:  # noqa: ANN001 - docx.table._Row
    cells: list[str] = []
    seen: set[int] = set()
    for cell in row.cells:
        # Horizontally merged cells come back once per grid column; print them once.
        key = id(cell._tc)
        if key in seen:
            continue
        seen.add(key)
        text = " ".join(cell.text.split())
        if text:
            cells.append(text)
    return " | ".join(cells)


def docx_blocks(document) -> list[tuple[bool, str]]:  # noqa: ANN001 - docx.document.Document
    """(is_heading, text) for every non-empty paragraph and table, in document order.

    A table is one block, one line per row, so a table's rows stay together.
    """
    blocks: list[tuple[bool, str]] = []
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = item.text.strip()
            if text:
                blocks.append((_is_heading(item), text))
        elif isinstance(item, Table):
            rows = [line for line in (_row_text(row) for row in item.rows) if line]
            if rows:
                blocks.append((False, "\n".join(rows)))
    return blocks


def load_docx(path: Path, password: str | None = None) -> list[Page]:
    """Load a .docx as one pageless Page; Word's pages are a layout detail it does not store."""
    _check_container(path)
    try:
        document = docx.Document(str(path))
        blocks = docx_blocks(document)
    except FileNotFoundError as exc:
        raise LoadError("file disappeared while reading") from exc
    except PackageNotFoundError as exc:
        raise LoadError("not a DOCX file (not a zip archive)") from exc
    except (
        zipfile.BadZipFile, zlib.error, KeyError, ValueError, EOFError, OSError,
        etree.LxmlError, PythonDocxError, AttributeError,
    ) as exc:  # fmt: skip
        # KeyError: a required part (word/document.xml) is missing; ValueError: wrong content
        # type (e.g. a .xlsx renamed to .docx); LxmlError: damaged XML inside the archive;
        # AttributeError: well-formed XML of the wrong shape (e.g. [Content_Types].xml without
        # its namespace), which python-docx does not validate before walking it.
        raise LoadError(f"file is truncated or corrupt: {type(exc).__name__}: {exc}") from exc

    parts: list[str] = []
    headings: list[tuple[int, str]] = []
    offset = 0
    for is_heading, text in blocks:
        if is_heading:
            headings.append((offset, text))
        parts.append(text)
        offset += len(text) + 2
    if not parts:
        raise LoadError("no text in file")
    return [Page(text="\n\n".join(parts), page=None, headings=headings)]
