"""HTML pages: readable text with paragraph breaks, title and headings, without page chrome."""

from __future__ import annotations

import re
from pathlib import Path

from bs4 import BeautifulSoup, Comment, Declaration, Doctype, NavigableString, Tag
from bs4 import ProcessingInstruction as BsProcessingInstruction
from bs4.dammit import EncodingDetector

from rag.types import Page

from .base import LoadError, decode_text, read_bytes

# Elements whose text is never part of what a reader would call the page's content.
_DROP = frozenset(
    {
        "script", "style", "noscript", "template", "head", "nav", "footer", "svg", "canvas",
        "iframe", "object", "embed", "select", "button", "datalist", "dialog", "map",
    }
)  # fmt: skip
# Elements that start a new paragraph; everything else is inline and flows into the current one.
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "center", "dd",
        "details", "div", "dl", "dt", "fieldset", "figcaption", "figure", "form", "header",
        "hgroup", "hr", "html", "li", "main", "menu", "ol", "p", "section", "summary", "table",
        "tbody", "tfoot", "thead", "ul",
    }
)  # fmt: skip
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_NOT_HEADINGS = frozenset({"p", "li", "row"})
_GROUPED = frozenset({"li", "row"})
# Strings that are markup, not text.
_SKIP_STRINGS = (Comment, Declaration, Doctype, BsProcessingInstruction)
_SPACES = re.compile(r"[ \t\r\n\f\v\u00a0\u200b]+")
# The WHATWG encoding standard treats these labels as windows-1252; so do browsers.
_AS_CP1252 = frozenset({"iso-8859-1", "iso8859-1", "latin-1", "latin1", "us-ascii", "ascii"})


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _hidden(tag: Tag) -> bool:
    if tag.has_attr("hidden") or tag.get("aria-hidden") == "true":
        return True
    style = str(tag.get("style", "")).replace(" ", "").lower()
    return "display:none" in style or "visibility:hidden" in style


def decode_html(data: bytes) -> str:
    """Decode with the BOM or the charset the page declares, else UTF-8, else cp1252/Latin-1."""
    declared = EncodingDetector.find_declared_encoding(data[:4096], is_html=True)
    if declared:
        declared = declared.lower()
        if declared in _AS_CP1252:
            declared = "cp1252"
        elif declared.startswith("utf-16"):
            # A page that says utf-16 in an ASCII <meta> cannot be UTF-16: browsers use UTF-8.
            declared = "utf-8"
    text, _encoding = decode_text(data, declared=declared)
    return text


def _cell_text(cell: Tag) -> str:
    return _collapse(cell.get_text(" "))


def html_blocks(soup: BeautifulSoup) -> list[tuple[str, str]]:
    """Walk the tree once, in document order, into (kind, text) blocks.

    kind is 'p' (paragraph), 'li' (list item), 'row' (table row) or 'h1'..'h6'.

    Iterative rather than recursive: real pages nest deeply enough to hit Python's
    recursion limit.
    """
    blocks: list[tuple[str, str]] = []
    inline: list[str] = []

    def flush(kind: str = "p") -> None:
        if not inline:
            return
        raw = "".join(inline)
        inline.clear()
        # <br> left '\n' markers; every other whitespace run collapses as a browser would.
        lines = [_collapse(part) for part in raw.split("\n")]
        text = "\n".join(line for line in lines if line)
        if text:
            blocks.append((kind, text))

    root = soup.body or soup
    # Stack items: a node to enter, or a ("close", name) marker to leave a block.
    stack: list[object] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple):
            flush("li" if node[1] == "li" else "p")
            continue
        if isinstance(node, NavigableString):
            if not isinstance(node, _SKIP_STRINGS):
                inline.append(str(node).replace("\n", " "))
            continue
        if not isinstance(node, Tag):
            continue
        name = (node.name or "").lower()
        if name in _DROP or _hidden(node):
            continue
        if name == "br":
            inline.append("\n")
            continue
        if name in _HEADINGS:
            flush()
            text = _collapse(node.get_text(" "))
            if text:
                blocks.append((name, text))
            continue
        if name == "pre":
            flush()
            text = node.get_text().strip("\n")
            if text.strip():
                blocks.append(("p", text))
            continue
        if name == "tr":
            # One line per row, cells separated like the DOCX loader does it.
            flush()
            cells = [_cell_text(c) for c in node.find_all(["td", "th"], recursive=False)]
            row = " | ".join(c for c in cells if c)
            if row:
                blocks.append(("row", row))
            continue
        if name in _BLOCK:
            flush()
            stack.append(("close", name))
        stack.extend(reversed(node.contents))
    flush()
    return blocks


def html_to_page(html: str) -> Page:
    """Turn an HTML document into one Page: paragraphs separated by blank lines."""
    soup = BeautifulSoup(html, "lxml")
    title_tag = soup.title
    title = _collapse(title_tag.get_text()) if title_tag else ""
    blocks = html_blocks(soup)

    # The title usually repeats the first <h1>; printing it twice would only add noise.
    first_heading = next((text for kind, text in blocks if kind in _HEADINGS), None)
    if title and (first_heading is None or first_heading.casefold() != title.casefold()):
        blocks.insert(0, ("title", title))

    parts: list[str] = []
    headings: list[tuple[int, str]] = []
    offset = 0
    prev_kind = None
    for kind, text in blocks:
        if parts:
            # Rows of one table and items of one list stay together; all else is a paragraph.
            sep = "\n" if kind == prev_kind and kind in _GROUPED else "\n\n"
            parts.append(sep)
            offset += len(sep)
        if kind not in _NOT_HEADINGS:
            headings.append((offset, text))
        parts.append(text)
        offset += len(text)
        prev_kind = kind
    return Page(text="".join(parts), page=None, headings=headings)


def load_html(path: Path, password: str | None = None) -> list[Page]:
    """Load an .html/.htm file as one pageless Page."""
    html = decode_html(read_bytes(path))
    try:
        page = html_to_page(html)
    except (ValueError, RecursionError) as exc:
        # Seen with pathological markup; lxml recovers from nearly everything else.
        raise LoadError(f"file is truncated or corrupt: HTML could not be parsed ({exc})") from exc
    if not page.text.strip():
        raise LoadError("no text in file")
    return [page]
