"""A generator for Anthropic's Messages API (streaming), over plain httpx.

Wire format: https://docs.anthropic.com/en/api/messages-streaming. The system prompt is a
top-level field, not a message, and the stream is a sequence of named SSE events:
message_start, content_block_start, content_block_delta*, content_block_stop, message_delta,
message_stop, with `ping` anywhere and `error` possibly mid-stream.
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
)

ANTHROPIC_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
_WHAT = "the Anthropic API"

# What to tell the user for the documented error types (by HTTP status, and by the type the
# body or an `error` event names, which is the only signal once the stream has started).
_ADVICE_BY_TYPE = {
    "authentication_error": "the API key was rejected; check the environment variable {env}",
    "permission_error": "the API key may not use this model or feature",
    "not_found_error": "check the model name {model!r}",
    "request_too_large": "the request is too large; use fewer or shorter passages",
    "rate_limit_error": "rate limited; wait a moment and retry",
    "api_error": "Anthropic had an internal error; retry later",
    "overloaded_error": "Anthropic is overloaded right now; retry in a little while",
    "invalid_request_error": "the request was rejected as invalid",
}
_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def split_system(messages: list[Message]) -> tuple[str, list[Message]]:
    """Anthropic takes the system prompt as its own field: join system messages into it and keep
    the user/assistant turns, which must start with a user turn."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    if not turns:
        raise GenerationError("the Anthropic API needs at least one user message, got none")
    if turns[0]["role"] != "user":
        raise GenerationError("the Anthropic API needs the first non-system message from the user")
    return system, turns


class AnthropicGenerator(HTTPGenerator):
    """Streams from POST {base_url}/v1/messages."""

    what = _WHAT

    def __init__(
        self,
        model: str = "claude-3-5-haiku-latest",
        api_key_env: str = "ANTHROPIC_API_KEY",
        base_url: str = ANTHROPIC_URL,
        timeout: float = 120.0,
        context_window: int = 200_000,
    ) -> None:
        super().__init__()
        if not base_url.startswith(("http://", "https://")):
            raise GenerationError(f"base_url must start with http:// or https://, got {base_url!r}")
        if timeout <= 0:
            raise GenerationError(f"timeout must be positive, got {timeout}")
        if not model:
            raise GenerationError("no model name given for the Anthropic API")
        self.model = model
        self.name = model
        self.api_key_env = api_key_env or "ANTHROPIC_API_KEY"
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.context_window = context_window

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/messages"

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env, "").strip()
        if not key:
            raise GenerationError(
                f"no Anthropic API key: set the environment variable {self.api_key_env}"
            )
        return key

    def warm_up(self) -> None:
        self._api_key()  # nothing to load; fail early, e.g. when the UI starts, if no key is set

    def stream(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        if not 0 <= temperature <= 1:
            raise GenerationError(f"the Anthropic API takes temperature 0..1, got {temperature}")
        system, turns = split_system(check_request(messages, max_new_tokens))
        key = self._api_key()
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": max_new_tokens,
            "messages": turns,
            "temperature": temperature,
            "stream": True,
        }
        if system:
            body["system"] = system
        stops = [s for s in (stop or []) if s]
        if stops:
            # The API rejects sequences that are only whitespace; those are applied locally.
            server_stops = [s for s in stops if s.strip()]
            if server_stops:
                body["stop_sequences"] = server_stops
        return self._stream(body, key, stops)

    def _error_message(self, kind: str | None, detail: str, status: int | None) -> str:
        advice = _ADVICE_BY_TYPE.get(kind or "", "")
        advice = advice.format(env=self.api_key_env, model=self.model)
        head = f"{_WHAT} ({self.model}) "
        head += f"answered HTTP {status}" if status is not None else "failed mid-answer"
        return f"{head}: {detail}" + (f"; {advice}" if advice else "")

    def _status_message(self, response: httpx.Response) -> str:
        status = response.status_code
        kind = _TYPE_BY_STATUS.get(status)
        try:
            err = response.json().get("error")
            kind = err.get("type") or kind
        except (ValueError, AttributeError):
            pass
        detail = error_detail(response)
        message = self._error_message(kind, detail, status)
        retry = response.headers.get("retry-after")
        if status == 429 and retry:
            message += f" (the server asks to wait {retry} s)"
        return message

    def _stream(self, body: dict[str, Any], key: str, stops: list[str]) -> Iterator[str]:
        self.last_stats = {
            "prompt_tokens": None,
            "completion_tokens": 0,
            "ttft_s": None,
            "total_s": None,
            "stop_reason": None,
        }
        headers = {
            "x-api-key": key,
            "anthropic-version": ANTHROPIC_VERSION,
            "content-type": "application/json",
            "accept": "text/event-stream",
        }
        yield from self._post_stream(body, headers, key, stops)

    def _pieces(self, response: httpx.Response, key: str) -> Iterator[str]:
        stats = self.last_stats
        for event in sse_events(response):
            try:
                data = json.loads(event.data)
            except ValueError:
                data = None
            if not isinstance(data, dict):
                fail(f"{_WHAT} sent a malformed {event.event!r} event", key)
            kind = data.get("type", event.event)
            if kind == "message_start":
                usage = (data.get("message") or {}).get("usage") or {}
                stats["prompt_tokens"] = _input_tokens(usage)
                stats["completion_tokens"] = usage.get("output_tokens", 0)
            elif kind == "content_block_delta":
                delta = data.get("delta") or {}
                # Only text: tool-input JSON, thinking and signature deltas are not the answer.
                if delta.get("type") == "text_delta" and delta.get("text"):
                    yield delta["text"]
            elif kind == "message_delta":
                usage = data.get("usage") or {}
                if "output_tokens" in usage:  # cumulative, per the docs
                    stats["completion_tokens"] = usage["output_tokens"]
                if usage.get("input_tokens") is not None:
                    stats["prompt_tokens"] = _input_tokens(usage)
                stats["stop_reason"] = (data.get("delta") or {}).get("stop_reason")
            elif kind == "message_stop":
                return
            elif kind == "error":
                err = data.get("error") or {}
                detail = str(err.get("message") or json.dumps(data)[:300])
                etype = err.get("type")
                detail += f" ({etype})" if etype else ""
                fail(self._error_message(etype, detail, None), key)
            # ping, content_block_start/stop and event types added later carry no answer text;
            # the docs ask clients to ignore unknown events.
        fail(f"{_WHAT} ended the stream before message_stop; the answer is incomplete", key)


def _input_tokens(usage: dict[str, Any]) -> int | None:
    """Prompt tokens including the cached part, which the API counts separately."""
    parts = [
        usage.get(k)
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    numbers = [p for p in parts if isinstance(p, int)]
    return sum(numbers) if numbers else None
