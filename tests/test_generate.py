"""Generator backends against real parts: the tiny model in-process, a real `transformers serve`
for the OpenAI protocol, and local servers speaking Anthropic's published wire format."""

from __future__ import annotations

import importlib.util
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import (
    ANTHROPIC_KEY,
    AnthropicHandler,
    OpenAIErrorHandler,
    OpenAIKeyEchoHandler,
    StallBeforeHeadersHandler,
    StallMidStreamHandler,
    free_port,
    http_server,
    transformers_cli,
    transformers_serve,
)

from rag.generate import GenerationError, make_generator
from rag.generate.anthropic_api import AnthropicGenerator
from rag.generate.llamacpp import LlamaCppGenerator
from rag.generate.local import LocalGenerator
from rag.generate.openai_api import OpenAIGenerator
from rag.models import resolve_generator
from rag.settings import Settings

# The tiny model answers this with a bulleted list of the days (greedy decoding), which gives
# many stream pieces and known words to stop at.
DAYS = [{"role": "user", "content": "List the days of the week."}]


@pytest.fixture(scope="module")
def tiny_dir() -> Path:
    return resolve_generator("tiny", Settings().cache_dir)


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path) -> LocalGenerator:
    gen = LocalGenerator("tiny")
    gen.warm_up()
    return gen


# --------------------------------------------------------------------------- local


@pytest.fixture(scope="module")
def days_answer(tiny: LocalGenerator) -> tuple[list[str], dict]:
    """One greedy answer to DAYS, shared by the tests that compare against it (CPU is scarce)."""
    pieces = list(tiny.stream(DAYS, max_new_tokens=22))
    return pieces, dict(tiny.last_stats)


def test_local_streams_pieces_and_fills_stats(
    tiny: LocalGenerator, days_answer: tuple[list[str], dict]
) -> None:
    pieces, stats = days_answer
    text = "".join(pieces)
    assert len(pieces) >= 5, pieces
    assert "Monday" in text and "Tuesday" in text
    assert stats["prompt_tokens"] == tiny.encode_chat(DAYS)["input_ids"].shape[1]
    assert stats["completion_tokens"] == 22  # the list goes on to Sunday; 22 tokens cut it short
    assert 0 < stats["ttft_s"] <= stats["total_s"]
    # the real tokenizer: the decoded answer re-encodes to about as many tokens as were made
    assert abs(tiny.count_tokens(text) - stats["completion_tokens"]) <= 3


def test_local_prefix_cache_keeps_the_greedy_answer() -> None:
    """The shared opening (system rules) is prefilled once and reused, and the greedy text is
    what a full prefill gives.

    Both run in float32: in bf16 the split prefill rounds differently (logits differ by ~0.5)
    and the 135M model's greedy choice can flip; in float32 they agree to ~1e-4.
    """
    # int8 decode off: float32 weights take the plain path anyway (tests/test_int8_decode.py)
    fast = LocalGenerator("tiny", int8_decode=False)
    plain = LocalGenerator("tiny", reuse_prefix=False, int8_decode=False)
    for gen in (fast, plain):
        gen.warm_up()
        gen._model.float()
    system = {"role": "system", "content": "You copy facts from the passage. The passage is "
              "the only source you may use, and you answer in a few words."}
    questions = ["Passage: The Forth Bridge opened on 4 March 1890 in Scotland.\n"
                 "Question: When did the Forth Bridge open?",
                 "Passage: The bridge is 2,528.7 metres long and painted red.\n"
                 "Question: What colour is the bridge?"]
    for q in questions:
        messages = [system, {"role": "user", "content": q}]
        answer = fast.generate(messages, max_new_tokens=24)
        assert answer == plain.generate(messages, max_new_tokens=24)
        assert answer.strip()
    # the second question reused the first one's opening
    assert (fast.prefix_cache.hits, fast.prefix_cache.misses) == (1, 1)


