"""Plain text and Markdown files: one pageless Page each."""

from __future__ import annotations

import re
from pathlib import Path

from rag.types import Page

from .base import LoadError, decode_text, normalise_newlines, read_bytes


def read_text_file(path: Path) -> str:
    """Decode a text file to str with newlines normalised; LoadError if it holds no text."""
    text, _encoding = decode_text(read_bytes(path))
    text = normalise_newlines(text)
    if not text.strip():
        raise LoadError("no text in file")
    return text


def load_txt(path: Path, password: str | None = None) -> list[Page]:
    """Load a .txt file as a single page (page=None)."""
    return [Page(text=read_text_file(path), page=None)]


# ATX heading: up to 3 spaces of indent, 1-6 '#', then a space or the end of the line.
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
# An optional closing sequence of '#' is not part of the heading text ("## Title ##").
_ATX_CLOSE = re.compile(r"(?:^|[ \t]+)#+$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^ {0,3}(?:[-*+>]|\d+[.)]|#|\||```|~~~)")


def markdown_headings(text: str) -> list[tuple[int, str]]:
    """(offset, heading text) for ATX and setext headings, skipping fenced code and front matter.

    Offsets point at the heading's first character, so `text[offset:].startswith(heading)`:
    the Markdown is kept as is and character spans stay true to the file.
    """
    headings: list[tuple[int, str]] = []
    lines = text.split("\n")
    offsets = []
    pos = 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1

    start = 0
    # YAML front matter's closing '---' would otherwise read as a setext underline.
    if lines and lines[0].strip() == "---":
        for i in range(1, len(lines)):
            if lines[i].strip() in ("---", "..."):
                start = i + 1
                break

    fence: str | None = None
    for i in range(start, len(lines)):
        line = lines[i]
        fence_match = _FENCE.match(line)
        if fence is not None:
            # Code blocks often hold shell or Python comments that look like '# headings'.
            if (
                fence_match
                and fence_match.group(1)[0] == fence[0]
                and len(fence_match.group(1)) >= len(fence)
            ):
                fence = None
            continue
        if fence_match:
            fence = fence_match.group(1)
            continue

        atx = _ATX.match(line)
        if atx:
            title = _ATX_CLOSE.sub("", atx.group(2) or "").strip()
            if title:
                headings.append((offsets[i] + line.index(title), title))
            continue

        if i > start and _SETEXT.match(line):
            prev = lines[i - 1]
            if (
                prev.strip()
                and not prev.startswith(("    ", "\t"))
                and not _NOT_PARAGRAPH.match(prev)
                and (i - 1 == start or not lines[i - 2].strip())
            ):
                title = prev.strip()
                headings.append((offsets[i - 1] + prev.index(title), title))
    return headings


def load_markdown(path: Path, password: str | None = None) -> list[Page]:
    """Load a Markdown file verbatim as one page, with its headings located."""
    text = read_text_file(path)
    return [Page(text=text, page=None, headings=markdown_headings(text))]
