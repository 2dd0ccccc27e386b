"""PDF files: one Page per PDF page, read with pypdfium2, falling back to pypdf.

pypdfium2 first: on 1,037 pages of SEC filings it read everything in 3.5 s where pypdf took
64 s and gave up on two files (DESIGN.md section 2). pypdf is only tried when PDFium cannot
open a file or one of its pages, since it occasionally recovers files PDFium rejects.

Threads: PDFium is not thread-safe, not even across different documents. Every PDFium call in
this module runs under `PDFIUM_LOCK`, so concurrent callers are serialised instead of crashing;
still, call the loader from one thread at a time (or one per process) to get any parallelism,
and take `PDFIUM_LOCK` if other code in the same process uses pypdfium2 too.
"""

from __future__ import annotations

import logging
import re
import statistics
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from rag.types import Page

from .base import LoadError

log = logging.getLogger(__name__)

PDFIUM_LOCK = threading.RLock()

# A line whose baseline sits this much further below the previous one than the page's usual
# line advance starts a new paragraph (reportlab body text: 12 pt leading, 18 pt between
# paragraphs; Word: 1.15 lines vs. 8 pt extra spacing).
_PARAGRAPH_GAP = 1.3
# Single-spaced text advances about 1.0-1.2 font-box heights per line; more than this is a gap.
_BLANK_LINE_HEIGHTS = 1.6
_HEADER_WINDOW = 1024  # the PDF header may follow junk, but must be in the first 1 KiB
_TAIL_WINDOW = 2048  # "%%EOF" sits at the end; writers pad with a few bytes at most

# PDFium replaces a line-ending hyphen with U+FFFE and joins the lines (older builds: U+0002).
_PDFIUM_HYPHEN = re.compile(r"(\w+)[\ufffe\x02](\w*)")
# pypdf keeps the hyphen and the line break.
_LINE_END_HYPHEN = re.compile(r"(\w+)[-\u00ad]\n(\w+)")
_WORD = re.compile(r"[^\W\d_]+")
_HYPHENATED = re.compile(r"[^\W\d_]+-[^\W\d_]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")


class _PdfiumRefused(Exception):
    """PDFium could not read the file; worth trying pypdf before giving up."""


@dataclass
class _RawPdf:
    texts: list[str]
    # (0-based page index, title) from the outline, used to place headings on pages.
    toc: list[tuple[int, str]] = field(default_factory=list)


def load_pdf(path: Path, password: str | None = None) -> list[Page]:
    """Load a PDF: one Page per PDF page (1-based), pages without a text layer as text "".

    Owner-password-only PDFs (empty user password) open without `password`; a wrong password
    for such a file is ignored. Raises LoadError for encrypted, truncated or corrupt files.
    """
    path = Path(path)
    _check_header(path)
    try:
        raw = _read_with_pdfium(path, password)
    except _PdfiumRefused as exc:
        log.info("PDFium could not read %s (%s); trying pypdf", path, exc)
        raw = _read_with_pypdf(path, password, pdfium_error=str(exc))
    return _finish(raw)


def load_pdf_with_pypdf(path: Path, password: str | None = None) -> list[Page]:
    """The fallback reader on its own (for tests and for comparing the two readers)."""
    path = Path(path)
    _check_header(path)
    return _finish(_read_with_pypdf(path, password, pdfium_error=None))


def _check_header(path: Path) -> None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEADER_WINDOW)
    except FileNotFoundError as exc:
        raise LoadError("file disappeared while reading") from exc
    except PermissionError as exc:
        raise LoadError("permission denied") from exc
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}") from exc
    if not head:
        raise LoadError("empty file (0 bytes)")
    if b"%PDF-" not in head:
        raise LoadError("not a PDF file (no %PDF header)")


def _looks_cut_short(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - _TAIL_WINDOW))
            return b"%%EOF" not in fh.read()
    except OSError:
        return False


def _corrupt(path: Path, detail: str) -> LoadError:
    if _looks_cut_short(path):
        detail = f"the file looks cut short, no %%EOF marker at its end ({detail})"
    return LoadError(f"file is truncated or corrupt: {detail}")


# --- PDFium -------------------------------------------------------------------------------


def _open_pdfium(path: Path, password: str | None) -> pdfium.PdfDocument:
    # Always try without a password first: owner-password-only PDFs open that way, and PDFium
    # rejects them when handed some other password (e.g. one a user set for another file).
    try:
        return pdfium.PdfDocument(path)
    except FileNotFoundError as exc:
        raise LoadError("file disappeared while reading") from exc
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_FILE:
            if not path.exists():
                raise LoadError("file disappeared while reading") from exc
            raise LoadError("cannot open file (PDFium: file access error)") from exc
        if exc.err_code != pdfium_c.FPDF_ERR_PASSWORD:
            raise _PdfiumRefused(_pdfium_reason(exc)) from exc
    if not password:
        raise LoadError("PDF is encrypted and needs a password")
    try:
        return pdfium.PdfDocument(path, password=password)
    except FileNotFoundError as exc:
        raise LoadError("file disappeared while reading") from exc
    except pdfium.PdfiumError as exc:
        if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
            raise LoadError("wrong password for encrypted PDF") from exc
        raise _PdfiumRefused(_pdfium_reason(exc)) from exc


