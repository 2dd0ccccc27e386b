"""The interface every text generator implements, and helpers the backends share."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


class GenerationError(Exception):
    """Generation failed in a way the user can act on; the message says what to do.

    Messages never contain API keys.
    """


class Generator(ABC):
    """A chat model that streams its answer.

    Construction is cheap; `warm_up()` does the heavy loading (and `stream()` calls it if needed),
    so a UI can build a generator at once and load it while showing progress.
    """

    name: str = "generator"
    #: total tokens (prompt + answer) the model accepts
    context_window: int = 8192
    #: figures from the last call: prompt_tokens, completion_tokens, ttft_s, total_s
    last_stats: dict[str, Any]

    def __init__(self) -> None:
        self.last_stats = {}

    def warm_up(self) -> None:  # noqa: B027 - optional hook; API backends have nothing to load
        """Load whatever is slow to load. Safe to call more than once."""

    @abstractmethod
    def stream(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """Yield pieces of the answer as they arrive. Text from a stop string on is not yielded."""

    def generate(
        self,
        messages: list[Message],
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> str:
        return "".join(
            self.stream(messages, max_new_tokens=max_new_tokens, temperature=temperature, stop=stop)
        )

    def count_tokens(self, text: str) -> int:
        """Tokens in `text`. This default is an estimate (4 characters per token)."""
        return estimate_tokens(text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def check_messages(messages: Sequence[Message]) -> list[Message]:
    """Validate OpenAI-style messages early, with a message that says what is wrong."""
    if not messages:
        raise GenerationError("no messages to send to the model")
    out: list[Message] = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in ROLES or not isinstance(content, str):
            raise GenerationError(
                f"message {i} must be {{'role': one of {ROLES}, 'content': str}}, got {message!r}"
            )
        out.append({"role": role, "content": content})
    return out


def check_request(messages: Sequence[Message], max_new_tokens: int) -> list[Message]:
    """The checks every backend makes before it sends or loads anything."""
    if max_new_tokens < 1:
        raise GenerationError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    return check_messages(messages)


class StopFilter:
    """Cut a stream of text pieces at the first stop string, even one split across pieces.

    Text that could be the start of a stop string is held back until the next piece shows
    whether it is; so nothing after a stop string ever reaches the caller.
    """

    def __init__(self, stop: Iterable[str] | None) -> None:
        self.stops = [s for s in (stop or []) if s]
        self.keep = max((len(s) for s in self.stops), default=1) - 1
        self.buffer = ""
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Text that is safe to emit now (empty once a stop string was seen)."""
        if self.stopped:
            return ""
        if not self.stops:
            return piece
        self.buffer += piece
        cut = min((i for i in (self.buffer.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            out, self.buffer = self.buffer[:cut], ""
            return out
        # Hold back only the longest tail that is a prefix of some stop string.
        hold = 0
        for n in range(min(self.keep, len(self.buffer)), 0, -1):
            tail = self.buffer[-n:]
            if any(s.startswith(tail) for s in self.stops):
                hold = n
                break
        out = self.buffer[: len(self.buffer) - hold]
        self.buffer = self.buffer[len(self.buffer) - hold :]
        return out

    def flush(self) -> str:
        out, self.buffer = ("" if self.stopped else self.buffer), ""
        return out


def redact(text: str, secret: str | None) -> str:
    """Remove a secret from text that may end up in an exception or a log."""
    return text.replace(secret, "***") if secret else text
