"""Question -> (standalone question) -> passages -> prompt -> streamed answer with sources.

`Chain.stream()` returns an `AnswerStream`: iterate it for the answer's text pieces as the
model writes them; its `passages` are known before the first piece (a UI can show them at
once) and its `answer` once the iteration ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from rag.grounding import unsupported_facts
from rag.prompt import (
    ECHO_RETRY,
    REFUSAL,
    Message,
    build_prompt,
    cited_numbers,
    condense_messages,
    echoes_question,
    is_refusal,
    match_number_forms,
    quote_lists_as_written,
    short_answer,
)
from rag.settings import Settings
from rag.types import Answer, Passage, Source

if TYPE_CHECKING:
    from rag.generate.base import Generator
    from rag.retrieve import Retriever

# room for the chat template and the rules when the model's own window is the limit
_TEMPLATE_SLACK = 64


def to_source(number: int, p: Passage) -> Source:
    c = p.chunk
    return Source(number=number, source=c.source, page=c.page, text=c.text,
                  score=round(float(p.score), 6), heading=c.heading, start=c.start, end=c.end)


class AnswerStream:
    """Text pieces of one answer as they are generated; `.answer` once they are all read."""

    def __init__(self, pieces: Iterator[str], finish, question: str, standalone: str,
                 passages: list[Source]) -> None:
        self._pieces = pieces
        self._finish = finish
        self.question = question
        self.standalone_question = standalone
        self.passages = passages
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        text = []
        for piece in self._pieces:
            text.append(piece)
            yield piece
        self.answer = self._finish("".join(text))

    def result(self) -> Answer:
        """Read the rest of the stream (if any) and return the answer."""
        if self.answer is None:
            for _ in self:
                pass
        assert self.answer is not None
        return self.answer


class Chain:
    def __init__(self, retriever: Retriever, generator: Generator, settings: Settings, *,
                 short_generator: Generator | None = None) -> None:
        self.retriever = retriever
        self.generator = generator
        # answers in the "short" style (rag.api.RAG.short_generator); `generator` when None
        self.short_generator = short_generator or generator
        self.settings = settings

    def condense(self, question: str, history: Sequence[Message]) -> str:
        """The question rewritten to stand alone, using the chat history (if there is any)."""
        if not any(m.get("role") == "user" for m in history):
            return question
        text = self.generator.generate(condense_messages(history, question),
                                       max_new_tokens=64, temperature=0.0, stop=["\n"])
        text = text.strip().strip('"').strip()
        # a model that answers instead of rewriting gives something unusable: keep the original
        return text if 3 <= len(text) <= 4 * len(question) + 200 else question

    def stream(self, question: str, history: Sequence[Message] = (), *, k: int | None = None,
               mode: str | None = None, style: str = "chat",
               max_new_tokens: int | None = None) -> AnswerStream:
        question = question.strip()
        if not question:
            raise ValueError("the question is empty")
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        standalone = self.condense(question, history)
        if standalone is not question:
            timings["condense_s"] = round(time.perf_counter() - t0, 4)
        passages = self.retriever.retrieve(standalone, k=k, mode=mode, timings=timings)
        generator = self.short_generator if style == "short" else self.generator
        budget = min(self.settings.context_tokens,
                     generator.context_window - self._max_new(max_new_tokens)
                     - _TEMPLATE_SLACK)
        prompt = build_prompt(standalone, passages, generator.count_tokens, budget, style)
        timings["prompt_tokens"] = prompt.tokens
        shown = [to_source(i, p) for i, p in enumerate(prompt.passages, start=1)]

        def pieces() -> Iterator[str]:
            if not shown:
                # nothing to ground an answer in: saying so beats letting the model improvise
                yield REFUSAL
                return
            t_gen = time.perf_counter()
            replies = generator.stream(prompt.messages,
                                            max_new_tokens=self._max_new(max_new_tokens),
                                            temperature=self.settings.temperature)
            if style == "short":
                # a phrase of a few tokens: it is checked whole (and maybe asked again) before
                # it is shown, rather than streamed
                replies = iter([self._short_reply("".join(replies), prompt.messages,
                                                  standalone, [s.text for s in shown],
                                                  max_new_tokens)])
            first = True
            for piece in replies:
                if first and piece:
                    timings["ttft_s"] = round(time.perf_counter() - t0, 4)
                    timings["generation_ttft_s"] = round(time.perf_counter() - t_gen, 4)
                    first = False
                yield piece

        def finish(text: str) -> Answer:
            timings["total_s"] = round(time.perf_counter() - t0, 4)
            stats = getattr(generator, "last_stats", {}) or {}
            if stats.get("completion_tokens") is not None and shown:
                timings["completion_tokens"] = stats["completion_tokens"]
            text = draft = text.strip()
            refused = is_refusal(text) or not shown
            unsupported: list[str] = []
            if not refused:
                unsupported = unsupported_facts(text, [s.text for s in shown],
                                                f"{question}\n{standalone}")
                if unsupported:
                    refused = True
                    text = (f"{REFUSAL} (A draft answer stated {', '.join(unsupported)}, "
                            "which none of the retrieved passages contain, so it was withheld.)")
            cited = [] if unsupported else cited_numbers(text, len(shown))
            if refused and not cited:
                sources: list[Source] = []
            elif cited:
                sources = [shown[n - 1] for n in cited]
            else:
                # no citation markers: the passages the model read are the honest answer
                sources = list(shown)
            return Answer(text=text, sources=sources, passages=shown, question=question,
                          standalone_question=standalone, refused=refused, timings=timings,
                          unsupported=unsupported, draft=draft if unsupported else "")

        return AnswerStream(pieces(), finish, question, standalone, shown)

    def _short_reply(self, text: str, messages: list[Message], question: str,
                     passages: Sequence[str], max_new_tokens: int | None) -> str:
        """A short-style reply, asked for once more when it only restates the question, with
        small numbers and lists written as the passages write them."""
        if echoes_question(short_answer(text), question):
            retry = [*messages, {"role": "assistant", "content": text.strip()},
                     {"role": "user", "content": ECHO_RETRY}]
            again = self.short_generator.generate(
                retry, max_new_tokens=self._max_new(max_new_tokens),
                temperature=self.settings.temperature)
            phrase = short_answer(again)
            if phrase and not echoes_question(phrase, question):
                text = again
        return quote_lists_as_written(match_number_forms(text, passages), passages)

    def ask(self, question: str, history: Sequence[Message] = (), **kwargs) -> Answer:
        return self.stream(question, history, **kwargs).result()

    def _max_new(self, override: int | None) -> int:
        return override or self.settings.max_new_tokens
