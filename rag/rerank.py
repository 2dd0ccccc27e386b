"""Rerankers: re-order the fused candidates before the top k go to the generator.

No cross-encoder ships on PyPI, so the one real implementation re-scores candidates with the
stronger bi-encoder (all-mpnet-base-v2) and fuses that ranking with the first-stage order.
It is off by default: evaluation decides (see README, "Tuning").
"""

from __future__ import annotations

from rag.embedder import Embedder
from rag.retrieve import Reranker, rrf
from rag.settings import Settings
from rag.types import Passage

RERANKERS = ("none", "mpnet")


class EmbedderReranker:
    """Re-score the top `depth` candidates by cosine under a second embedder, fused by RRF.

    Fusing rather than replacing keeps what BM25 found by exact words (names, numbers) that a
    semantic model alone would rank lower.
    """

    def __init__(self, embedder: Embedder, depth: int = 20, rrf_k: int = 60) -> None:
        self.embedder = embedder
        self.depth = depth
        self.rrf_k = rrf_k

    def warm_up(self) -> None:
        self.embedder.warm_up()

    def rerank(self, query: str, passages: list[Passage], k: int) -> list[Passage]:
        head, tail = passages[: self.depth], passages[self.depth:]
        if len(head) < 2:
            return passages
        q = self.embedder.embed_query(query)
        vecs = self.embedder.embed_documents([p.chunk.text for p in head])
        sims = vecs @ q
        first = [(i, p.score) for i, p in enumerate(head)]
        second = sorted(((i, float(s)) for i, s in enumerate(sims)), key=lambda t: -t[1])
        fused = rrf({"first": first, "rerank": second}, self.rrf_k)
        out = []
        for i, score in fused:
            p = head[i]
            p.scores["rerank"] = float(sims[i])
            out.append(Passage(p.chunk, score, scores=p.scores))
        return out + tail


def make_reranker(settings: Settings) -> Reranker | None:
    name = settings.rerank
    if name in ("", "none"):
        return None
    if name == "mpnet":
        emb = Embedder("mpnet", settings.cache_dir, settings.device, settings.embed_batch,
                       settings.embed_backend)
        return EmbedderReranker(emb, rrf_k=settings.rrf_k)
    raise ValueError(f"unknown reranker {name!r}: use one of {', '.join(RERANKERS)}")
