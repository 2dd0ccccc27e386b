"""Shared fixtures: real models loaded once per session, settings pointing at temp folders."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from rag.settings import PROJECT_ROOT, Settings  # noqa: E402

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
SAMPLE_DOCS = PROJECT_ROOT / "sample_docs"


def shared_data(sub: str) -> Path:
    """A folder of ../shared/data, or skip: a fresh clone must pass without it."""
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"needs ../shared/data/{sub} beside the repository (not present)")
    return path


@pytest.fixture(scope="session")
def embedder():
    from rag.embedder import Embedder

    emb = Embedder("minilm")
    emb.warm_up()
    return emb


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(index_dir=tmp_path / "index", upload_dir=tmp_path / "uploads")
