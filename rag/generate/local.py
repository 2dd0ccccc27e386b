"""The in-process generator: a Hugging Face causal LM run with torch (bf16 where native).

DESIGN.md section 1: torch bf16 prefill is about 4x faster than llama.cpp on this kind of CPU,
so this is the default backend. Presets and .gguf files are converted once to safetensors by
rag.models; this module only loads the converted folder.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.generate.base import (
    GenerationError,
    Generator,
    Message,
    StopFilter,
    check_messages,
    check_request,
)
from rag.generate.prefix_cache import MIN_PREFIX_TOKENS, PrefixCache, shared_prefix_length
from rag.models import ModelError, Progress, resolve_generator

log = logging.getLogger(__name__)

# Some configs claim windows (128k+) that would need more memory than a laptop has for the KV
# cache, and that the small models were never trained to use well; the prompt budget is far
# below this anyway.
MAX_CONTEXT = 32768
# How often the consumer re-checks that the generation thread is still alive while waiting for
# text; a crash is reported through the queue, this is only the belt to those braces.
_POLL_S = 0.5


class LocalGenerator(Generator):
    """Runs a model folder, preset ("default", "fast", "tiny") or .gguf file in this process."""

    def __init__(
        self,
        model: str = "default",
        cache_dir: Path | None = None,
        device: str = "auto",
        progress: Progress | None = None,
        reuse_prefix: bool = True,
        int8_decode: bool = True,
        blocked_attention: bool = True,
        adapter: str | Path | None = None,
    ) -> None:
        super().__init__()
        if cache_dir is None:
            from rag.settings import Settings

            cache_dir = Settings().cache_dir
        self.name = str(model)
        self.cache_dir = Path(cache_dir)
        self.device_setting = device
        self.progress = progress
        self.prefix_cache = PrefixCache() if reuse_prefix else None
        self.int8_decode = int8_decode
        self.blocked_attention = blocked_attention
        # a LoRA adapter folder (rag finetune), merged into the weights at load
        self.adapter = Path(adapter) if adapter else None
        self.path: Path | None = None
        self.device: str | None = None
        self.dtype: Any = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._decode_tokenizer: Any = None
        self._load_lock = threading.Lock()
        # One generation at a time: two at once only split the same cores and both run slower.
        self._generate_lock = threading.Lock()

    # ------------------------------------------------------------------ loading

    def _resolve(self) -> Path:
        if self.path is None:
            try:
                self.path = resolve_generator(self.name, self.cache_dir, self.progress)
            except ModelError as exc:
                raise GenerationError(str(exc)) from exc
        return self.path

    def _load_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        path = self._resolve()
        try:
            return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise GenerationError(f"cannot load the tokenizer of {path}: {exc}") from exc

    @property
    def tokenizer(self) -> Any:
        """The tokenizer alone (loading it does not load the weights)."""
        if self._tokenizer is None:
            with self._load_lock:
                if self._tokenizer is None:
                    self._tokenizer = self._load_tokenizer()
        return self._tokenizer

    def warm_up(self) -> None:
        if self._model is not None:
            return
        tokenizer = self.tokenizer
        with self._load_lock:
            if self._model is not None:
                return
            from transformers import AutoModelForCausalLM

            from rag.hardware import (
                configure_torch_threads,
                keep_freed_memory,
                pick_device,
                pick_dtype,
            )

            configure_torch_threads()
            keep_freed_memory()
            try:
                device = pick_device(self.device_setting)
            except ValueError as exc:
                raise GenerationError(str(exc)) from exc
            dtype = pick_dtype(device)
            path = self._resolve()
            if self.progress is not None:
                self.progress(f"loading {self.name} ({path.name}) on {device} in {dtype}")
            started = time.monotonic()
            try:
                model = AutoModelForCausalLM.from_pretrained(
                    str(path), dtype=dtype, local_files_only=True
                )
            except (OSError, ValueError) as exc:
                raise GenerationError(f"cannot load the model in {path}: {exc}") from exc
            variant = ""
            if self.adapter is not None:
                from rag.generate.adapter import merge_adapter
                from rag.models import folder_key

                try:
                    model = merge_adapter(model, self.adapter, path)
                except (OSError, ValueError) as exc:
                    raise GenerationError(f"cannot apply the adapter {self.adapter}: {exc}") \
                        from exc
                variant = folder_key(self.adapter)
            model.to(device)
            model.eval()
            if self.int8_decode:
                from rag.generate import int8_decode

                if int8_decode.supported(device, dtype):
                    int8_decode.add_int8_decode(model, path, self.cache_dir, self.progress,
                                                variant)
            if self.blocked_attention and device == "cpu":
                from rag.generate import cpu_attention

                cpu_attention.enable(model)
            config = model.config
            window = getattr(config, "max_position_embeddings", None)
            if not isinstance(window, int) or window <= 0:
                text_config = getattr(config, "get_text_config", lambda: config)()
                window = getattr(text_config, "max_position_embeddings", None)
            self.context_window = min(window, MAX_CONTEXT) if isinstance(window, int) else 4096
            self.device, self.dtype = device, dtype
            if tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
                raise GenerationError(f"the tokenizer in {path} defines neither pad nor eos token")
            self._model = model
            log.info(
                "loaded %s on %s (%s) in %.1f s; context window %d",
                path,
                device,
                self.precision,
                time.monotonic() - started,
                self.context_window,
            )

    @property
    def precision(self) -> str | None:
        """What the weights run in, e.g. "bfloat16, int8 decode"; None until loaded."""
        if self._model is None:
            return None
        from rag.generate.int8_decode import has_int8_decode

        text = str(self.dtype).removeprefix("torch.")
        return f"{text}, int8 decode" if has_int8_decode(self._model) else text

    @property
    def model(self) -> Any:
        self.warm_up()
        return self._model

    # ------------------------------------------------------------------ tokens

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def encode_chat(self, messages: list[Message]) -> dict[str, Any]:
        """input_ids and attention_mask of the chat prompt, ending where the answer starts."""
        messages = check_messages(messages)
        tok = self.tokenizer
        if tok.chat_template:
            enc = tok.apply_chat_template(
                messages, add_generation_prompt=True, return_dict=True, return_tensors="pt"
            )
        else:
            # A base model without a template: a plain transcript is what it completes best.
            text = "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages)
            enc = tok(text + "Assistant:", return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def _opening_length(self, messages: list[Message], input_ids: Any) -> int:
        """Tokens at the start of the prompt that depend only on the system message (0 when
        the prefix cache is off, so none are reused)."""
        tok = self.tokenizer
        if self.prefix_cache is None or not tok.chat_template or messages[0]["role"] != "system":
            return 0
        opening = tok.apply_chat_template([messages[0], {"role": "user", "content": ""}],
                                          add_generation_prompt=False, return_dict=True)
        return shared_prefix_length(input_ids[0].tolist(), list(opening["input_ids"]))

    # ------------------------------------------------------------------ generation

    def stream(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        if temperature < 0:
            raise GenerationError(f"temperature must be >= 0, got {temperature}")
        messages = check_request(messages, max_new_tokens)  # fail before loading the model
        self.warm_up()
        enc = self.encode_chat(messages)
        prompt_tokens = int(enc["input_ids"].shape[1])
        if prompt_tokens >= self.context_window:
            raise GenerationError(
                f"the prompt has {prompt_tokens} tokens but {self.name} accepts at most "
                f"{self.context_window}; use fewer or shorter passages"
            )
        # Shorten the answer rather than fail when the prompt leaves less room than asked for.
        max_new_tokens = min(max_new_tokens, self.context_window - prompt_tokens)
        opening = self._opening_length(messages, enc["input_ids"])
        return self._stream(enc, prompt_tokens, max_new_tokens, temperature, stop, opening)

    def _stream(
        self,
        enc: dict[str, Any],
        prompt_tokens: int,
        max_new_tokens: int,
        temperature: float,
        stop: list[str] | None,
        opening: int = 0,
    ) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        started = time.monotonic()
        self.last_stats = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": 0,
            "ttft_s": None,
            "total_s": None,
        }
        cancel = threading.Event()

        class _Cancelled(StoppingCriteria):
            # Lets the consumer end generation early: a stop string was seen, or it stopped
            # reading. Without this the thread would keep the CPU busy until max_new_tokens.
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full(
                    (input_ids.shape[0],),
                    cancel.is_set(),
                    dtype=torch.bool,
                    device=input_ids.device,
                )

        # The streamer decodes on the generation thread; a fast tokenizer used from two threads
        # at once fails with "Already borrowed", so it gets its own copy.
        streamer = TextIteratorStreamer(
            self._streamer_tokenizer(), skip_prompt=True, skip_special_tokens=True
        )
        tok = self.tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        device = self.device or "cpu"
        kwargs: dict[str, Any] = {
            "input_ids": enc["input_ids"].to(device),
            "attention_mask": enc["attention_mask"].to(device),
            "max_new_tokens": max_new_tokens,
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([_Cancelled()]),
            "pad_token_id": pad_id,
        }
        if temperature == 0:
            # Unset the sampling knobs a generation_config may carry, or transformers warns
            # that they are ignored under greedy decoding.
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        else:
            kwargs.update(do_sample=True, temperature=temperature)
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                with self._generate_lock, torch.inference_mode():
                    if cancel.is_set():  # the consumer gave up while we waited for the lock
                        return
                    if opening >= MIN_PREFIX_TOKENS:
                        kwargs["past_key_values"] = self.prefix_cache.cache_for(
                            self.model, kwargs["input_ids"][0, :opening])
                    out = self.model.generate(**kwargs)
                outcome["completion_tokens"] = int(out.shape[1]) - prompt_tokens
            except BaseException as exc:  # noqa: BLE001 - reported to the consumer, not lost
                outcome["error"] = exc
            finally:
                # generate() ends the streamer on success; after a crash nothing would, and the
                # consumer would wait forever. A second end marker is harmless.
                streamer.text_queue.put(streamer.stop_signal)

        thread = threading.Thread(target=run, name=f"generate-{self.name}", daemon=True)
        thread.start()
        stops = StopFilter(stop)
        try:
            for piece in self._pieces(streamer, thread):
                text = stops.feed(piece)
                if text:
                    if self.last_stats["ttft_s"] is None:
                        self.last_stats["ttft_s"] = time.monotonic() - started
                    yield text
                if stops.stopped:
                    break
            if "error" in outcome:
                exc = outcome["error"]
                raise GenerationError(
                    f"{self.name} failed while generating: {type(exc).__name__}: {exc}"
                ) from exc
            tail = stops.flush()
            if tail:
                if self.last_stats["ttft_s"] is None:
                    self.last_stats["ttft_s"] = time.monotonic() - started
                yield tail
        finally:
            cancel.set()
            # The thread notices `cancel` after at most one more token; joining keeps the next
            # call from competing with a dying one and lets us report the real token count.
            thread.join()
            self.last_stats["completion_tokens"] = outcome.get("completion_tokens", 0)
            self.last_stats["total_s"] = time.monotonic() - started

    @staticmethod
    def _pieces(streamer: Any, thread: threading.Thread) -> Iterator[str]:
        while True:
            try:
                value = streamer.text_queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not thread.is_alive() and streamer.text_queue.empty():
                    return
                continue
            if value is streamer.stop_signal:
                return
            yield value

    def _streamer_tokenizer(self) -> Any:
        if self._decode_tokenizer is None:
            self._decode_tokenizer = self._load_tokenizer()
        return self._decode_tokenizer
