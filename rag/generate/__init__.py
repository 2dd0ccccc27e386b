"""Text generators behind one interface (rag.generate.base.Generator), one module per backend.

Backends are imported only when chosen, so picking "openai" never imports torch and "local"
never needs llama-cpp-python.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rag.generate.base import GenerationError, Generator, Message, StopFilter

if TYPE_CHECKING:
    from rag.models import Progress
    from rag.settings import Settings

__all__ = ["BACKENDS", "GenerationError", "Generator", "Message", "StopFilter", "make_generator",
           "short_adapter"]

BACKENDS = ("local", "openai", "anthropic", "llamacpp")
_DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


def short_adapter(settings: Settings) -> Path | None:
    """The LoRA adapter short answers use with these settings (None: the plain model)."""
    if settings.backend.strip().lower() != "local":
        return None
    from rag.generate.adapter import resolve_adapter

    return resolve_adapter(settings.short_adapter, settings.model)


def make_generator(settings: Settings, progress: Progress | None = None, *,
                   style: str = "chat") -> Generator:
    """The generator `settings.backend` names, configured from `settings` (not yet loaded);
    for `style` "short", with the short-answer adapter merged in when there is one."""
    backend = settings.backend.strip().lower()
    if backend == "local":
        from rag.generate.local import LocalGenerator

        return LocalGenerator(settings.model, settings.cache_dir, settings.device, progress,
                              int8_decode=settings.int8_decode,
                              adapter=short_adapter(settings) if style == "short" else None)
    if backend == "llamacpp":
        from rag.generate.llamacpp import LlamaCppGenerator

        return LlamaCppGenerator(settings.model, settings.cache_dir, progress=progress)
    if backend in ("openai", "anthropic"):
        from rag.models import GENERATOR_PRESETS

        if settings.model in GENERATOR_PRESETS:
            # The setting's default names a local preset, which no API server knows.
            raise GenerationError(
                f"model is {settings.model!r}, a local preset; with backend {backend!r} set "
                "model to a name the server knows (for `transformers serve`, the model folder)"
            )
        key_env = settings.api_key_env or _DEFAULT_KEY_ENV[backend]
        if backend == "openai":
            from rag.generate.openai_api import OPENAI_URL, OpenAIGenerator

            return OpenAIGenerator(
                settings.base_url or OPENAI_URL, settings.model, key_env, settings.request_timeout
            )
        from rag.generate.anthropic_api import ANTHROPIC_URL, AnthropicGenerator

        return AnthropicGenerator(
            settings.model, key_env, settings.base_url or ANTHROPIC_URL, settings.request_timeout
        )
    raise GenerationError(
        f"unknown backend {settings.backend!r}; choose one of {', '.join(BACKENDS)}"
    )
