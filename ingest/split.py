"""Split page text into chunks sized in embedder tokens, with exact character spans.

Written by hand rather than with LangChain's recursive splitter because that one re-tokenizes
every candidate piece; here each page is tokenized once (offset mapping) so token counts of any
span come from a binary search, splitting stays linear, and every chunk is an exact slice of its
page. Chunks never cross a page or a heading; they break at paragraphs, then sentences or lines,
then (for a run-on "sentence") at token boundaries.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.types import Chunk, Page

_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\s*\n\s*")

# offsets(text) -> list of (start, end) character offsets, one per token
TokenOffsets = Callable[[str], Sequence[tuple[int, int]]]


@dataclass
class _Seg:
    start: int
    end: int


def hf_token_offsets(tokenizer) -> TokenOffsets:
    """Token offsets from a Hugging Face fast tokenizer (no special tokens)."""

    def offsets(text: str) -> Sequence[tuple[int, int]]:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                        truncation=False, verbose=False)
        return enc["offset_mapping"]

    return offsets


class Splitter:
    def __init__(self, token_offsets: TokenOffsets, chunk_tokens: int = 256,
                 overlap: int = 32) -> None:
        if chunk_tokens < 16:
            raise ValueError("chunk_tokens must be at least 16")
        if not 0 <= overlap < chunk_tokens // 2:
            raise ValueError("overlap must be between 0 and half of chunk_tokens")
        self.token_offsets = token_offsets
        self.chunk_tokens = chunk_tokens
        self.overlap = overlap

    def split(self, pages: Sequence[Page], source: str) -> list[Chunk]:
        chunks: list[Chunk] = []
        for page in pages:
            chunks.extend(self._split_page(page, source))
        return chunks

    def _split_page(self, page: Page, source: str) -> list[Chunk]:
        text = page.text
        if not text.strip():
            return []
        starts = [s for s, e in self.token_offsets(text) if e > s]

        def ntok(a: int, b: int) -> int:
            return bisect_left(starts, b) - bisect_left(starts, a)

        headings = sorted(page.headings)
        # Sections start at the line of their heading (a Markdown heading's offset points past
        # its '#' marks, which would otherwise be left at the end of the previous section).
        cuts = sorted({0, len(text)} | {text.rfind("\n", 0, off) + 1 for off, _ in headings
                                         if 0 < off < len(text)})
        sections = [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if text[a:b].strip()]
        chunks: list[Chunk] = []
        for group in self._merge_small(sections, ntok):
            segs = [seg for a, b in group for seg in self._segments(text, a, b, starts, ntok)]
            for s, e in self._pack(segs, ntok):
                chunks.append(Chunk(text=text[s:e], source=source, page=page.page, start=s,
                                    end=e, heading=_main_heading(headings, group, s, e)))
        return chunks

    def _merge_small(self, sections: list[tuple[int, int]], ntok) -> list[list[tuple[int, int]]]:
        """Group consecutive sections so that a heading is a chunk boundary unless the chunk
        before it would be tiny: a title alone, or a heading with one line under it, makes a
        passage that wastes a retrieval slot and tells the reader nothing."""
        small = max(16, self.chunk_tokens // 4)
        groups: list[list[tuple[int, int]]] = []
        for sec in sections:
            if groups:
                last = groups[-1]
                size = ntok(last[0][0], last[-1][1])
                if size < small and ntok(last[0][0], sec[1]) <= self.chunk_tokens:
                    last.append(sec)
                    continue
            groups.append([sec])
        return groups

    def _segments(self, text: str, a: int, b: int, starts: list[int], ntok) -> list[_Seg]:
        """Atomic pieces of [a, b), each within the token budget."""
        out: list[_Seg] = []
        for ps, pe in _spans(text, a, b, _PARAGRAPH):
            if ntok(ps, pe) <= self.chunk_tokens:
                out.append(_Seg(ps, pe))
                continue
            for ss, se in _spans(text, ps, pe, _SENTENCE):
                if ntok(ss, se) <= self.chunk_tokens:
                    out.append(_Seg(ss, se))
                else:
                    out.extend(self._token_windows(text, starts, ss, se))
        return out

    def _token_windows(self, text: str, starts: list[int], a: int, b: int) -> list[_Seg]:
        """Cut a run-on span every `chunk_tokens` tokens, backing off to a word start: a word
        cut in the middle re-tokenizes into more pieces than it had in context."""
        lo, hi = bisect_left(starts, a), bisect_left(starts, b)
        out = []
        i = lo
        while i < hi:
            j = min(i + self.chunk_tokens, hi)
            if j < hi:
                w = j
                while w > i + 1 and not text[starts[w] - 1].isspace():
                    w -= 1
                j = w if w > i + 1 else j
            s = max(a, starts[i])
            e = starts[j] if j < hi else b
            while e > s and text[e - 1].isspace():
                e -= 1
            out.append(_Seg(s, e))
            i = j
        return out

    def _pack(self, segs: list[_Seg], ntok) -> list[tuple[int, int]]:
        """Greedily fill chunks; a new chunk repeats trailing segments up to `overlap` tokens."""
        out: list[tuple[int, int]] = []
        i = 0
        cur: list[_Seg] = []
        while i < len(segs):
            seg = segs[i]
            if not cur or ntok(cur[0].start, seg.end) <= self.chunk_tokens:
                cur.append(seg)
                i += 1
                continue
            out.append((cur[0].start, cur[-1].end))
            cur = self._overlap_tail(cur, seg, ntok)
        if cur:
            out.append((cur[0].start, cur[-1].end))
        return out

    def _overlap_tail(self, cur: list[_Seg], nxt: _Seg, ntok) -> list[_Seg]:
        tail: list[_Seg] = []
        for seg in reversed(cur[1:]):
            if ntok(seg.start, cur[-1].end) > self.overlap:
                break
            tail.insert(0, seg)
        if tail and ntok(tail[0].start, nxt.end) > self.chunk_tokens:
            return []
        return tail


def _spans(text: str, a: int, b: int, sep: re.Pattern[str]) -> list[tuple[int, int]]:
    """Non-blank pieces of text[a:b] between separator matches, trimmed of whitespace."""
    out = []
    pos = a
    for m in sep.finditer(text, a, b):
        out.append((pos, m.start()))
        pos = m.end()
    out.append((pos, b))
    trimmed = []
    for s, e in out:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            trimmed.append((s, e))
    return trimmed


def _main_heading(headings: list[tuple[int, str]], group: list[tuple[int, int]], s: int,
                  e: int) -> str | None:
    """The heading(s) of the sections the chunk covers, joined when small ones were merged."""
    # sections begin at their heading's line, so a section's heading lies inside [a, b)
    names = [_heading_at(headings, b - 1) for a, b in group if a < e and s < b]
    names = [n for i, n in enumerate(names) if n and n not in names[:i]]
    return " / ".join(names) if names else None


def _heading_at(headings: list[tuple[int, str]], pos: int) -> str | None:
    current = None
    for off, title in headings:
        if off <= pos:
            current = title
        else:
            break
    return current
