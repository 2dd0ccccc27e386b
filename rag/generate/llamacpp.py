"""Optional backend: a GGUF model run by llama-cpp-python.

Not the default: on this kind of CPU torch bf16 prefills about 4x faster (DESIGN.md section 1).
It is here for machines where torch is unwelcome or bf16 is not native. llama-cpp-python is an
optional extra that is imported only when this backend is used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.generate.base import GenerationError, Generator, Message, StopFilter, check_request
from rag.models import ModelError, Progress, resolve_gguf

# The default source build of llama-cpp-python segfaults on CPUs with AMX (DESIGN.md section 1);
# these flags build the AVX-512 kernels without the AMX path.
CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON "
    "-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON"
)
INSTALL_HINT = (
    f'CMAKE_ARGS="{CMAKE_ARGS}" .venv/bin/pip install "offline-rag[llamacpp]"  '
    "(builds llama-cpp-python from source, about 4 minutes)"
)
DEFAULT_N_CTX = 4096  # the KV cache is allocated up front: ask for what RAG prompts need


def _import_llama() -> Any:
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise GenerationError(
            f"the llamacpp backend needs llama-cpp-python, which is not installed ({exc}). "
            f"Install it with:\n  {INSTALL_HINT}\nor use the default backend 'local'."
        ) from exc
    return Llama


class LlamaCppGenerator(Generator):
    """Runs a .gguf file, or a generator preset's verified GGUF, with llama.cpp."""

    def __init__(
        self,
        model_path: str | Path = "default",
        cache_dir: Path | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        super().__init__()
        if cache_dir is None:
            from rag.settings import Settings

            cache_dir = Settings().cache_dir
        self.model_path = str(model_path)
        self.name = Path(self.model_path).name
        self.cache_dir = Path(cache_dir)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.progress = progress
        self.context_window = n_ctx
        self._llm: Any = None
        # A llama.cpp context is not thread-safe: one call at a time.
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        if self._llm is not None:
            return
        with self._lock:
            if self._llm is not None:
                return
            llama_cls = _import_llama()
            try:
                path = resolve_gguf(self.model_path, self.cache_dir, self.progress)
            except ModelError as exc:
                raise GenerationError(str(exc)) from exc
            from rag.hardware import available_cpus

            threads = self.n_threads or available_cpus()
            try:
                llm = llama_cls(
                    model_path=str(path), n_ctx=self.n_ctx, n_threads=threads, verbose=False
                )
            except (ValueError, RuntimeError, OSError) as exc:
                raise GenerationError(f"llama.cpp cannot load {path}: {exc}") from exc
            trained = int(llm.n_ctx_train()) if hasattr(llm, "n_ctx_train") else self.n_ctx
            self.context_window = min(self.n_ctx, trained) if trained > 0 else self.n_ctx
            self._llm = llm

    def count_tokens(self, text: str) -> int:
        self.warm_up()
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        messages = check_request(messages, max_new_tokens)
        self.warm_up()
        return self._stream(messages, max_new_tokens, temperature, stop)

    def _stream(
        self,
        messages: list[Message],
        max_new_tokens: int,
        temperature: float,
        stop: list[str] | None,
    ) -> Iterator[str]:
        started = time.monotonic()
        self.last_stats = {
            "prompt_tokens": None,
            "completion_tokens": 0,
            "ttft_s": None,
            "total_s": None,
        }
        stops = StopFilter(stop)
        with self._lock:
            try:
                chunks = self._llm.create_chat_completion(
                    messages=messages,
                    max_tokens=max_new_tokens,
                    temperature=temperature,
                    stop=[s for s in (stop or []) if s] or None,
                    stream=True,
                )
                for chunk in chunks:
                    choice = (chunk.get("choices") or [{}])[0]
                    content = (choice.get("delta") or {}).get("content")
                    if not content:
                        continue
                    self.last_stats["completion_tokens"] += 1  # llama.cpp streams one token each
                    text = stops.feed(content)
                    if text:
                        if self.last_stats["ttft_s"] is None:
                            self.last_stats["ttft_s"] = time.monotonic() - started
                        yield text
                    if stops.stopped:
                        break
                tail = stops.flush()
                if tail:
                    yield tail
            except (ValueError, RuntimeError) as exc:
                # llama-cpp-python raises ValueError when the prompt exceeds n_ctx.
                raise GenerationError(f"llama.cpp failed on {self.name}: {exc}") from exc
            finally:
                self.last_stats["total_s"] = time.monotonic() - started
            # llama-cpp-python keeps the count of evaluated tokens (prompt + answer so far).
            evaluated = getattr(self._llm, "n_tokens", None)
            if isinstance(evaluated, int):
                self.last_stats["prompt_tokens"] = max(
                    0, evaluated - self.last_stats["completion_tokens"]
                )