_PDFIUM_ERRORS = {
    pdfium_c.FPDF_ERR_UNKNOWN: "unknown error",
    pdfium_c.FPDF_ERR_FORMAT: "not a valid PDF structure",
    pdfium_c.FPDF_ERR_SECURITY: "unsupported security handler",
    pdfium_c.FPDF_ERR_PAGE: "page not found or content error",
}


def _pdfium_reason(exc: pdfium.PdfiumError) -> str:
    return _PDFIUM_ERRORS.get(exc.err_code, str(exc))


def _read_with_pdfium(path: Path, password: str | None) -> _RawPdf:
    with PDFIUM_LOCK:
        pdf = _open_pdfium(path, password)
        try:
            texts = []
            for index in range(len(pdf)):
                try:
                    page = pdf.get_page(index)
                except pdfium.PdfiumError as exc:
                    raise _PdfiumRefused(f"page {index + 1}: {exc}") from exc
                try:
                    textpage = page.get_textpage()
                    try:
                        texts.append(_page_text(textpage))
                    finally:
                        textpage.close()
                except pdfium.PdfiumError as exc:
                    raise _PdfiumRefused(f"page {index + 1}: {exc}") from exc
                finally:
                    # Close as we go: a 2,000-page file would otherwise hold every page open.
                    page.close()
            toc = _outline(pdf, len(texts))
        finally:
            pdf.close()
    return _RawPdf(texts=texts, toc=toc)


def _outline(pdf: pdfium.PdfDocument, n_pages: int) -> list[tuple[int, str]]:
    toc: list[tuple[int, str]] = []
    try:
        for bookmark in pdf.get_toc(max_depth=8):
            dest = bookmark.get_dest()
            index = dest.get_index() if dest is not None else None
            title = " ".join(bookmark.get_title().split())
            if index is not None and 0 <= index < n_pages and title:
                toc.append((index, title))
            if len(toc) >= 10_000:  # a malformed outline must not stall ingestion
                break
    except pdfium.PdfiumError as exc:
        log.debug("ignoring unreadable outline: %s", exc)
    return toc


def _page_text(textpage: pdfium.PdfTextPage) -> str:
    """The page's text with lines kept and a blank line where the layout shows a paragraph gap.

    PDFium emits every line break as CRLF and never a blank line, so paragraphs are recovered
    from the baselines: one loose character box per line, a few ctypes calls per line.
    """
    text = textpage.get_text_range()
    if not text.strip():
        return ""

    # (start offset, line) pairs
    lines: list[tuple[int, str]] = []
    pos = 0
    for match in _LINE_BREAK.finditer(text):
        lines.append((pos, text[pos : match.start()]))
        pos = match.end()
    lines.append((pos, text[pos:]))

    # PDFium counts UTF-16 units; Python counts code points. Only non-BMP characters differ.
    wide = any(ord(ch) > 0xFFFF for ch in text)
    # (bottom, height) of each line's first character's font box; None for blank lines
    boxes: list[tuple[float, float] | None] = []
    extra_units = 0
    prev_start = 0
    for start, line in lines:
        if wide:
            extra_units += sum(1 for ch in text[prev_start:start] if ord(ch) > 0xFFFF)
            prev_start = start
        stripped = line.lstrip()
        if not stripped.strip():
            boxes.append(None)
            continue
        text_index = start + (len(line) - len(stripped)) + extra_units
        char_index = pdfium_c.FPDFText_GetCharIndexFromTextIndex(textpage, text_index)
        if char_index < 0:
            boxes.append(None)
            continue
        try:
            _left, bottom, _right, top = textpage.get_charbox(char_index, loose=True)
        except pdfium.PdfiumError:
            boxes.append(None)
            continue
        boxes.append((bottom, top - bottom))

    advances = [
        prev[0] - cur[0]
        for prev, cur in zip(boxes, boxes[1:], strict=False)
        if prev is not None and cur is not None and prev[0] - cur[0] > 1.0
    ]
    usual = statistics.median(advances) if advances else None

    out: list[str] = []
    for i, (_start, line) in enumerate(lines):
        if i > 0:
            out.append("\n")
            if _paragraph_gap(boxes[i - 1], boxes[i], usual):
                out.append("\n")
        out.append(line.rstrip())
    return "".join(out)