def test_local_honours_max_new_tokens(tiny: LocalGenerator) -> None:
    text = tiny.generate(DAYS, max_new_tokens=4)
    assert tiny.last_stats["completion_tokens"] == 4
    assert 1 <= tiny.count_tokens(text) <= 5
    assert "Monday" not in text  # the list starts after an intro sentence of more than 4 tokens


def test_local_stop_string_ends_generation_early(
    tiny: LocalGenerator, days_answer: tuple[list[str], dict]
) -> None:
    full = "".join(days_answer[0])
    assert "Wednesday" in full and "Thursday" in full
    cut = tiny.generate(DAYS, max_new_tokens=22, stop=["Wednesday"])
    assert "Tuesday" in cut
    assert "Wednesday" not in cut and "Thursday" not in cut
    assert full.startswith(cut)
    # generation itself stopped, not just the text shown
    assert tiny.last_stats["completion_tokens"] < days_answer[1]["completion_tokens"]


def test_local_sampling_runs(tiny: LocalGenerator) -> None:
    text = tiny.generate(DAYS, max_new_tokens=6, temperature=0.9)
    assert text.strip()
    assert tiny.last_stats["completion_tokens"] <= 6


def test_local_abandoned_stream_stops_the_thread(tiny: LocalGenerator) -> None:
    stream = tiny.stream(DAYS, max_new_tokens=400)
    first = next(iter(stream))
    assert first
    stream.close()  # what a UI does when the user presses stop
    assert tiny.last_stats["completion_tokens"] < 50
    # the model is free again at once
    assert tiny.generate(DAYS, max_new_tokens=3)


def test_local_real_tokenizer_and_context_window(tiny: LocalGenerator) -> None:
    assert tiny.count_tokens("") == 0
    # SmolLM2's BPE has " word" as one token: 100, where a 4-characters-per-token guess says 125
    assert tiny.count_tokens(" ".join(["word"] * 100)) == 100
    assert tiny.context_window == 8192  # max_position_embeddings of SmolLM2-135M


def test_local_prompt_longer_than_context_is_a_clear_error(tiny: LocalGenerator) -> None:
    long = [{"role": "user", "content": " ".join(["word"] * 9000)}]
    with pytest.raises(GenerationError, match=r"prompt has \d+ tokens .* at most 8192"):
        list(tiny.stream(long, max_new_tokens=4))


def test_local_error_in_generation_thread_surfaces(tiny: LocalGenerator) -> None:
    import torch

    # A token id past the vocabulary makes the embedding lookup fail inside model.generate on
    # the worker thread; the consumer must get a GenerationError, not wait forever.
    bad = torch.tensor([[tiny.model.config.vocab_size + 10]])
    enc = {"input_ids": bad, "attention_mask": torch.ones_like(bad)}
    started = time.monotonic()
    with pytest.raises(GenerationError, match="failed while generating: IndexError"):
        list(tiny._stream(enc, 1, 4, 0.0, None))
    assert time.monotonic() - started < 10
    assert tiny.generate(DAYS, max_new_tokens=2)  # the lock was released


def test_local_bad_messages_and_model() -> None:
    gen = LocalGenerator("no-such-model")
    with pytest.raises(GenerationError, match="unknown model 'no-such-model'"):
        gen.warm_up()
    with pytest.raises(GenerationError, match="message 0 must be"):
        gen.stream([{"role": "robot", "content": "hi"}], max_new_tokens=4)


# --------------------------------------------------------------------------- OpenAI protocol


@pytest.fixture(scope="module")
def serve_url(tiny_dir: Path) -> Iterator[str]:
    if transformers_cli() is None:
        pytest.skip("`transformers serve` is unavailable (pip install 'transformers[serving]')")
    with transformers_serve(tiny_dir) as url:
        yield url


