"""Plain data passed between the stages: files -> pages -> chunks -> passages -> answer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Page:
    """Text of one page (PDF) or of a whole pageless file, as a loader returns it."""

    text: str
    page: int | None = None  # 1-based page number for paged formats, None otherwise
    # (character offset in `text`, heading text): where each heading starts, in order
    headings: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Chunk:
    """A piece of a document small enough for the embedder, with where it came from."""

    text: str
    source: str  # absolute path of the file at ingest time
    page: int | None  # 1-based page, None for pageless files
    start: int  # character span of `text` in its page (or file)
    end: int
    heading: str | None = None
    id: int | None = None  # row id in the index once stored


@dataclass
class Passage:
    """A retrieved chunk with its score (higher is better) and 1-based rank."""

    chunk: Chunk
    score: float
    rank: int = 0
    scores: dict[str, float] = field(default_factory=dict)  # per retriever, for debugging


@dataclass
class Source:
    """A passage as shown to a user under an answer."""

    number: int  # the citation number used in the prompt, [number]
    source: str
    page: int | None
    text: str
    score: float
    heading: str | None = None
    start: int = 0
    end: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Answer:
    text: str
    sources: list[Source]  # the passages the answer cites (all passages if it cites none)
    passages: list[Source] = field(default_factory=list)  # everything given to the model
    question: str = ""
    standalone_question: str = ""  # the question after rewriting with the chat history
    refused: bool = False  # the documents do not hold the answer (said by the model or checked)
    timings: dict[str, float] = field(default_factory=dict)
    # numbers and names the model's draft stated that no passage contains; when any, the draft
    # is withheld (kept in `draft`) and `text` says the documents do not support an answer
    unsupported: list[str] = field(default_factory=list)
    draft: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "answer": self.text,
            "sources": [s.to_dict() for s in self.sources],
            "passages": [s.to_dict() for s in self.passages],
            "question": self.question,
            "standalone_question": self.standalone_question,
            "refused": self.refused,
            "unsupported": self.unsupported,
            "draft": self.draft,
            "timings": self.timings,
        }
