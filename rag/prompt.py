"""Compose the messages a chat model gets: numbered passages, the question, the rules.

Two answer styles share one format for passages and citations:
- "chat" (what users see): a brief answer, every statement followed by the passages it rests on;
- "short" (what evaluation scores): only the shortest phrase from the passages, then its
  passage number, e.g. ``1998 [2]``, because SQuAD references are short spans. The chain checks
  such a reply whole: one that only restates the question is asked for again (`ECHO_RETRY`),
  small numbers are written as the passages write them (`match_number_forms`) and lists are
  joined as the passages join them (`quote_lists_as_written`).
When the documents do not hold the answer, the chain replies with `REFUSAL` (see _RULES).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.types import Passage

REFUSAL = "The documents do not contain the answer."
STYLES = ("chat", "short")

# No "if the passages lack the answer, reply exactly ..." rule: measured on the sample questions,
# that rule made the default 1.5B model decline questions its passages plainly answered
# (11 of 11 answered without it, 5 of 11 declined with it). Missing answers are caught after
# generation instead: a natural "the documents do not say" is recognised by `is_refusal`, and
# an answer from memory by rag.grounding (names and numbers found in no passage).
_RULES = {
    "chat": (
        "You answer questions using only the numbered passages from the user's documents. "
        "Put the number of the passage each fact comes from in square brackets right after "
        "it, for example: The pond holds 3,600 cubic metres [2]. Be brief: one to three "
        "sentences. Do not use outside knowledge."
    ),
    # The worked examples lifted F1 by 2-4 points on the tuning sample (README, Tuning); they
    # cost no time per question because the system prompt's cache is reused (PrefixCache). The
    # second passage and the last two questions (answer without the question's own words, find
    # the passage that holds the answer) added 2 points of F1 on its first 100 questions.
    "short": (
        "You answer questions using only the numbered passages from the user's documents. "
        "Reply with the shortest phrase copied word for word from a passage that answers the "
        "question, followed by that passage's number in square brackets. Copy words and "
        "numbers exactly as the passage writes them. No sentence, no explanation.\n\n"
        "Examples, for passages that read:\n"
        "[1] \"After seven years of work by 4,600 men, the bridge opened on 4 March 1890. Cars "
        "were later banned from it because of air pollution. The engineers shared their huts "
        "with the riveters.\"\n"
        "[2] \"The first bridge at the site was designed by Thomas Bouch and fell in 1879. Its "
        "replacement was designed by John Fowler and Benjamin Baker.\"\n"
        "Question: How long did the work take? Reply: seven years [1]\n"
        "Question: How many men built the bridge? Reply: 4,600 [1]\n"
        "Question: When did the bridge open? Reply: 4 March 1890 [1]\n"
        "Question: Why were cars banned from the bridge? Reply: air pollution [1]\n"
        "Question: Who did the engineers share their huts with? Reply: the riveters [1]\n"
        "Question: Who designed the replacement bridge? Reply: John Fowler and Benjamin Baker [2]"
    ),
}

# Sent after a short reply that only repeats words of the question ("Why do these defections
# occur?" -> "defections occur"); the 1.5B model did that on 12 of 300 tuning questions, 11 wrong.
ECHO_RETRY = (
    "That reply only repeats words of the question. Reply with the phrase from the passages "
    "that answers the question, followed by its passage number."
)

_CONDENSE = (
    "Rewrite the user's last question as one standalone question that can be understood "
    "without the conversation: replace pronouns and references such as 'he', 'it' or 'that "
    "year' with what they refer to, and name the subject the conversation is about. Reply with "
    "the rewritten question only.\n\nExample:\nConversation:\nUser: Who designed the Forth "
    "Bridge?\nAssistant: Sir John Fowler and Sir Benjamin Baker [1].\n\nLast question: When "
    "did its construction start?\n\nStandalone question: When did the construction of the "
    "Forth Bridge start?"
)

Message = dict[str, str]


@dataclass
class Prompt:
    messages: list[Message]
    passages: list[Passage]  # the passages in the prompt, numbered 1..n in this order
    tokens: int  # prompt tokens as counted by the generator


def label(passage: Passage) -> str:
    """How a passage's origin is shown to the model: file name and page."""
    c = passage.chunk
    where = Path(c.source).name + (f", page {c.page}" if c.page is not None else "")
    return f"{where}, section: {c.heading}" if c.heading else where


def _passage_block(number: int, passage: Passage) -> str:
    return f"[{number}] ({label(passage)})\n{passage.chunk.text.strip()}"


def _messages(style: str, question: str, blocks: Sequence[str]) -> list[Message]:
    context = "\n\n".join(blocks) if blocks else "(no passages were found)"
    user = f"Passages:\n\n{context}\n\nQuestion: {question.strip()}"
    return [{"role": "system", "content": _RULES[style]}, {"role": "user", "content": user}]


def build_prompt(question: str, passages: Sequence[Passage], count_tokens: Callable[[str], int],
                 budget: int, style: str = "chat") -> Prompt:
    """Messages with as many passages, in rank order, as fit in `budget` prompt tokens.

    A passage that does not fit whole is left out rather than cut, so the model never reads a
    sentence that stops halfway; a later, shorter one may still fit.
    """
    if style not in STYLES:
        raise ValueError(f"answer style must be one of {', '.join(STYLES)}, not {style!r}")
    base = _count(count_tokens, _messages(style, question, []))
    used, blocks, kept = base, [], []
    for p in passages:
        block = _passage_block(len(kept) + 1, p)
        need = count_tokens(block) + 2  # the blank line between passages
        if used + need > budget:
            continue
        used += need
        blocks.append(block)
        kept.append(p)
    messages = _messages(style, question, blocks)
    return Prompt(messages, kept, _count(count_tokens, messages))