def test_openai_streams_from_transformers_serve(serve_url: str, tiny_dir: Path) -> None:
    gen = OpenAIGenerator(serve_url, str(tiny_dir), api_key_env="RAG_TEST_NO_SUCH_KEY",
                          timeout=60)
    pieces = list(gen.stream(DAYS, max_new_tokens=12))
    assert len(pieces) >= 3, pieces
    assert "Monday" in "".join(pieces)  # greedy: "Here are the days of the week:\n\n* Monday"
    stats = gen.last_stats
    assert stats["usage_reported"] is True  # the server's own token counts were read
    assert stats["completion_tokens"] == 12
    assert stats["prompt_tokens"] > 10
    assert 0 < stats["ttft_s"] <= stats["total_s"]


def test_openai_stop_string_with_transformers_serve(serve_url: str, tiny_dir: Path) -> None:
    gen = OpenAIGenerator(serve_url, str(tiny_dir), api_key_env="", timeout=60)
    # the same 12 tokens as above end in "Monday"; the stop string must remove it
    text = gen.generate(DAYS, max_new_tokens=12, stop=["Monday"])
    assert "days of the week" in text
    assert "Monday" not in text


def test_openai_unknown_model_shows_server_message(serve_url: str) -> None:
    gen = OpenAIGenerator(serve_url, "no-such-model", api_key_env="", timeout=30)
    with pytest.raises(GenerationError, match=r"HTTP 4\d\d: .*no-such-model"):
        gen.generate(DAYS, max_new_tokens=2)


def test_openai_dead_port_fails_fast() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    gen = OpenAIGenerator(url, "m", api_key_env="", timeout=30)
    started = time.monotonic()
    with pytest.raises(GenerationError) as info:
        gen.generate(DAYS, max_new_tokens=2)
    assert time.monotonic() - started < 3
    assert "cannot reach" in str(info.value) and url in str(info.value)
    assert "is the server running?" in str(info.value)


def test_openai_http_500_shows_status_and_server_message() -> None:
    with http_server(OpenAIErrorHandler) as (server, base):
        gen = OpenAIGenerator(f"{base}/v1", "m", api_key_env="", timeout=5)
        with pytest.raises(GenerationError) as info:
            gen.generate(DAYS, max_new_tokens=2, stop=["a", "b", "c", "d", "e"])
        request = server.requests[0]
    message = str(info.value)
    assert "HTTP 500" in message and OpenAIErrorHandler.MESSAGE in message
    assert request["path"] == "/v1/chat/completions"
    body = request["body"]
    assert body["stream"] is True and body["max_tokens"] == 2 and body["model"] == "m"
    assert body["messages"] == DAYS
    assert body["stop"] == ["a", "b", "c", "d"]  # OpenAI's limit; the fifth is applied locally


def test_openai_key_never_appears_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-abcdefghijklmnop0123"
    monkeypatch.setenv("RAG_TEST_OPENAI_KEY", secret)
    with http_server(OpenAIKeyEchoHandler) as (_, base):
        gen = OpenAIGenerator(f"{base}/v1", "m", api_key_env="RAG_TEST_OPENAI_KEY", timeout=5)
        with pytest.raises(GenerationError) as info:
            gen.generate(DAYS, max_new_tokens=2)
    message = str(info.value)
    assert "HTTP 401" in message and "RAG_TEST_OPENAI_KEY" in message
    assert secret not in message and "Incorrect API key provided: ***" in message


def test_openai_needs_key_only_for_openai_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_TEST_OPENAI_KEY", raising=False)
    gen = OpenAIGenerator("https://api.openai.com/v1", "gpt-4o-mini", "RAG_TEST_OPENAI_KEY")
    with pytest.raises(GenerationError, match="set the environment variable RAG_TEST_OPENAI_KEY"):
        gen.stream(DAYS, max_new_tokens=2)


