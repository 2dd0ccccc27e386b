"""Sidebar: which index is open and what it holds, and how questions are answered."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from rag.retrieve import MODES
from rag.settings import Settings
from ui.resources import ModelChoice, model_choices


@dataclass
class AnswerOptions:
    model: ModelChoice
    k: int
    mode: str


def format_updated(ts: float | None, now: float | None = None) -> str:
    """When the index last changed: local time, plus how long ago for recent changes."""
    if ts is None:
        return "never"
    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
    ago = now - ts
    if ago < 0:
        return stamp
    if ago < 60:
        return f"{stamp} (just now)"
    if ago < 3600:
        return f"{stamp} ({int(ago // 60)} min ago)"
    if ago < 86400:
        return f"{stamp} ({int(ago // 3600)} h ago)"
    return stamp


def short_path(path: str, keep: int = 2) -> str:
    """The last `keep` parts of a path: the sidebar is narrow, the full path is in the tooltip."""
    parts = Path(path).parts
    return path if len(parts) <= keep + 1 else "…/" + "/".join(parts[-keep:])


def render_index_path(path: str) -> None:
    st.markdown(f"**Index** `{short_path(path)}`", help=path)


def render_stats(stats: dict[str, Any]) -> None:
    render_index_path(str(stats["index_dir"]))
    c1, c2 = st.columns(2)
    c1.metric("Documents", stats["documents"])
    c2.metric("Chunks", stats["chunks"])
    st.caption(f"{stats.get('pages', 0)} pages · last updated "
               f"{format_updated(stats.get('updated_at'))}")


def render_options(settings: Settings) -> AnswerOptions:
    st.subheader("Answering")
    choices = model_choices(settings)
    model = st.selectbox("Model", choices, format_func=lambda c: c.label, key="model",
                         help="default: best answers; fast: about twice as fast, weaker. "
                              "An API backend appears here when configured in rag.toml.")
    k = st.slider("Passages given to the model", 1, 10, min(max(settings.top_k, 1), 10),
                  key="top_k")
    default_mode = settings.retrieval if settings.retrieval in MODES else "hybrid"
    mode = st.radio("Retrieval", MODES, index=MODES.index(default_mode), key="mode",
                    horizontal=True,
                    help="hybrid: meaning and keywords together (best); dense: meaning only; "
                         "bm25: keywords only")
    return AnswerOptions(model=model, k=int(k), mode=str(mode))
