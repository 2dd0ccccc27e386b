"""Heavy objects shared by every browser session of this process, each built once.

Streamlit reruns the whole script on every click; without `st.cache_resource` each rerun would
reload the embedder, the indexes and the generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from rag.api import RAG
from rag.generate import Generator, make_generator
from rag.models import GENERATOR_PRESETS
from rag.settings import Settings

# Local presets a user may pick in the sidebar; "tiny" is left out because it cannot answer
# (DESIGN.md: F1 14) and exists for tests, unless it is the configured model.
UI_PRESETS = ("default", "fast")
API_BACKENDS = ("openai", "anthropic")


@dataclass(frozen=True)
class ModelChoice:
    backend: str
    model: str

    @property
    def label(self) -> str:
        preset = GENERATOR_PRESETS.get(self.model) if self.backend == "local" else None
        if preset is not None:
            return f"{self.model} · {preset.model.split(' (')[0]}"
        return f"{self.backend} · {self.model}"


def model_choices(settings: Settings) -> list[ModelChoice]:
    """The configured model first (it is what the user set up), then the local presets."""
    configured = ModelChoice(settings.backend.strip().lower(), settings.model)
    out = [configured]
    for name in UI_PRESETS:
        choice = ModelChoice("local", name)
        if choice not in out:
            out.append(choice)
    return out


def load_settings() -> Settings:
    """Settings as `rag ui` passed them (RAG_INDEX_DIR, rag.toml, RAG_* variables).

    Read on every rerun (it is cheap) so an edited rag.toml counts without a restart; the
    heavy objects below are keyed on the result.
    """
    return Settings.load()


@st.cache_resource(show_spinner="Loading the embedder and the index…")
def load_rag(key: str, _settings: Settings) -> RAG:
    """The index and embedder for these settings; `key` is the settings' repr, which tells
    Streamlit's cache when they differ (the Settings object itself is not hashed)."""
    rag = RAG(_settings)
    rag.warm_up(generator=False)
    return rag


@st.cache_resource(show_spinner=False)
def load_generator(key: str, _settings: Settings) -> Generator:
    """A generator object; cheap to build, its weights load on `warm_up()` (with a spinner).

    `key` is the repr of the settings with the chosen backend and model; base URL, key
    variable and device are part of it, so changing any of them builds a new generator.
    """
    return make_generator(_settings)


def rag_for(settings: Settings, choice: ModelChoice) -> RAG:
    """The shared index answering with the chosen model (nothing is reloaded)."""
    rag = load_rag(repr(settings), settings)
    chosen = settings.replace(backend=choice.backend, model=choice.model)
    return rag.with_generator(load_generator(repr(chosen), chosen))
