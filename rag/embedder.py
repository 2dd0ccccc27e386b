"""Sentence embeddings for chunks and queries (normalised, so inner product = cosine)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rag.settings import Settings


class Embedder:
    """Wraps a sentence-transformers model; heavy loading happens in `warm_up()`."""

    def __init__(self, model: str = "minilm", cache_dir: Path | None = None,
                 device: str = "auto", batch_size: int = 0, backend: str = "auto") -> None:
        self.model_name = model
        self.cache_dir = cache_dir or Settings().cache_dir
        self.device_setting = device
        self.batch_size = batch_size
        self.backend_setting = backend
        self._model = None
        self._ov = None
        self.path: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Embedder:
        return cls(settings.embedder, settings.cache_dir, settings.device, settings.embed_batch,
                   settings.embed_backend)

    def warm_up(self) -> None:
        if self._model is not None:
            return
        import torch
        from sentence_transformers import SentenceTransformer

        from rag.hardware import pick_device, pick_dtype

        path = self._folder()
        device = pick_device(self.device_setting)
        backend = _pick_backend(self.backend_setting, device)
        # with OpenVINO, torch only tokenizes and pools: keep its copy in float32 to convert from
        dtype = torch.float32 if backend == "openvino" else pick_dtype(device)
        kwargs = {"dtype": dtype} if dtype != torch.float32 else {}
        model = SentenceTransformer(str(path), device=device, model_kwargs=kwargs,
                                    local_files_only=True)
        if backend == "openvino":
            from rag.openvino_encoder import OpenVINOEncoder

            self._ov = OpenVINOEncoder(model, path, self.cache_dir)
        self._model = model
        self.backend = backend
        self.dtype = dtype
        self.device = device
        if not self.batch_size:
            self.batch_size = 64 if device.startswith("cuda") else 8

    @property
    def precision(self) -> str:
        """What runs the model, for reports: "openvino bf16", "torch bfloat16", ..."""
        self.warm_up()
        if self.backend == "openvino":
            return self._ov.precision
        return f"torch {str(self.dtype).replace('torch.', '')}"

    @property
    def model(self):
        self.warm_up()
        return self._model

    @property
    def tokenizer(self):
        return self.model.tokenizer

    @property
    def dim(self) -> int:
        m = self.model
        # sentence-transformers 6 renamed the method; keep working with both
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def _folder(self) -> Path:
        """The model folder, found (and unpacked once) without loading the model."""
        if self.path is None:
            from rag.models import resolve_embedder

            self.path = resolve_embedder(self.model_name, self.cache_dir)
        return self.path

    @property
    def max_tokens(self) -> int:
        """Content tokens per chunk that survive truncation ([CLS] and [SEP] take two).

        Read from the folder's sentence-transformers config when it has one, so that splitting
        text (e.g. of files that then fail) does not load the model."""
        if self._model is None:
            try:
                config = json.loads((self._folder() / "sentence_bert_config.json").read_text())
                return int(config["max_seq_length"]) - 2
            except (OSError, ValueError, KeyError, TypeError):
                pass
        return int(self.model.max_seq_length) - 2

    def separate_tokenizer(self):
        """A tokenizer instance of its own, for use on another thread: a Hugging Face fast
        tokenizer shared between threads fails with "Already borrowed"."""
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self._folder()), local_files_only=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def embed_documents(self, texts: Sequence[str],
                        progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed in length-sorted batches: similar lengths pad less, which is most of the win."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        for lo in range(0, len(order), self.batch_size):
            idx = order[lo:lo + self.batch_size]
            out[idx] = self._encode([texts[i] for i in idx])
            if progress:
                progress(len(idx))
        return out

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([text])[0]

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        model = self.model
        if self._ov is not None:
            return self._ov.encode(texts)
        vecs = model.encode(list(texts), batch_size=len(texts), convert_to_numpy=True,
                            normalize_embeddings=True, show_progress_bar=False)
        return vecs.astype(np.float32, copy=False)


def _pick_backend(setting: str, device: str) -> str:
    """"auto" takes OpenVINO on CPU when it is installed; torch on CUDA or without it."""
    from rag.openvino_encoder import openvino_available

    setting = (setting or "auto").strip().lower()
    if setting not in ("auto", "torch", "openvino"):
        raise ValueError(f"embed_backend must be auto, torch or openvino, not {setting!r}")
    if setting == "openvino":
        if not device.startswith("cpu"):
            raise ValueError(f"embed_backend 'openvino' runs on the CPU, but device is {device!r}")
        if not openvino_available():
            raise ValueError("embed_backend is 'openvino' but the openvino package is not "
                             "installed: pip install openvino")
        return setting
    if setting == "auto":
        return "openvino" if device.startswith("cpu") and openvino_available() else "torch"
    return setting
