"""The browser chat over your documents: `rag ui --index DIR` serves this with Streamlit.

Layout: the sidebar shows the open index, adds documents (uploads are stored in
`Settings.upload_dir`, default `indexes/uploads/`, then indexed incrementally; see
ui/uploads.py) and picks the model, passage count and retrieval mode; the main area is the
chat, each answer followed by its sources. Models and the index are loaded once per process
(ui/resources.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `streamlit run ui/app.py` puts ui/ (not the project) on sys.path; the imports below are
# package imports so they also work in an installed copy and under AppTest.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from ui import state  # noqa: E402
from ui.answer_view import inject_style  # noqa: E402
from ui.chat import answer_question, render_turn  # noqa: E402
from ui.errors import user_message  # noqa: E402
from ui.ingest_view import render_ingest  # noqa: E402
from ui.resources import load_rag, load_settings, rag_for  # noqa: E402
from ui.sidebar import render_index_path, render_options, render_stats  # noqa: E402

st.set_page_config(page_title="Ask your documents", page_icon="📄", layout="wide")
# a local tool: Streamlit's "Deploy" button and developer menu only confuse its users
st.set_option("client.toolbarMode", "minimal")
inject_style()

try:
    settings = load_settings()
except (OSError, ValueError) as exc:  # a typo in rag.toml or a RAG_* variable
    st.error(user_message(exc, "reading the settings"))
    st.stop()
try:
    base = load_rag(repr(settings), settings)
except Exception as exc:  # e.g. an index written by another embedder: say so, do not crash
    with st.sidebar:
        render_index_path(str(settings.index_dir))
    st.error(user_message(exc, "opening the index"))
    st.stop()

with st.sidebar:
    stats_slot = st.container()  # filled last, so it counts what an ingest below just added
    options = render_options(settings)
    st.divider()
    render_ingest(base, st.session_state)
    st.divider()
    st.button("Clear chat", on_click=state.clear_chat, args=(st.session_state,),
              width="stretch")
    stats = base.stats()
    with stats_slot:
        render_stats(stats)

st.title("Ask your documents")
past = state.turns(st.session_state)
empty = stats["chunks"] == 0
if empty:
    st.info(f"The index at `{settings.index_dir}` holds no documents yet. Add some in the "
            "sidebar (upload files or give a folder), or run "
            f"`rag ingest FOLDER --index {settings.index_dir}`.")
for i, turn in enumerate(past):
    render_turn(turn, i)

question = st.chat_input("Ask a question about your documents", disabled=empty)
if question and question.strip():
    rag = rag_for(settings, options.model)
    past.append(answer_question(rag, question.strip(), past, options))
