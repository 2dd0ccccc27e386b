"""The embedder's backends agree, and OpenVINO's converted model is cached and reused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.embedder import Embedder
from rag.openvino_encoder import openvino_available

TEXTS = [
    "The Forth Bridge is a cantilever railway bridge across the Firth of Forth.",
    "Construction started in 1882 and the bridge opened on 4 March 1890.",
    "short",
    "A much longer passage " * 60,  # past the 256-token limit: truncated the same way by both
]

needs_openvino = pytest.mark.skipif(not openvino_available(), reason="openvino not installed")


@pytest.fixture(scope="module")
def torch_embedder(tmp_path_factory) -> Embedder:
    emb = Embedder("minilm", tmp_path_factory.mktemp("cache"), backend="torch")
    emb.warm_up()
    return emb


@needs_openvino
def test_openvino_matches_torch_and_is_cached(tmp_path: Path, torch_embedder: Embedder) -> None:
    ov = Embedder("minilm", tmp_path, backend="openvino")
    assert ov.precision.startswith("openvino")
    a = ov.embed_documents(TEXTS)
    b = torch_embedder.embed_documents(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    cosines = np.sum(a * b, axis=1)
    assert cosines.min() > 0.99, cosines
    # the query path is the same model: a text embedded alone matches its batched vector
    assert float(ov.embed_query(TEXTS[0]) @ a[0]) > 0.999

    converted = list((tmp_path / "openvino").glob("*/model.xml"))
    assert len(converted) == 1
    stamp = converted[0].stat().st_mtime_ns
    again = Embedder("minilm", tmp_path, backend="openvino")
    np.testing.assert_allclose(again.embed_documents(TEXTS[:2]), a[:2], atol=1e-5)
    assert converted[0].stat().st_mtime_ns == stamp  # reused, not converted again
    assert not [p for p in (tmp_path / "openvino").iterdir() if p.name.startswith(".tmp")]


def test_auto_backend_and_batch_follow_the_device(tmp_path: Path) -> None:
    emb = Embedder("minilm", tmp_path)
    emb.warm_up()
    assert emb.backend == ("openvino" if openvino_available() else "torch")
    assert emb.batch_size == 8  # CPU: small batches stay in cache


def test_unknown_backend_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="embed_backend must be auto, torch or openvino"):
        Embedder("minilm", tmp_path, backend="onnx").warm_up()
