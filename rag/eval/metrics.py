"""SQuAD answer metrics and the small statistics the evaluation report needs.

`normalize_answer`, `exact_match` and `f1` follow the official SQuAD v2.0 evaluation script
(which equals v1.1 on non-empty strings): lowercase, drop ASCII punctuation (Python's
`string.punctuation`), drop the words a/an/the, collapse whitespace. Accents and non-ASCII
punctuation (curly quotes, dashes) are kept, as the official script keeps them, so figures
compare with published ones. Empty against empty counts as a match (v2.0: that is how a
declined answer to an unanswerable question scores).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1(prediction: str, reference: str) -> float:
    pred = normalize_answer(prediction).split()
    gold = normalize_answer(reference).split()
    if not pred or not gold:
        return float(pred == gold)
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def best(metric, prediction: str, references: Sequence[str]) -> float:
    """The metric against the closest reference (SQuAD: max over the annotators' answers).

    No references means the question has no answer, and only an empty prediction matches.
    """
    return max(metric(prediction, r) for r in (references or [""]))


def contains_answer(text: str, references: Iterable[str]) -> bool:
    """Does a normalised reference occur in the normalised text, on word boundaries?

    Word boundaries keep "1998" from matching inside "19980"; references that normalise to
    nothing (an answer of just "the") cannot be found and do not count.
    """
    hay = f" {normalize_answer(text)} "
    return any(needle and f" {needle} " in hay for needle in map(normalize_answer, references))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
