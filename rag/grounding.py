"""Check that the facts an answer states come from the passages it was given.

Small local models follow "say so when the passages do not contain the answer" only part of
the time: asked about something the documents lack, they may answer from memory (or invent)
and still cite a passage. Wording is free to differ from the passages, but the hard facts in
an answer cannot: numbers and proper names. Any such token that occurs in none of the
passages (nor in the question) marks the answer as unsupported.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "thirteen": "13", "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17",
    "eighteen": "18", "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40",
    "fifty": "50", "hundred": "100",
}
# capitalised words that are not names: sentence starts and the model's own phrasing
_COMMON = frozenset(
    """
a an the this that these those it its he she they we i you his her their our my your
in on at by for from to of and or but if so as with without about after before during
yes no not none there here what which who whom whose when where why how
according answer answers passage passages document documents source sources based
however also therefore thus although because since while note unfortunately sorry
""".split()  # noqa: SIM905 - a word list reads better as text
)
_CITATION = re.compile(r"\[\d+(?:\s*[,;]\s*\d+)*\]")
_NUMBER = re.compile(r"\d[\d,.]*\d|\d")
_CAPWORD = re.compile(r"\b[A-Z][\w'’.-]*")


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.lower().replace("’", "'")


def _numbers(text: str) -> set[str]:
    found = {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}
    words = re.findall(r"[a-z]+", _fold(text))
    found |= {_NUMBER_WORDS[w] for w in words if w in _NUMBER_WORDS}
    return {n for n in found if n}


def _names(text: str) -> dict[str, str]:
    """Capitalised words that may be names: folded form -> the word as written."""
    out: dict[str, str] = {}
    for word in _CAPWORD.findall(text):
        w = _fold(word).strip(".'-")
        if w.endswith("'s"):
            w = w[:-2]
        if len(w) > 1 and w not in _COMMON:
            out.setdefault(w, word.rstrip(".'’"))
    return out


def unsupported_facts(answer: str, passages: Iterable[str], question: str = "") -> list[str]:
    """Numbers and names in `answer` that appear in none of `passages` and not in `question`."""
    answer = _CITATION.sub(" ", answer)
    known_text = "\n".join(passages) + "\n" + question
    known_numbers = _numbers(known_text)
    known_words = set(re.findall(r"[\w'-]+", _fold(known_text)))
    known_words |= {w[:-2] for w in known_words if w.endswith("'s")}
    folded_known = _fold(known_text)
    missing: list[str] = []
    for n in sorted(_numbers(answer) - known_numbers, key=answer.find):
        # "3,600" in the answer and "3600" (or the reverse) in a passage are the same number
        if n not in folded_known.replace(",", ""):
            missing.append(n)
    for folded, word in _names(answer).items():
        parts = re.findall(r"[\w'-]+", folded)
        if parts and not all(p in known_words or p in _COMMON for p in parts):
            missing.append(word)
    return missing