@pytest.mark.parametrize("handler", [StallBeforeHeadersHandler, StallMidStreamHandler])
def test_openai_stalled_server_times_out(handler: type) -> None:
    with http_server(handler) as (_, base):
        gen = OpenAIGenerator(f"{base}/v1", "m", api_key_env="", timeout=1.0)
        started = time.monotonic()
        pieces: list[str] = []
        with pytest.raises(GenerationError, match=r"sent nothing for 1 s"):
            for piece in gen.stream(DAYS, max_new_tokens=5):
                pieces.append(piece)
        elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed
    if handler is StallMidStreamHandler:
        assert pieces == ["Hel"]  # what arrived before the stall was passed on


# --------------------------------------------------------------------------- Anthropic protocol


@pytest.fixture
def anthropic(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[object, str]]:
    monkeypatch.setenv("RAG_TEST_ANTHROPIC_KEY", ANTHROPIC_KEY)
    with http_server(AnthropicHandler) as (server, base):
        yield server, base


CHAT = [
    {"role": "system", "content": "Answer from the passages only."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Which colour is the sky on a clear day?"},
]


def _anthropic(base: str, model: str = "claude-test") -> AnthropicGenerator:
    return AnthropicGenerator(model, "RAG_TEST_ANTHROPIC_KEY", base_url=base, timeout=5)


def test_anthropic_streams_text_and_usage(anthropic: tuple) -> None:
    server, base = anthropic
    gen = _anthropic(base)
    pieces = list(gen.stream(CHAT, max_new_tokens=100, temperature=0.0))
    assert "".join(pieces) == "You said: Which colour is the sky on a clear day?"
    assert len(pieces) >= 5
    stats = gen.last_stats
    assert stats["prompt_tokens"] == 16  # words in system + messages, as the server counted
    assert stats["completion_tokens"] == len(pieces)
    assert stats["stop_reason"] == "end_turn"
    assert 0 < stats["ttft_s"] <= stats["total_s"]
    request = server.requests[-1]
    assert request["headers"]["x-api-key"] == ANTHROPIC_KEY
    assert request["headers"]["anthropic-version"] == "2023-06-01"
    body = request["body"]
    assert body["system"] == "Answer from the passages only."  # separated from the turns
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["max_tokens"] == 100 and body["stream"] is True


def test_anthropic_stop_sequences_and_max_tokens(anthropic: tuple) -> None:
    _, base = anthropic
    gen = _anthropic(base)
    assert gen.generate(CHAT, max_new_tokens=100, stop=["sky"]) == "You said: Which colour is the "
    assert gen.last_stats["stop_reason"] == "stop_sequence"
    # a whitespace stop is not sent (the API rejects it) but is still applied here
    assert gen.generate(CHAT, max_new_tokens=100, stop=["\n", " colour"]) == "You said: Which"
    assert gen.generate(CHAT, max_new_tokens=2) == "You said: Wh"  # 2 pieces of 6 characters
    assert gen.last_stats["stop_reason"] == "max_tokens"
    assert gen.last_stats["completion_tokens"] == 2


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-overloaded", r"HTTP 529: Overloaded \(overloaded_error\); Anthropic is over"),
        ("claude-broken", r"HTTP 500: Internal server error \(api_error\); .*internal error"),
        ("claude-ratelimited", r"HTTP 429: .*rate limit.*; rate limited.*wait 7 s"),
        ("claude-midstream", r"failed mid-answer: Overloaded \(overloaded_error\)"),
    ],
)
def test_anthropic_errors_are_clear(anthropic: tuple, model: str, expected: str) -> None:
    _, base = anthropic
    gen = _anthropic(base, model)
    received: list[str] = []
    with pytest.raises(GenerationError, match=expected) as info:
        for piece in gen.stream(CHAT, max_new_tokens=100):
            received.append(piece)
    assert ANTHROPIC_KEY not in str(info.value)
    if model == "claude-midstream":
        assert "".join(received) == "You said: Wh"  # the two pieces before the error event