def _paragraph_gap(
    prev: tuple[float, float] | None, cur: tuple[float, float] | None, usual: float | None
) -> bool:
    """Does the vertical step between two lines look like a paragraph break?"""
    if prev is None or cur is None or usual is None:
        return False
    step = prev[0] - cur[0]
    if step < -usual:
        return True  # jumped back up the page: next column or a sidebar
    if step > usual * _PARAGRAPH_GAP + 0.5:
        return True  # more space than between most lines of this page
    # Pages whose lines are mostly paragraphs of their own (title pages, short lists) have no
    # "usual" line spacing to compare with; an empty line's worth of space still shows.
    return step > _BLANK_LINE_HEIGHTS * max(prev[1], cur[1])


# --- pypdf ---------------------------------------------------------------------------------


def _read_with_pypdf(path: Path, password: str | None, pdfium_error: str | None) -> _RawPdf:
    import pypdf  # only needed on the rare fallback path; keeps imports light
    from pypdf.errors import DependencyError

    try:
        reader = pypdf.PdfReader(str(path), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            if not password:
                raise LoadError("PDF is encrypted and needs a password")
            if not reader.decrypt(password):
                raise LoadError("wrong password for encrypted PDF")
        pages = list(reader.pages)
    except LoadError:
        raise
    except DependencyError as exc:
        raise LoadError(
            "PDF uses AES encryption; reading it needs the 'cryptography' package"
        ) from exc
    except FileNotFoundError as exc:
        raise LoadError("file disappeared while reading") from exc
    except PermissionError as exc:
        raise LoadError("permission denied") from exc
    except Exception as exc:
        # pypdf signals malformed input with many exception types (PdfReadError, KeyError,
        # ValueError, RecursionError, ...); each of them means "cannot read this file".
        detail = f"{type(exc).__name__}: {exc}"
        if pdfium_error:
            detail = f"PDFium: {pdfium_error}; pypdf: {detail}"
        if pdfium_error and "security handler" in pdfium_error:
            raise LoadError("PDF uses an unsupported encryption scheme") from exc
        raise _corrupt(path, detail) from exc

    if not pages:
        raise LoadError("PDF has no pages")
    texts = []
    for number, page in enumerate(pages, start=1):
        try:
            texts.append(page.extract_text() or "")
        except Exception as exc:
            # One broken content stream should not lose the rest of the document.
            log.warning("%s: page %d: pypdf could not extract text: %s", path, number, exc)
            texts.append("")
    return _RawPdf(texts=texts)


# --- shared clean-up --------------------------------------------------------------------------


def _join_hyphenated(texts: list[str]) -> list[str]:
    """Undo line-end hyphenation: "exam-/ple" -> "example", but "well-/known" stays hyphenated
    when the document writes "well-known" elsewhere and never "wellknown"."""
    if not any(("\ufffe" in t or "\x02" in t or "-\n" in t or "\u00ad" in t) for t in texts):
        return texts
    words: set[str] = set()
    hyphenated: set[str] = set()
    for t in texts:
        words.update(w.lower() for w in _WORD.findall(t))
        hyphenated.update(w.lower() for w in _HYPHENATED.findall(t))

    def join(match: re.Match[str]) -> str:
        left, right = match.group(1), match.group(2)
        if not right:
            return f"{left}-"  # the word continues on the next page; cannot join here
        if left[-1].isalpha() and right[0].islower():
            joined = f"{left}{right}".lower()
            if f"{left}-{right}".lower() in hyphenated and joined not in words:
                return f"{left}-{right}"
            return f"{left}{right}"
        return f"{left}-{right}"  # "COVID-19", "Anglo-Saxon": a real hyphen

    out = []
    for t in texts:
        t = _PDFIUM_HYPHEN.sub(join, t)
        t = _LINE_END_HYPHEN.sub(join, t)
        out.append(t.replace("\u00ad", ""))
    return out


def _clean(text: str) -> str:
    text = _CONTROL.sub("", text)
    text = _TRAILING_SPACE.sub("\n", text)
    text = _MANY_BLANK_LINES.sub("\n\n", text)
    return text.strip("\n").rstrip()


def _locate_headings(text: str, titles: list[str]) -> list[tuple[int, str]]:
    headings: list[tuple[int, str]] = []
    pos = 0
    for title in titles:
        pattern = r"\s+".join(re.escape(word) for word in title.split())
        match = re.compile(pattern, re.IGNORECASE).search(text, pos)
        if match:
            headings.append((match.start(), text[match.start() : match.end()]))
            pos = match.end()
    return headings


def _finish(raw: _RawPdf) -> list[Page]:
    texts = [_LINE_BREAK.sub("\n", t) for t in raw.texts]
    texts = [_clean(t) for t in _join_hyphenated(texts)]
    titles_by_page: dict[int, list[str]] = {}
    for index, title in raw.toc:
        titles_by_page.setdefault(index, []).append(title)
    return [
        Page(
            text=text,
            page=index + 1,
            headings=_locate_headings(text, titles_by_page.get(index, [])),
        )
        for index, text in enumerate(texts)
    ]
