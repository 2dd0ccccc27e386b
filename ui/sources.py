"""Pure text helpers for showing sources: which sentences support an answer, and citation links.

Nothing here imports Streamlit, so every rule can be unit-tested on plain strings.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from rag.prompt import strip_citations

# Same marker shapes the chain recognises ([1], [1, 2], [1][2]); kept local so a display change
# never alters which numbers the chain counts as cited.
_CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) before
# whitespace, or at a line break: passages from PDFs often break lines mid-layout.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n|\n(?=\s*[-*•#])")

# Words that occur in nearly every sentence would make any sentence look like support.
_STOPWORD_TEXT = """
a an the and or but if of to in on at by for with from as is are was were be been being it its
this that these those there their they them he she his her him we our you your i me my not no
so do does did has have had will would can could should may might than then which who whom
what when where why how also into about over under after before such more most other some any
all each both only own same very just one
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def content_words(text: str) -> set[str]:
    """Lower-cased words that carry meaning (no stopwords, no citation numbers)."""
    words = _WORD.findall(strip_citations(text).lower())
    return {w for w in words if w not in _STOPWORDS and (len(w) > 2 or w.isdigit())}


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence in `text`, surrounding whitespace excluded."""
    spans: list[tuple[int, int]] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for s, e in spans:
        piece = text[s:e]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if e - trail > s + lead:
            out.append((s + lead, e - trail))
    return out


def supporting_spans(passage: str, answer: str, question: str = "") -> list[tuple[int, int]]:
    """Spans of the passage's sentence(s) sharing the most content words with the answer.

    Answer words that are not in the question count double: an answer restates the
    question's words ("the light was first shown..."), but what supports it is the new
    information (the date, the name). Ties are all returned (the answer may combine them);
    none when the overlap is too small, because highlighting an arbitrary sentence would
    claim support that is not there.
    """
    wanted = content_words(answer)
    if not wanted:
        return []
    asked = content_words(question)
    weights = {w: 1 if w in asked else 2 for w in wanted}
    scored = [(sum(weights[w] for w in content_words(passage[s:e]) & wanted), (s, e))
              for s, e in sentence_spans(passage)]
    best = max((score for score, _ in scored), default=0)
    # a single shared question word ("keeper") is chance, not support
    if best < min(2, sum(weights.values())):
        return []
    return [span for score, span in scored if score == best]


def highlight_html(passage: str, spans: list[tuple[int, int]]) -> str:
    """The passage as one line of escaped HTML with `spans` wrapped in <mark>.

    One line on purpose: Markdown treats an HTML block as raw only until the first blank
    line, so a passage with paragraphs would otherwise be half re-parsed as Markdown.
    """
    parts: list[str] = []
    pos = 0
    for s, e in sorted(spans):
        if s < pos:  # overlapping spans: the earlier one already covers this text
            continue
        parts.append(_escape(passage[pos:s]))
        parts.append(f"<mark>{_escape(passage[s:e])}</mark>")
        pos = e
    parts.append(_escape(passage[pos:]))
    return "".join(parts).strip()


def _escape(text: str) -> str:
    # Document text is untrusted: escape it, and keep paragraph breaks visible as <br>.
    # '$' is escaped too so Streamlit's Markdown never reads prices as LaTeX math.
    escaped = html.escape(text, quote=True).replace("$", "&#36;")
    return re.sub(r"\s*\n\s*\n\s*", "<br><br>", escaped).replace("\n", " ")


def passage_html(passage: str, answer: str, question: str = "") -> str:
    """The passage ready for st.markdown(unsafe_allow_html=True), supporting text marked."""
    body = highlight_html(passage, supporting_spans(passage, answer, question))
    return f'<div class="rag-passage">{body}</div>'


def anchor_id(turn: int, number: int) -> str:
    """The HTML id of source `number` under answer `turn`: unique across the whole chat."""
    return f"src-{turn}-{number}"


def link_citations(answer: str, turn: int, numbers: set[int]) -> str:
    """Markdown of the answer with each citation [n] linking to its source's anchor.

    Numbers without a shown source stay plain text, so no link ever leads nowhere.
    """

    def link(m: re.Match[str]) -> str:
        nums = [int(x) for x in re.split(r"\s*[,;]\s*", m.group(1))]
        if not any(n in numbers for n in nums):
            return _md_brackets(m.group(0))
        return "".join(f"[\\[{n}\\]](#{anchor_id(turn, n)})" if n in numbers else f"\\[{n}\\]"
                       for n in nums)

    return _CITE.sub(link, answer)


def _md_brackets(text: str) -> str:
    return text.replace("[", "\\[").replace("]", "\\]")


def display_name(source: str) -> str:
    """What a user calls the file: its name, not the absolute path it was indexed under."""
    return Path(source).name or source


def source_label(number: int, source: str, page: int | None, score: float) -> str:
    """The one-line heading of a source: [n] file, page p · score."""
    where = md_escape(display_name(source)) + (f", page {page}" if page is not None else "")
    return f"\\[{number}\\] {where} · score {score:.3f}"


def md_escape(text: str) -> str:
    """Text shown literally inside Streamlit Markdown (file names with _ or * in them)."""
    return re.sub(r"([\\`*_{}\[\]<>()#+!|~$])", r"\\\1", text)


def format_timings(t: dict[str, float]) -> str:
    """Retrieval, first token and total time in one short line."""
    parts = [f"retrieval {t.get('retrieval_s', 0.0) * 1000:.0f} ms"]
    if "condense_s" in t:
        parts.append(f"follow-up rewrite {t['condense_s']:.2f} s")
    if "ttft_s" in t:
        parts.append(f"first token {t['ttft_s']:.2f} s")
    parts.append(f"total {t.get('total_s', 0.0):.2f} s")
    return " · ".join(parts)