def test_anthropic_rejected_key_is_redacted(anthropic: tuple,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _, base = anthropic
    wrong = "sk-ant-wrong-key-987654321"
    monkeypatch.setenv("RAG_TEST_ANTHROPIC_KEY", wrong)
    with pytest.raises(GenerationError) as info:
        _anthropic(base).generate(CHAT, max_new_tokens=5)
    message = str(info.value)
    assert "HTTP 401" in message and "authentication_error" in message
    assert "check the environment variable RAG_TEST_ANTHROPIC_KEY" in message
    assert wrong not in message and "invalid x-api-key ***" in message


def test_anthropic_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_TEST_ANTHROPIC_KEY", raising=False)
    gen = AnthropicGenerator("claude-test", "RAG_TEST_ANTHROPIC_KEY", base_url="http://127.0.0.1:9")
    with pytest.raises(GenerationError, match="set the environment variable RAG_TEST_ANTHROP"):
        gen.warm_up()
    with pytest.raises(GenerationError, match="RAG_TEST_ANTHROPIC_KEY"):
        gen.stream(CHAT, max_new_tokens=5)


def test_anthropic_dead_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_TEST_ANTHROPIC_KEY", ANTHROPIC_KEY)
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(GenerationError, match="is the server running") as info:
        _anthropic(url).generate(CHAT, max_new_tokens=5)
    assert ANTHROPIC_KEY not in str(info.value)


def test_anthropic_needs_a_user_turn() -> None:
    gen = AnthropicGenerator("claude-test", "RAG_TEST_ANTHROPIC_KEY")
    with pytest.raises(GenerationError, match="at least one user message"):
        gen.stream([{"role": "system", "content": "x"}], max_new_tokens=5)


# --------------------------------------------------------------------------- llama.cpp, factory


def test_llamacpp_missing_package_says_how_to_install(tiny_dir: Path) -> None:
    gen = LlamaCppGenerator("tiny")
    if importlib.util.find_spec("llama_cpp") is not None:
        # installed: the backend must then really answer
        assert gen.generate(DAYS, max_new_tokens=8).strip()
        assert gen.count_tokens(" ".join(["word"] * 10)) == 10
        return
    with pytest.raises(GenerationError) as info:
        gen.warm_up()
    message = str(info.value)
    assert "llama-cpp-python" in message and "offline-rag[llamacpp]" in message
    assert "-DGGML_NATIVE=OFF" in message and "-DGGML_AVX512_BF16=ON" in message


def test_make_generator_by_backend(tmp_path: Path) -> None:
    base = Settings(cache_dir=tmp_path)
    local = make_generator(base.replace(model="tiny"))
    assert isinstance(local, LocalGenerator) and local.name == "tiny"
    openai = make_generator(base.replace(backend="openai", model="m",
                                         base_url="http://127.0.0.1:1/v1", request_timeout=7))
    assert isinstance(openai, OpenAIGenerator)
    assert openai.url == "http://127.0.0.1:1/v1/chat/completions" and openai.timeout == 7
    assert openai.api_key_env == "OPENAI_API_KEY"
    claude = make_generator(base.replace(backend="anthropic", model="claude-x",
                                         api_key_env="MY_KEY"))
    assert isinstance(claude, AnthropicGenerator)
    assert claude.url == "https://api.anthropic.com/v1/messages" and claude.api_key_env == "MY_KEY"
    assert isinstance(make_generator(base.replace(backend="llamacpp")), LlamaCppGenerator)
    with pytest.raises(GenerationError, match="unknown backend 'gpt'"):
        make_generator(base.replace(backend="gpt"))
    with pytest.raises(GenerationError, match="'default', a local preset"):
        make_generator(base.replace(backend="openai"))


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_allocator_keeps_freed_memory_after_the_model_loads(tiny: LocalGenerator) -> None:
    from rag.hardware import keep_freed_memory

    # warm_up set it (a cached call); glibc accepted both parameters
    assert keep_freed_memory.cache_info().currsize == 1
    assert keep_freed_memory() is True
