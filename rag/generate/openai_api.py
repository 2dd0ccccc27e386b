"""A generator that talks to any OpenAI-compatible chat completions server.

That covers OpenAI itself and the local servers people run offline (`transformers serve`,
llama.cpp's server, vLLM, Ollama's /v1). Plain httpx and server-sent events: the official SDK
would add a dependency and retries we do not want hidden behind a spinner.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx

from rag.generate._http import HTTPGenerator, error_detail, fail, sse_events
from rag.generate.base import (
    GenerationError,
    Message,
    check_request,
    estimate_tokens,
)

OPENAI_URL = "https://api.openai.com/v1"
# OpenAI rejects more than four stop sequences; all of them are applied here, on the client.
_MAX_SERVER_STOPS = 4
_WHAT = "the OpenAI-compatible server"


class OpenAIGenerator(HTTPGenerator):
    """Streams from POST {base_url}/chat/completions."""

    what = _WHAT

    def __init__(
        self,
        base_url: str = OPENAI_URL,
        model: str = "gpt-4o-mini",
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        context_window: int | None = None,
    ) -> None:
        super().__init__()
        if not base_url.startswith(("http://", "https://")):
            raise GenerationError(f"base_url must start with http:// or https://, got {base_url!r}")
        if timeout <= 0:
            raise GenerationError(f"timeout must be positive, got {timeout}")
        if not model:
            raise GenerationError("no model name given for the OpenAI-compatible server")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        if context_window is not None:
            self.context_window = context_window

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def _api_key(self) -> str | None:
        key = os.environ.get(self.api_key_env, "").strip() if self.api_key_env else ""
        if not key and httpx.URL(self.base_url).host == "api.openai.com":
            # Local servers need no key; OpenAI always does, so say so before a 401 round trip.
            raise GenerationError(
                f"no API key: set the environment variable {self.api_key_env} to use {self.url}"
            )
        return key or None

    def stream(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        messages = check_request(messages, max_new_tokens)
        key = self._api_key()
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            # OpenAI reports token usage in a stream only when asked; local servers accept it.
            "stream_options": {"include_usage": True},
        }
        stops = [s for s in (stop or []) if s]
        if stops:
            body["stop"] = stops[:_MAX_SERVER_STOPS]
        return self._stream(body, key, messages, stops)

    def _stream(
        self, body: dict[str, Any], key: str | None, messages: list[Message], stops: list[str]
    ) -> Iterator[str]:
        self.last_stats = {
            "prompt_tokens": sum(estimate_tokens(m["content"]) for m in messages),
            "completion_tokens": 0,
            "ttft_s": None,
            "total_s": None,
            "usage_reported": False,
        }
        headers = {"content-type": "application/json", "accept": "text/event-stream"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        yield from self._post_stream(body, headers, key, stops)

    def _status_message(self, response: httpx.Response) -> str:
        status = response.status_code
        hint = ""
        if status in (401, 403):
            hint = f"; check the API key in the environment variable {self.api_key_env}"
        elif status == 404:
            hint = (
                f"; check the model name {self.model!r} and that the base URL ends where the "
                "API starts (often .../v1)"
            )
        elif status == 429:
            hint = "; rate limited or out of quota, wait and retry"
        elif status >= 500:
            hint = "; the server failed, see its log"
        return f"{_WHAT} at {self.url} answered HTTP {status}: {error_detail(response)}{hint}"

    def _pieces(self, response: httpx.Response, key: str | None) -> Iterator[str]:
        """Content deltas from an SSE stream, or from one JSON answer if the server ignored
        stream=true."""
        where = f"{_WHAT} at {self.url}"
        if response.headers.get("content-type", "").startswith("application/json"):
            response.read()
            try:
                data = response.json()
                content = data["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                fail(f"{where} sent an answer that is not a chat completion", key)
            self._usage(data.get("usage"))
            if content:
                yield content
            return
        finished = False
        for event in sse_events(response):
            if event.data == "[DONE]":
                return
            try:
                chunk = json.loads(event.data)
            except ValueError:
                chunk = None
            if not isinstance(chunk, dict):
                fail(f"{where} sent a malformed event: {event.data[:200]!r}", key)
            if chunk.get("error"):
                err = chunk["error"]
                message = err.get("message") if isinstance(err, dict) else str(err)
                fail(f"{where} reported an error mid-answer: {message}", key)
            self._usage(chunk.get("usage"))
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    if not self.last_stats["usage_reported"]:
                        self.last_stats["completion_tokens"] += 1  # a chunk is about a token
                    yield content
                if choice.get("finish_reason"):
                    finished = True
        # Some servers (transformers serve) end after the finish_reason chunk without [DONE];
        # ending before either means the answer was cut off.
        if not finished:
            fail(f"{where} ended the stream before the answer was complete", key)

    def _usage(self, usage: Any) -> None:
        if isinstance(usage, dict) and "completion_tokens" in usage:
            self.last_stats["prompt_tokens"] = usage.get("prompt_tokens")
            self.last_stats["completion_tokens"] = usage.get("completion_tokens")
            self.last_stats["usage_reported"] = True