def _count(count_tokens: Callable[[str], int], messages: Sequence[Message]) -> int:
    # a few tokens per message for the chat template's role markers
    return sum(count_tokens(m["content"]) + 4 for m in messages)


def condense_messages(history: Sequence[Message], question: str,
                      max_turns: int = 3) -> list[Message]:
    """Messages asking the model to turn a follow-up into a standalone question."""
    turns = [m for m in history if m.get("role") in ("user", "assistant")][-2 * max_turns:]
    lines = []
    for m in turns:
        who = "User" if m["role"] == "user" else "Assistant"
        # answers can be long; the names and dates a follow-up refers to come early
        lines.append(f"{who}: {strip_citations(m['content'])[:600]}")
    convo = "\n".join(lines)
    user = f"Conversation:\n{convo}\n\nLast question: {question.strip()}\n\nStandalone question:"
    return [{"role": "system", "content": _CONDENSE}, {"role": "user", "content": user}]


_CITE = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def cited_numbers(text: str, n_passages: int) -> list[int]:
    """Passage numbers cited in `text` as [1], [1, 2] or [1][2], in first-seen order."""
    seen: list[int] = []
    for m in _CITE.finditer(text):
        for part in re.split(r"[,;]", m.group(1)):
            n = int(part)
            if 1 <= n <= n_passages and n not in seen:
                seen.append(n)
    return seen


def strip_citations(text: str) -> str:
    return re.sub(r"\s*" + _CITE.pattern, "", text).strip()


_REFUSAL_MARKERS = (
    "documents do not contain", "documents don't contain", "passages do not contain",
    "passages don't contain", "not contain the answer", "no information", "not mentioned",
    "not provided in the", "cannot be answered", "can't be answered", "do not say",
    "does not say", "i don't know", "i do not know", "do not cover", "does not cover",
    "do not mention", "does not mention", "not specified", "not stated",
)


def is_refusal(text: str) -> bool:
    """True when the model said the passages lack the answer (in any wording it tends to use)."""
    t = " ".join(text.lower().replace("’", "'").split())
    return any(m in t for m in _REFUSAL_MARKERS)


def short_answer(text: str) -> str:
    """The scoreable short answer from a "short"-style reply: no citations, one line."""
    first = next((line for line in text.strip().splitlines() if line.strip()), "")
    out = strip_citations(first).strip()
    out = re.sub(r"^(answer|short answer)\s*:\s*", "", out, flags=re.I)
    out = out.rstrip(".").strip().strip('"“”').strip()
    return "" if is_refusal(out) else out


def _stems(text: str) -> set[str]:
    words = re.findall(r"\w+", text.lower().replace("’", "'"))
    return {re.sub(r"(?:'s|s|es|ed|ing)$", "", w) for w in words} - {"a", "an", "the"}


def echoes_question(answer: str, question: str) -> bool:
    """True when every word of a short answer is a word of the question (plurals and -ed/-ing
    forms folded): a reply that restates the question instead of answering it."""
    said = _stems(answer)
    return bool(said) and said <= _stems(question)


_NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
)


def match_number_forms(text: str, passages: Sequence[str]) -> str:
    """Write small numbers the way the passages do: "8" becomes "eight" when the passages say
    "eight" and never "8" (and the other way round).

    Asked to copy numbers exactly, the 1.5B model still turned 4 of 300 tuning answers into the
    other form; a reader checking the quote against the source expects the source's form.
    """
    words = set(re.findall(r"\w+", " ".join(passages).lower()))

    def fix(m: re.Match[str]) -> str:
        token = m.group(0)
        low = token.lower()
        if low in words:
            return token
        if token.isdigit() and int(token) < len(_NUMBER_WORDS):
            word = _NUMBER_WORDS[int(token)]
            return word if word in words else token
        if low in _NUMBER_WORDS and str(_NUMBER_WORDS.index(low)) in words:
            return str(_NUMBER_WORDS.index(low))
        return token

    return re.sub(r"(?<![\[\w.,])\w+(?![\w\]]|[.,]\d)", fix, text)


_LIST_GAP = r"(?:,?\s+(?:and|or|&)\s+|,\s*)"


def quote_lists_as_written(text: str, passages: Sequence[str]) -> str:
    """Quote a listed answer the way a passage lists it: "tracks, signalling, overhead wires"
    becomes "tracks, signalling and overhead wires" when a passage says so.

    The 1.5B model drops the "and" of a list it copies (5 of the 300 tuning answers): the
    quote then matches no passage and no reference exactly. Only the separators change; a list
    whose items a passage does not hold, in that order, is left alone.
    """
    phrase = short_answer(text)
    items = [i.strip() for i in phrase.split(",")]
    if len(items) < 2 or not all(items) or any(phrase in p for p in passages):
        return text
    pattern = _LIST_GAP.join(re.escape(i) for i in items)
    for passage in passages:
        m = re.search(pattern, passage)
        if m:
            return text.replace(phrase, m.group(0), 1)
    return text
