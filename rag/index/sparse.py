"""BM25 over the chunk terms stored at ingest (bm25s), keyed by chunk id.

Like the dense index it is derived data: `bm25-<generation>/` matches the store at that
generation and is rebuilt from the stored terms (no re-tokenizing) when missing or stale.
bm25s saves plain JSON and .npy arrays, loaded with allow_pickle=False.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import bm25s
import numpy as np

from rag.index.store import IndexStore
from rag.index.terms import terms

log = logging.getLogger(__name__)


class SparseIndex:
    def __init__(self, model: bm25s.BM25 | None, ids: np.ndarray, generation: int) -> None:
        self.model = model
        self.ids = ids
        self.generation = generation

    @property
    def size(self) -> int:
        return len(self.ids)

    @staticmethod
    def path_for(index_dir: Path, generation: int) -> Path:
        return Path(index_dir) / f"bm25-{generation}"

    @classmethod
    def build(cls, store: IndexStore) -> SparseIndex:
        generation = store.generation
        ids, corpus = [], []
        for chunk_id, text in store.iter_terms():
            ids.append(chunk_id)
            corpus.append(text.split() or ["\x00"])  # bm25s needs a token per document
        if not ids:
            return cls(None, np.zeros(0, dtype=np.int64), generation)
        model = bm25s.BM25()
        model.index(corpus, show_progress=False)
        return cls(model, np.asarray(ids, dtype=np.int64), generation)

    @classmethod
    def open(cls, store: IndexStore) -> SparseIndex:
        generation = store.generation
        path = cls.path_for(store.dir, generation)
        try:
            model = bm25s.BM25.load(str(path), allow_pickle=False)
            ids = np.load(path / "chunk_ids.npy", allow_pickle=False)
            return cls(model, ids, generation)
        except (OSError, ValueError, json.JSONDecodeError):
            log.info("rebuilding the BM25 index of %s from stored terms", store.dir)
            return cls.build(store)

    def save(self, index_dir: Path) -> None:
        """Write into a temp folder, then rename: readers see a whole index or none."""
        if self.model is None:
            return
        final = self.path_for(index_dir, self.generation)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save(str(tmp), allow_pickle=False)
        np.save(tmp / "chunk_ids.npy", self.ids, allow_pickle=False)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in Path(index_dir).glob("bm25-*"):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        if self.model is None or k <= 0:
            return []
        vocab = self.model.vocab_dict
        token_ids = [vocab[t] for t in terms(query) if t in vocab]
        if not token_ids:
            return []
        scores = self.model.get_scores_from_ids(token_ids)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.ids[i]), float(scores[i])) for i in top if scores[i] > 0]
