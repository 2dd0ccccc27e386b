"""SQuAD v1.1 / v2.0 questions, the article split that keeps training away from evaluation,
and the seeded sample.

Split: the articles (titles) of a file are ordered by the SHA-256 of their title and the first
half (rounded up) is the "eval" split, the rest the "train" split. Fine-tuning only ever reads
"train" articles, the tuning sweep only "eval" articles, so an adapter is never scored on an
article it was trained on, not even on another question about the same paragraph. The split
depends only on the set of titles, not on their order in the file.

Sample: the questions are shuffled with `random.Random(seed)` and the first N kept, so a
smaller sample is a prefix of a larger one with the same seed (--limit 10 asks the first 10 of
the 300 the sweep uses).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("all", "eval", "train")


@dataclass
class SquadQuestion:
    id: str
    title: str
    question: str
    answers: list[str]  # reference answers; empty for an unanswerable (v2.0) question
    context: str = field(repr=False, default="")

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass
class SquadSet:
    version: str
    questions: list[SquadQuestion]

    @property
    def titles(self) -> list[str]:
        return list(dict.fromkeys(q.title for q in self.questions))


def load_squad(path: str | Path) -> SquadSet:
    """Read a SQuAD JSON file (v1.1 or v2.0); the error names what is wrong with it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no SQuAD file at {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ValueError(f"{path} is not SQuAD JSON: expected an object with a 'data' list")
    questions: list[SquadQuestion] = []
    for a, article in enumerate(data["data"]):
        title = str(article.get("title", f"article-{a}"))
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context", "")
            for qa in paragraph.get("qas", []):
                # v2.0 marks unanswerable questions; their plausible_answers are not references
                answers = [] if qa.get("is_impossible") else [
                    ans["text"] for ans in qa.get("answers", []) if ans.get("text")]
                if not answers and not qa.get("is_impossible"):
                    raise ValueError(f"{path}: question {qa.get('id')!r} has no answers and "
                                     "is not marked is_impossible")
                questions.append(SquadQuestion(str(qa["id"]), title, qa["question"], answers,
                                               context))
    if not questions:
        raise ValueError(f"{path} holds no questions")
    return SquadSet(str(data.get("version", "")), questions)


def split_titles(titles: Sequence[str]) -> dict[str, list[str]]:
    """{"eval": [...], "train": [...]}: the deterministic article split described above."""
    ordered = sorted(set(titles), key=lambda t: hashlib.sha256(t.encode("utf-8")).hexdigest())
    cut = (len(ordered) + 1) // 2
    return {"eval": ordered[:cut], "train": ordered[cut:]}


def select(squad: SquadSet, split: str = "all", limit: int | None = None,
           seed: int = 0) -> list[SquadQuestion]:
    """The questions of a split, or a seeded random sample of `limit` of them."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    pool = squad.questions
    if split != "all":
        keep = set(split_titles(squad.titles)[split])
        pool = [q for q in pool if q.title in keep]
        if not pool:
            raise ValueError(f"the {split!r} split is empty: the file has "
                             f"{len(squad.titles)} article(s); the split needs at least 2")
    if limit is None or limit >= len(pool):
        return list(pool)
    if limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    shuffled = list(pool)
    random.Random(seed).shuffle(shuffled)
    return shuffled[:limit]
