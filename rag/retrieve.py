"""Find the passages for a question: dense, BM25, or both fused by reciprocal rank fusion.

The retriever holds the loaded indexes (heavy: load once, pass around) and reloads them when
the store's generation moves on, so a long-running UI sees what a separate ingest added.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from rag.embedder import Embedder
from rag.index.dense import DenseIndex
from rag.index.sparse import SparseIndex
from rag.index.store import IndexStore
from rag.settings import Settings
from rag.types import Passage

MODES = ("hybrid", "dense", "bm25")


class Reranker(Protocol):
    """Re-orders fused candidates; gets more candidates than it returns."""

    def rerank(self, query: str, passages: list[Passage], k: int) -> list[Passage]: ...


def rrf(rankings: dict[str, list[tuple[int, float]]], k: int = 60) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: sum of 1 / (k + rank) over the rankings an item appears in."""
    fused: dict[int, float] = {}
    for ranking in rankings.values():
        for rank, (item, _) in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


class Retriever:
    def __init__(self, store: IndexStore, embedder: Embedder, settings: Settings,
                 reranker: Reranker | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.reranker = reranker
        self._dense: DenseIndex | None = None
        self._sparse: SparseIndex | None = None
        self._lock = threading.Lock()

    @classmethod
    def open(cls, settings: Settings, embedder: Embedder | None = None,
             reranker: Reranker | None = None) -> Retriever:
        store = IndexStore(settings.index_dir)
        return cls(store, embedder or Embedder.from_settings(settings), settings, reranker)

    def warm_up(self) -> None:
        self.embedder.warm_up()
        self.refresh()

    def refresh(self) -> None:
        """(Re)load the derived indexes if the store changed since they were loaded."""
        with self._lock:
            gen = self.store.generation
            if self._dense is None or self._dense.generation != gen:
                self._dense = DenseIndex.open(self.store, self._dim())
            if self._sparse is None or self._sparse.generation != gen:
                self._sparse = SparseIndex.open(self.store)

    def _dim(self) -> int:
        import json

        info = self.store.get_meta("embedder")
        return json.loads(info)["dim"] if info else self.embedder.dim

    @property
    def size(self) -> int:
        return self.store.count_chunks()

    def retrieve(self, query: str, k: int | None = None, mode: str | None = None,
                 timings: dict[str, float] | None = None) -> list[Passage]:
        k = k or self.settings.top_k
        mode = mode or self.settings.retrieval
        if mode not in MODES:
            raise ValueError(f"retrieval mode must be one of {', '.join(MODES)}, not {mode!r}")
        t0 = time.perf_counter()
        self.refresh()
        # over-fetch so that dropping overlapping chunks (and reranking) still leaves k
        n = max(self.settings.candidates, 2 * k)
        rankings: dict[str, list[tuple[int, float]]] = {}
        if mode in ("hybrid", "dense"):
            rankings["dense"] = self._dense.search(self.embedder.embed_query(query), n)
        if mode in ("hybrid", "bm25"):
            rankings["bm25"] = self._sparse.search(query, n)
        fused = rrf(rankings, self.settings.rrf_k) if mode == "hybrid" else rankings[mode]
        chunks = self.store.chunks_by_id(i for i, _ in fused)
        per_ranker = {name: dict(r) for name, r in rankings.items()}
        passages = [Passage(chunks[i], score, scores={name: r[i] for name, r in
                                                      per_ranker.items() if i in r})
                    for i, score in fused if i in chunks]
        passages = drop_overlaps(passages)
        if self.reranker is not None:
            passages = self.reranker.rerank(query, passages, k)
        passages = passages[:k]
        for rank, p in enumerate(passages, start=1):
            p.rank = rank
        if timings is not None:
            timings["retrieval_s"] = round(time.perf_counter() - t0, 4)
        return passages


def drop_overlaps(passages: list[Passage]) -> list[Passage]:
    """Keep the better-ranked of two chunks whose text spans overlap in the same page."""
    kept: list[Passage] = []
    spans: dict[tuple[str, int | None], list[tuple[int, int]]] = {}
    for p in passages:
        c = p.chunk
        key = (c.source, c.page)
        if any(c.start < e and s < c.end for s, e in spans.get(key, [])):
            continue
        spans.setdefault(key, []).append((c.start, c.end))
        kept.append(p)
    return kept
