"""The conversation: past turns as they were answered, and a new question answered live."""

from __future__ import annotations

import streamlit as st

from rag.api import RAG
from ui.answer_view import answer_markdown, render_answer, render_rewrite, render_sources
from ui.errors import user_message
from ui.sidebar import AnswerOptions
from ui.sources import format_timings, md_escape
from ui.state import Turn, history

_CURSOR = "▌"


def render_turn(turn: Turn, index: int) -> None:
    with st.chat_message("user"):
        st.markdown(md_escape(turn.question))
    with st.chat_message("assistant"):
        if turn.answer is None:
            st.error(turn.error or "No answer.")
        else:
            render_answer(turn.answer, index, turn.model)


def answer_question(rag: RAG, question: str, past: list[Turn], options: AnswerOptions) -> Turn:
    """Show the question, stream the answer into the page, then its sources and timings."""
    index = len(past)
    turn = Turn(question=question, model=options.model.label)
    with st.chat_message("user"):
        st.markdown(md_escape(question))
    with st.chat_message("assistant"):
        try:
            with st.spinner(f"Loading {options.model.label} (first use only)…"):
                rag.generator.warm_up()
            with st.spinner("Searching your documents…"):
                stream = rag.stream(question, history(past), k=options.k, mode=options.mode)
            render_rewrite(stream.question, stream.standalone_question)
            slot = st.empty()
            text = ""
            for piece in stream:
                text += piece
                slot.markdown(text + _CURSOR)
            answer = stream.result()
            # the final text again, now with each citation linking to its source below
            slot.markdown(answer_markdown(answer, index))
            render_sources(answer, index)
            st.caption(f"{format_timings(answer.timings)} · {turn.model}")
            turn.answer = answer
        except Exception as exc:  # every failure becomes a message, never a traceback
            turn.error = user_message(exc, "answering")
            st.error(turn.error)
    return turn
