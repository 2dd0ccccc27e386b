"""HTTP pieces the API backends share: timeouts, error bodies, transport errors, SSE framing
and the streaming request loop itself."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx

from rag.generate.base import GenerationError, Generator, StopFilter, redact

# A local or LAN server accepts a connection at once; waiting the full request timeout (minutes)
# for a connect only delays the "is the server running?" message.
CONNECT_TIMEOUT_S = 10.0


def http_timeout(timeout: float) -> httpx.Timeout:
    """`read` bounds the wait for each chunk, so a server that stalls mid-answer is caught too,
    not only one that never starts."""
    return httpx.Timeout(
        connect=min(timeout, CONNECT_TIMEOUT_S), read=timeout, write=timeout, pool=timeout
    )


def error_detail(response: httpx.Response, limit: int = 300) -> str:
    """The human part of an error body, whatever shape the server uses.

    Handles OpenAI and Anthropic (``{"error": {"type", "message"}}``), FastAPI
    (``{"detail": ...}``) and plain-text bodies. Call after ``response.read()``.
    """
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:limit] if text else "(empty body)"
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            kind = err.get("type") or err.get("code")
            return str(err["message"])[:limit] + (f" ({kind})" if kind else "")
        for key in ("error", "detail", "message"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:limit]
            if value:  # FastAPI validation errors: a list of {"loc", "msg", ...}
                return json.dumps(value)[:limit]
    return json.dumps(body)[:limit]


def transport_message(exc: httpx.HTTPError, *, what: str, url: str, timeout: float) -> str:
    """A sentence for an httpx error that happened before or while reading a response."""
    if isinstance(exc, httpx.ConnectTimeout):
        return (
            f"cannot reach {what} at {url}: no answer to the connection within "
            f"{min(timeout, CONNECT_TIMEOUT_S):g} s"
        )
    if isinstance(exc, httpx.ConnectError):
        return f"cannot reach {what} at {url}: is the server running? ({exc})"
    if isinstance(exc, httpx.ReadTimeout):
        return (
            f"{what} at {url} sent nothing for {timeout:g} s (request_timeout); the server is "
            "stalled or overloaded"
        )
    if isinstance(exc, httpx.TimeoutException):
        return f"request to {what} at {url} timed out after {timeout:g} s"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return f"{what} at {url} closed the connection mid-answer: {exc}"
    return f"request to {what} at {url} failed: {type(exc).__name__}: {exc}"


@dataclass
class SSEEvent:
    event: str  # "message" when the server sent no `event:` line
    data: str


def sse_events(response: httpx.Response) -> Iterator[SSEEvent]:
    """Server-sent events from a streaming response, framed as the HTML spec says: `event:` and
    `data:` lines accumulate until a blank line; several `data:` lines join with newlines;
    lines starting with ':' are comments (keep-alives)."""
    event = ""
    data: list[str] = []
    for line in response.iter_lines():
        if not line:
            if data:
                yield SSEEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        # `id:` and `retry:` matter only for reconnecting, which a one-shot answer never does.
    if data:  # a stream that ends without the final blank line
        yield SSEEvent(event or "message", "\n".join(data))


def fail(message: str, key: str | None, exc: BaseException | None = None) -> NoReturn:
    """Raise a GenerationError with the key masked: servers echo a rejected key back in the
    error body, and that text ends up on screen and in logs."""
    raise GenerationError(redact(message, key)) from exc


class HTTPGenerator(Generator):
    """What the API backends share: POST a request, stream the answer back, report errors.

    A subclass supplies `url`, `timeout` and `what` (how errors name the server), sets
    `last_stats` (with "ttft_s" and "total_s") before calling `_post_stream`, and decides
    only what its wire format decides: `_status_message` words an HTTP error (the body is
    already read) and `_pieces` pulls text deltas out of a 2xx response, raising through
    `fail` on a bad or truncated stream.
    """

    url: str
    timeout: float
    what: str

    def _status_message(self, response: httpx.Response) -> str:
        raise NotImplementedError

    def _pieces(self, response: httpx.Response, key: str | None) -> Iterator[str]:
        raise NotImplementedError

    def _post_stream(self, body: dict[str, Any], headers: dict[str, str], key: str | None,
                     stops: list[str]) -> Iterator[str]:
        """POST `body` and yield the answer text as it streams in, cut at the first stop
        string. Everything raised here goes through `fail`, so `key` never reaches the caller.
        """
        stats = self.last_stats
        started = time.monotonic()
        stop_filter = StopFilter(stops)
        try:
            with (
                httpx.Client(timeout=http_timeout(self.timeout)) as client,
                client.stream("POST", self.url, json=body, headers=headers) as response,
            ):
                if response.status_code >= 400:
                    response.read()
                    fail(self._status_message(response), key)
                for piece in self._pieces(response, key):
                    text = stop_filter.feed(piece)
                    if text:
                        if stats["ttft_s"] is None:
                            stats["ttft_s"] = time.monotonic() - started
                        yield text
                    if stop_filter.stopped:
                        break  # closing the response tells the server to stop generating
                tail = stop_filter.flush()
                if tail:
                    yield tail
        except httpx.HTTPError as exc:
            message = transport_message(exc, what=self.what, url=self.url, timeout=self.timeout)
            fail(message, key, exc)
        finally:
            stats["total_s"] = time.monotonic() - started
