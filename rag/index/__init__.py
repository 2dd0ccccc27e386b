"""The on-disk index: a SQLite store (source of truth) plus derived FAISS and BM25 structures."""

from rag.index.store import IndexStore, StoredDocument

__all__ = ["IndexStore", "StoredDocument"]
