"""Show one answer: its text with linked citations, its sources, the PDF page, the timings."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from rag.prompt import cited_numbers
from rag.types import Answer, Source
from ui.pdf_page import PageRenderError, render_page_png
from ui.sources import (
    anchor_id,
    format_timings,
    link_citations,
    passage_html,
    source_label,
)

# Keeps a highlighted passage readable in both themes (Streamlit's <mark> colour is faint).
_STYLE = """<style>
.rag-passage mark { background: #ffe066; color: inherit; padding: 0 .1em; border-radius: 2px; }
.rag-anchor { scroll-margin-top: 4rem; }
/* an anchor is an empty element: take it out of the layout so it adds no gap */
div[data-testid="stElementContainer"]:has(.rag-anchor),
div[data-testid="stElementContainer"]:has(> div style) { position: absolute; }
</style>"""


def inject_style() -> None:
    st.markdown(_STYLE, unsafe_allow_html=True)


def answer_markdown(answer: Answer, turn: int) -> str:
    """The answer's text with every citation of a shown source turned into a link to it."""
    return link_citations(answer.text, turn, {s.number for s in answer.sources})


def render_rewrite(question: str, standalone: str) -> None:
    """Say what was searched for when a follow-up was rewritten using the conversation."""
    if standalone and standalone != question:
        st.caption(f"Searched for: {standalone}")


def render_answer(answer: Answer, turn: int, model_label: str) -> None:
    render_rewrite(answer.question, answer.standalone_question)
    st.markdown(answer_markdown(answer, turn))
    render_sources(answer, turn)
    st.caption(f"{format_timings(answer.timings)} · {model_label}")


def render_sources(answer: Answer, turn: int) -> None:
    if not answer.sources:
        if answer.passages:
            # a refusal: show what was read, so the user can judge whether the documents
            # really lack the answer or the search missed it
            st.markdown("**Closest passages found** (none was used for the answer)")
            for source in answer.passages:
                with st.expander(source_label(source.number, source.source, source.page,
                                              source.score)):
                    _render_source(source, answer, turn)
        return
    cited = set(cited_numbers(answer.text, len(answer.passages)))
    st.markdown("**Sources**")
    for source in answer.sources:
        # An explicit anchor: expanders carry no id that a citation link could point at.
        st.markdown(f'<div class="rag-anchor" id="{anchor_id(turn, source.number)}"></div>',
                    unsafe_allow_html=True)
        # Cited sources open, so the supporting text is visible without a click; when the
        # model cited nothing, all passages are listed and only the best one is opened.
        expanded = source.number in cited or (not cited and source is answer.sources[0])
        with st.expander(source_label(source.number, source.source, source.page, source.score),
                         expanded=expanded):
            _render_source(source, answer, turn)


def _render_source(source: Source, answer: Answer, turn: int) -> None:
    first_line = source.text.lstrip().split("\n", 1)[0]
    if source.heading and source.heading not in first_line:
        # a chunk from the middle of a section: say which section it is in
        st.caption(f"Section: {source.heading}")
    question = answer.standalone_question or answer.question
    # a refusal supports nothing: highlighting its words would point at random sentences
    support = "" if answer.refused else answer.text
    st.markdown(passage_html(source.text, support, question), unsafe_allow_html=True)
    st.caption(source.source)
    is_pdf = source.page is not None and source.source.lower().endswith(".pdf")
    # rendered only on request: a page image costs far more than the text around it
    if is_pdf and st.toggle(f"Show page {source.page}", key=f"page-{turn}-{source.number}"):
        _render_page(source.source, source.page)


def _render_page(path: str, page: int) -> None:
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        mtime = 0.0
    try:
        st.image(_page_png(path, page, mtime), caption=f"{Path(path).name}, page {page}")
    except PageRenderError as exc:
        st.warning(str(exc))


@st.cache_data(max_entries=32, show_spinner="Rendering the page…")
def _page_png(path: str, page: int, mtime: float) -> bytes:
    # `mtime` is part of the cache key only: a changed file is rendered again
    return render_page_png(path, page)
