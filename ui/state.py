"""The conversation kept per browser session, and the history the chain reads from it."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from rag.types import Answer

TURNS = "turns"
INGEST_SUMMARY = "ingest_summary"


@dataclass
class Turn:
    question: str
    answer: Answer | None = None  # None when answering failed
    error: str | None = None  # what the user can do about the failure
    model: str = ""  # which model answered, shown with the timings


def turns(state: MutableMapping[str, Any]) -> list[Turn]:
    """The conversation so far (created empty on first use)."""
    if TURNS not in state:
        state[TURNS] = []
    return state[TURNS]


def clear_chat(state: MutableMapping[str, Any]) -> None:
    state[TURNS] = []


def history(past: list[Turn]) -> list[dict[str, str]]:
    """The messages a follow-up question is read against: answered turns only.

    A failed turn is left out: its question had no reply, and a dangling user message would
    make the model rewrite the next question around something that was never answered.
    """
    out: list[dict[str, str]] = []
    for t in past:
        if t.answer is not None:
            out += [{"role": "user", "content": t.question},
                    {"role": "assistant", "content": t.answer.text}]
    return out
