"""Real servers for the API backend tests: a `transformers serve` subprocess, and small
http.server servers that speak the published wire formats (Anthropic Messages streaming) or
misbehave the way real servers do (500 with an error body, accepting and then stalling)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    """A TCP port nobody listens on right now (bound and released, so the kernel chose it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- transformers serve


def transformers_cli() -> Path | None:
    """The venv's `transformers` command, if its `serve` subcommand can run (FastAPI, uvicorn)."""
    import importlib.util

    cli = Path(sys.executable).parent / "transformers"
    if not cli.exists():
        found = shutil.which("transformers")
        cli = Path(found) if found else cli
    if not cli.exists():
        return None
    if any(importlib.util.find_spec(m) is None for m in ("fastapi", "uvicorn")):
        return None
    return cli


@contextlib.contextmanager
def transformers_serve(model_dir: Path, *, startup_timeout: float = 180.0) -> Iterator[str]:
    """Run `transformers serve MODEL_DIR` on a free port; yield its OpenAI base URL (.../v1)."""
    cli = transformers_cli()
    if cli is None:
        raise RuntimeError("the transformers serve command is not available")
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+", prefix="transformers-serve-") as log:
        proc = subprocess.Popen(
            [str(cli), "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"transformers serve exited with {proc.returncode}:\n" + _tail(log)
                    )
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"transformers serve not healthy after {startup_timeout:g} s:\n"
                        + _tail(log)
                    )
                time.sleep(0.5)
            yield f"{base}/v1"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def _tail(log: Any, chars: int = 3000) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-chars:]


# --------------------------------------------------------------------------- http.server harness


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Set on shutdown so handlers that deliberately stall return and let the test end.
    release: threading.Event
    requests: list[dict[str, Any]]


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[tuple[_Server, str]]:
    """Serve `handler` on a free localhost port in a thread; yield (server, base URL)."""
    server = _Server(("127.0.0.1", 0), handler)
    server.release = threading.Event()
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass  # keep pytest output clean; the assertions say what went wrong

    def read_json(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except ValueError:
            return None

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self, content_type: str = "text/event-stream") -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def write_chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


# --------------------------------------------------------------------------- OpenAI-style faults


class OpenAIErrorHandler(_Handler):
    """Answers every chat completion with HTTP 500 and an OpenAI-format error body."""

    MESSAGE = "the model crashed while loading: out of memory"

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        self.server.requests.append({"path": self.path, "body": self.read_json()})
        self.send_json(500, {"error": {"message": self.MESSAGE, "type": "server_error",
                                       "code": None}})


class OpenAIKeyEchoHandler(_Handler):
    """Rejects the key with 401 and quotes it back, as OpenAI does ("Incorrect API key
    provided: sk-..."): the client must not pass the key on to the user."""

    def do_POST(self) -> None:  # noqa: N802
        self.read_json()
        auth = self.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ")
        self.send_json(401, {"error": {"message": f"Incorrect API key provided: {key}",
                                       "type": "invalid_request_error",
                                       "code": "invalid_api_key"}})


class StallBeforeHeadersHandler(_Handler):
    """Accepts the request, then sends nothing (a hung server)."""

    def do_POST(self) -> None:  # noqa: N802
        self.read_json()
        self.server.release.wait(60)


class StallMidStreamHandler(_Handler):
    """Starts a valid OpenAI stream, sends one chunk, then goes quiet (a wedged generator)."""

    def do_POST(self) -> None:  # noqa: N802
        self.read_json()
        self.start_chunked()
        chunk = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]}
        self.write_chunk(f"data: {json.dumps(chunk)}\n\n")
        self.server.release.wait(60)


# --------------------------------------------------------------------------- Anthropic Messages


ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"


