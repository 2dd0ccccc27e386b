"""The one settings object that the CLI, the Python API and the UI all read.

Precedence, lowest first: defaults here, a TOML file (``rag.toml`` in the working directory, or
the path in ``RAG_CONFIG``), environment variables ``RAG_<FIELD>`` and explicit overrides.
API keys are never stored here: only the *name* of the environment variable that holds them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_origin, get_type_hints

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "offline-rag"


@dataclass
class Settings:
    # where things live
    index_dir: Path = PROJECT_ROOT / "indexes" / "default"
    cache_dir: Path = field(default_factory=_default_cache_dir)  # converted models
    upload_dir: Path = PROJECT_ROOT / "indexes" / "uploads"  # files uploaded in the UI

    # splitting and embedding
    embedder: str = "minilm"  # preset name or a sentence-transformers folder
    chunk_tokens: int = 192  # in embedder tokens (never above its limit); README, Tuning
    chunk_overlap: int = 0  # 32 and 64 measured no better recall (README, Tuning)
    # 0 = pick for the device: 8 on CPU (measured ~10% faster than 32 there, the working set
    # stays in cache), 64 on CUDA
    embed_batch: int = 0
    embed_backend: str = "auto"  # auto (OpenVINO on CPU when installed) | torch | openvino
    device: str = "auto"  # auto | cpu | cuda

    # retrieval
    retrieval: str = "hybrid"  # hybrid | dense | bm25
    top_k: int = 3  # passages given to the generator; 3 answered best (README, Tuning)
    candidates: int = 30  # per retriever, before fusion
    rrf_k: int = 60
    rerank: str = "none"  # none | <reranker name>

    # generation
    backend: str = "local"  # local | openai | anthropic | llamacpp
    # a preset (default, fast, tiny), a model folder, a .gguf file, or an API model name
    model: str = "default"
    base_url: str = ""  # for the openai backend
    api_key_env: str = ""  # name of the env var holding the API key (default per backend)
    max_new_tokens: int = 256
    # local backend on a bf16 CPU: decode steps on an int8 copy of the weights, 2x faster
    # (rag/generate/int8_decode.py); prefill stays bf16
    int8_decode: bool = True
    # local backend: the LoRA adapter for short answers (style "short", what `rag eval` scores),
    # merged into a second copy of the model that loads on the first short question. "auto":
    # the adapter shipped for the preset (rag/adapters/, README "Evaluation"); "" or "none":
    # the plain model; or a folder from `rag finetune`. Chat answers never use it: tuned on
    # SQuAD's short spans, it answers a chat question with a bare phrase.
    short_adapter: str = "auto"
    temperature: float = 0.0
    context_tokens: int = 2048  # prompt budget for retrieved passages
    request_timeout: float = 120.0

    # ingestion
    max_upload_mb: int = 50
    follow_symlinks: bool = True
    # passwords of encrypted PDFs: {file name or path: password}. In rag.toml a table
    # ([pdf_passwords] "report.pdf" = "..."), in RAG_PDF_PASSWORDS a JSON object. Without an
    # entry an encrypted PDF is reported as failed ("needs a password"), never guessed at.
    pdf_passwords: dict[str, str] = field(default_factory=dict)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **_coerce_all(changes))

    @classmethod
    def load(cls, path: str | Path | None = None, **overrides: Any) -> Settings:
        """Defaults <- TOML file <- RAG_* environment <- overrides (None values ignored)."""
        values: dict[str, Any] = {}
        config = path or os.environ.get("RAG_CONFIG")
        if config is None and Path("rag.toml").is_file():
            config = "rag.toml"
        if config:
            with open(config, "rb") as fh:
                data = tomllib.load(fh)
            data = data.get("rag", data)
            unknown = set(data) - _names()
            if unknown:
                raise ValueError(f"unknown setting(s) in {config}: {', '.join(sorted(unknown))}")
            values.update(data)
        for name in _names():
            env = os.environ.get(f"RAG_{name.upper()}")
            if env is not None and env != "":
                values[name] = env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**_coerce_all(values))


def _names() -> set[str]:
    return {f.name for f in fields(Settings)}


def _coerce_all(values: dict[str, Any]) -> dict[str, Any]:
    hints = get_type_hints(Settings)
    out = {}
    for name, value in values.items():
        if name not in hints:
            raise ValueError(f"unknown setting: {name}")
        out[name] = _coerce(name, hints[name], value)
    return out


def _coerce(name: str, hint: Any, value: Any) -> Any:
    try:
        if hint is Path:
            return Path(value).expanduser()
        if hint is bool:
            if isinstance(value, str):
                return value.strip().lower() in {"1", "true", "yes", "on"}
            return bool(value)
        if hint in (int, float, str):
            return hint(value)
        if get_origin(hint) is dict:
            # environment variables can only carry a string: a JSON object then
            mapping = json.loads(value) if isinstance(value, str) else value
            if not isinstance(mapping, dict):
                raise TypeError("not a mapping")
            return {str(k): str(v) for k, v in mapping.items()}
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {name}: cannot read {value!r} as {hint.__name__}") from exc
    return value
