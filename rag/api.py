"""The Python API: `RAG.open(index_dir)`, then `.ingest(paths)`, `.ask(q)`, `.stream(q)`.

One object holds the heavy resources (embedder, indexes, generator), each loaded on first use
and kept, so an application builds it once and asks many questions.

    from rag import RAG
    rag = RAG.open("indexes/default")
    rag.ingest(["sample_docs"])
    answer = rag.ask("When was the lighthouse built?")
    print(answer.text, [(s.source, s.page) for s in answer.sources])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.chain import AnswerStream, Chain
from rag.embedder import Embedder
from rag.prompt import Message
from rag.retrieve import Retriever
from rag.settings import Settings
from rag.types import Answer, Passage

if TYPE_CHECKING:
    from ingest.pipeline import IngestReport
    from rag.generate.base import Generator


class RAG:
    def __init__(self, settings: Settings, *, embedder: Embedder | None = None,
                 retriever: Retriever | None = None, generator: Generator | None = None,
                 short_generator: Generator | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or (retriever.embedder if retriever else
                                     Embedder.from_settings(settings))
        if retriever is None:
            from rag.rerank import make_reranker

            retriever = Retriever.open(settings, self.embedder, make_reranker(settings))
        self.retriever = retriever
        self._generator = generator
        # a generator given without a short one answers both styles: it was chosen on purpose
        self._short_generator = short_generator or generator

    @classmethod
    def open(cls, index_dir: str | Path | None = None, settings: Settings | None = None,
             **overrides: Any) -> RAG:
        """Open (or start) the index at `index_dir`; other settings from file/env/overrides."""
        if index_dir is not None:
            overrides["index_dir"] = Path(index_dir)
        settings = settings.replace(**overrides) if settings else Settings.load(**overrides)
        return cls(settings)

    # -- heavy resources -------------------------------------------------------------------

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            from rag.generate import make_generator

            self._generator = make_generator(self.settings)
        return self._generator

    @property
    def short_generator(self) -> Generator:
        """What answers in the "short" style: the model with the short-answer adapter merged
        in (a second copy, loaded on first use), or the chat generator when there is none."""
        if self._short_generator is None:
            from rag.generate import make_generator, short_adapter

            self._short_generator = (make_generator(self.settings, style="short")
                                     if short_adapter(self.settings) else self.generator)
        return self._short_generator

    def warm_up(self, generator: bool = True) -> None:
        """Load the models and indexes now instead of on the first question."""
        self.retriever.warm_up()
        reranker = self.retriever.reranker
        if reranker is not None and hasattr(reranker, "warm_up"):
            reranker.warm_up()
        if generator:
            self.generator.warm_up()

    def with_generator(self, generator: Generator, short_generator: Generator | None = None
                       ) -> RAG:
        """The same index and embedder answering with another model (no reloading); without
        `short_generator`, `generator` answers in both styles."""
        return RAG(self.settings, embedder=self.embedder, retriever=self.retriever,
                   generator=generator, short_generator=short_generator)

    # -- documents ---------------------------------------------------------------------------

    def ingest(self, paths: Sequence[str | Path] | str | Path,
               progress: Callable[[str, dict[str, Any]], None] | None = None,
               show_bar: bool | None = False) -> IngestReport:
        """Add, update and remove documents (incremental); returns what happened per file."""
        from ingest.pipeline import IngestPipeline  # the document side, only when used

        if isinstance(paths, (str, Path)):
            paths = [paths]
        report = IngestPipeline(self.settings, self.embedder).run(paths, progress, show_bar)
        self.retriever.refresh()
        return report

    def stats(self) -> dict[str, Any]:
        return self.retriever.store.stats()

    # -- questions ---------------------------------------------------------------------------

    def retrieve(self, question: str, k: int | None = None, mode: str | None = None,
                 timings: dict[str, float] | None = None) -> list[Passage]:
        return self.retriever.retrieve(question, k=k, mode=mode, timings=timings)

    @property
    def chain(self) -> Chain:
        return Chain(self.retriever, self.generator, self.settings,
                     short_generator=self.short_generator)

    def stream(self, question: str, history: Sequence[Message] = (), **kwargs: Any
               ) -> AnswerStream:
        """Iterate for the answer's text as it is generated; `.answer` afterwards.

        `history` is the conversation so far as [{"role": "user"|"assistant", "content"}];
        a follow-up question is rewritten to stand alone before retrieval.
        Keyword options: k, mode ("hybrid" | "dense" | "bm25"), style ("chat" | "short"),
        max_new_tokens.
        """
        return self.chain.stream(question, history, **kwargs)

    def ask(self, question: str, history: Sequence[Message] = (), **kwargs: Any) -> Answer:
        """The whole answer at once, with the sources it cites and timings."""
        return self.chain.ask(question, history, **kwargs)

    def as_langchain_retriever(self, k: int | None = None, mode: str | None = None):
        """This index as a LangChain `BaseRetriever`, for use in LangChain chains."""
        from rag.langchain_retriever import IndexRetriever

        return IndexRetriever(rag=self, k=k or self.settings.top_k, mode=mode)

    def close(self) -> None:
        self.retriever.store.close()

    def __enter__(self) -> RAG:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