class AnthropicHandler(_Handler):
    """The Anthropic Messages API's streaming wire format, for testing a client offline.

    Validates the headers and body as the real API does and answers with the documented
    event sequence. The reply echoes the last user message ("You said: ..."), so a test can
    check what arrived. The model name picks a scenario:
      claude-test        normal stream (stop_sequences and max_tokens honoured)
      claude-overloaded  HTTP 529 overloaded_error
      claude-broken      HTTP 500 api_error
      claude-ratelimited HTTP 429 rate_limit_error with retry-after
      claude-midstream   starts streaming, then an `error` event (overloaded_error)
    A wrong x-api-key gets 401 authentication_error.
    """

    PIECE = 6  # characters per text_delta; small so that a reply spans several events

    def error(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None,
              ) -> None:
        self.send_json(status, {"type": "error", "error": {"type": kind, "message": message}},
                       headers={"request-id": "req_test", **(headers or {})})

    def event(self, name: str, data: dict[str, Any]) -> None:
        self.write_chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n")

    def invalid(self, body: Any) -> str | None:
        """Why the request would be rejected with 400, or None."""
        if self.path != "/v1/messages":
            return f"unknown path {self.path}"
        if self.headers.get("anthropic-version") != "2023-06-01":
            return "anthropic-version header must be 2023-06-01"
        if not self.headers.get("content-type", "").startswith("application/json"):
            return "content-type must be application/json"
        if not isinstance(body, dict):
            return "body is not a JSON object"
        if not isinstance(body.get("model"), str):
            return "model: field required"
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            return "max_tokens: must be a positive integer"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: at least one message is required"
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
                return f"messages.{i}.role: Input should be 'user' or 'assistant'"
            if not isinstance(m.get("content"), str | list):
                return f"messages.{i}.content: Input should be a string or a list of blocks"
        if messages[0]["role"] != "user":
            return "messages: first message must use the \"user\" role"
        if "system" in body and not isinstance(body["system"], str | list):
            return "system: Input should be a string or a list of blocks"
        if body.get("stream") is not True:
            return "this test server only streams"
        stops = body.get("stop_sequences", [])
        if not isinstance(stops, list) or not all(isinstance(s, str) and s.strip() for s in stops):
            return "stop_sequences: each must contain non-whitespace"
        temperature = body.get("temperature", 1.0)
        if not isinstance(temperature, int | float) or not 0 <= temperature <= 1:
            return "temperature: must be between 0 and 1"
        return None

    def do_POST(self) -> None:  # noqa: N802
        body = self.read_json()
        self.server.requests.append({"path": self.path, "headers": dict(self.headers),
                                     "body": body})
        if self.headers.get("x-api-key") != ANTHROPIC_KEY:
            # The real API does not quote the key; this server does, to prove the client
            # redacts whatever a server sends back.
            self.error(401, "authentication_error",
                       f"invalid x-api-key {self.headers.get('x-api-key')}")
            return
        problem = self.invalid(body)
        if problem:
            self.error(400, "invalid_request_error", problem)
            return
        model = body["model"]
        if model == "claude-overloaded":
            self.error(529, "overloaded_error", "Overloaded")
            return
        if model == "claude-broken":
            self.error(500, "api_error", "Internal server error")
            return
        if model == "claude-ratelimited":
            self.error(429, "rate_limit_error",
                       "Number of request tokens has exceeded your per-minute rate limit",
                       headers={"retry-after": "7"})
            return
        self.stream_reply(body)

    def stream_reply(self, body: dict[str, Any]) -> None:
        last = body["messages"][-1]["content"]
        reply = f"You said: {last}"
        stop_reason, stop_sequence = "end_turn", None
        for s in body.get("stop_sequences", []):
            at = reply.find(s)
            if at >= 0 and (stop_sequence is None or at < reply.find(stop_sequence)):
                stop_reason, stop_sequence = "stop_sequence", s
        if stop_sequence is not None:
            reply = reply[: reply.find(stop_sequence)]
        pieces = [reply[i:i + self.PIECE] for i in range(0, len(reply), self.PIECE)]
        # One piece stands for one token here, so max_tokens cuts after that many pieces.
        if len(pieces) > body["max_tokens"]:
            pieces = pieces[: body["max_tokens"]]
            stop_reason, stop_sequence = "max_tokens", None
        system = body.get("system", "")
        input_tokens = len(str(system).split()) + sum(
            len(str(m["content"]).split()) for m in body["messages"]
        )
        self.start_chunked()
        self.event("message_start", {"type": "message_start", "message": {
            "id": "msg_test", "type": "message", "role": "assistant", "content": [],
            "model": body["model"], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        }})
        self.event("content_block_start", {"type": "content_block_start", "index": 0,
                                           "content_block": {"type": "text", "text": ""}})
        self.event("ping", {"type": "ping"})
        for n, piece in enumerate(pieces):
            self.event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": piece}})
            if body["model"] == "claude-midstream" and n == 1:
                self.event("error", {"type": "error", "error": {
                    "type": "overloaded_error", "message": "Overloaded"}})
                self.end_chunked()
                return
        self.event("content_block_stop", {"type": "content_block_stop", "index": 0})
        self.event("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop_reason,
                                               "stop_sequence": stop_sequence},
                                     "usage": {"output_tokens": len(pieces)}})
        self.event("message_stop", {"type": "message_stop"})
        self.end_chunked()
