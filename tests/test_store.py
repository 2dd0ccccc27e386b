import numpy as np
import pytest

from rag.index.dense import DenseIndex
from rag.index.store import IndexLockedError, IndexMismatchError, IndexStore
from rag.types import Chunk


def _doc(store, path, n, seed=0, dim=8):
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    chunks = [Chunk(f"{path} chunk {i}", path, 1, i * 10, i * 10 + 9) for i in range(n)]
    store.put_document(path, f"sha-{path}-{seed}", 100, 1.0, 1, chunks, vecs,
                       [f"t{i}" for i in range(n)], [])
    return vecs


def test_replace_remove_and_generation(tmp_path):
    store = IndexStore(tmp_path)
    g0 = store.generation
    _doc(store, "/a", 3)
    _doc(store, "/b", 2)
    assert store.count_chunks() == 5 and store.generation == g0 + 2
    _doc(store, "/a", 1, seed=1)  # replace: old chunks of /a go with it
    assert store.count_chunks() == 3
    assert store.documents()["/a"].sha256 == "sha-/a-1"
    store.rename_document("/b", "/c", 2.0)
    assert set(store.documents()) == {"/a", "/c"}
    store.copy_document("/c", "/d", 100, 3.0)
    assert store.count_chunks() == 5
    store.remove_documents(["/a", "/c"])
    chunks = store.chunks_by_id([i for ids, _ in store.iter_vectors() for i in ids])
    assert {c.source for c in chunks.values()} == {"/d"}


def test_dense_index_rebuilds_when_file_is_stale(tmp_path):
    store = IndexStore(tmp_path)
    vecs = _doc(store, "/a", 4, dim=8)
    dense = DenseIndex.build(store, 8)
    dense.save(tmp_path)
    ids = [i for i, _ in dense.search(vecs[2], 1)]
    assert store.chunks_by_id(ids)[ids[0]].text == "/a chunk 2"
    _doc(store, "/b", 2, seed=5)  # store moves on; the saved file is now a generation behind
    reopened = DenseIndex.open(store, 8, use_gpu=False)
    assert reopened.size == 6 and reopened.generation == store.generation


def test_second_writer_is_refused_with_a_clear_message(tmp_path):
    a, b = IndexStore(tmp_path), IndexStore(tmp_path)
    refused = pytest.raises(IndexLockedError, match="another process")
    with a.writer(), refused, b.writer(timeout=0.2):
        pass


def test_embedder_mismatch_is_refused(tmp_path):
    store = IndexStore(tmp_path)
    store.check_embedder("minilm", 384)
    store.check_embedder("minilm", 384)
    with pytest.raises(IndexMismatchError, match="mpnet"):
        store.check_embedder("mpnet", 768)
