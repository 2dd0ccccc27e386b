"""The FAISS inner-product index over normalised chunk vectors, keyed by chunk id.

It is derived data: `dense-<generation>.faiss` matches the SQLite store at that generation.
A missing or stale file is rebuilt from the vectors in the store, so a crash between a store
commit and the FAISS write costs a rebuild, never a wrong answer.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import faiss
import numpy as np

from rag.index.store import IndexStore

log = logging.getLogger(__name__)


def gpu_available() -> bool:
    """True when faiss was built with GPU support and a CUDA device is visible."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class DenseIndex:
    def __init__(self, index: faiss.Index, generation: int, on_gpu: bool = False) -> None:
        self.index = index
        self.generation = generation
        self.on_gpu = on_gpu

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    @staticmethod
    def path_for(index_dir: Path, generation: int) -> Path:
        return Path(index_dir) / f"dense-{generation}.faiss"

    @classmethod
    def build(cls, store: IndexStore, dim: int) -> DenseIndex:
        generation = store.generation
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        for ids, vecs in store.iter_vectors():
            index.add_with_ids(vecs, ids)
        return cls(index, generation)

    @classmethod
    def open(cls, store: IndexStore, dim: int, use_gpu: bool | None = None) -> DenseIndex:
        """Load the file for the store's current generation, or rebuild it from the store."""
        generation = store.generation
        path = cls.path_for(store.dir, generation)
        try:
            dense = cls(faiss.read_index(str(path)), generation)
        except RuntimeError:  # no file for this generation yet, or a writer just replaced it
            log.info("rebuilding the dense index of %s from stored vectors", store.dir)
            dense = cls.build(store, dim)
        if use_gpu is None:
            use_gpu = gpu_available()
        if use_gpu:
            dense.to_gpu()
        return dense

    def to_gpu(self) -> None:
        res = faiss.StandardGpuResources()
        self.index = faiss.index_cpu_to_gpu(res, 0, self.index)
        self._gpu_resources = res  # must outlive the index
        self.on_gpu = True

    def save(self, index_dir: Path) -> Path:
        """Write atomically under this generation's name and drop older generations' files."""
        index = faiss.index_gpu_to_cpu(self.index) if self.on_gpu else self.index
        path = self.path_for(index_dir, self.generation)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        faiss.write_index(index, str(tmp))
        os.replace(tmp, path)
        for old in Path(index_dir).glob("dense-*.faiss"):
            if old != path:
                old.unlink(missing_ok=True)
        return path

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        if self.size == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        scores, ids = self.index.search(q, min(k, self.size))
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
