"""Offline retrieval-augmented question answering over a folder of documents.

`from rag import RAG` is the Python API (see rag.api); it is imported lazily so that light
modules such as rag.settings do not pull in FAISS and the models.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RAG", "Answer", "Source", "Settings"]


def __getattr__(name: str) -> Any:
    if name == "RAG":
        from rag.api import RAG

        return RAG
    if name in ("Answer", "Source"):
        from rag import types

        return getattr(types, name)
    if name == "Settings":
        from rag.settings import Settings

        return Settings
    raise AttributeError(f"module 'rag' has no attribute {name!r}")
