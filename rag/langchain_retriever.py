"""The index as a LangChain retriever, so it plugs into LangChain chains."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.types import Passage


def to_document(p: Passage) -> Document:
    c = p.chunk
    return Document(
        page_content=c.text,
        metadata={"source": c.source, "page": c.page, "start": c.start, "end": c.end,
                  "heading": c.heading, "score": float(p.score), "rank": p.rank},
    )


class IndexRetriever(BaseRetriever):
    """Hybrid (or dense / BM25) search over a `rag.RAG` index, returning LangChain documents."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    rag: Any
    k: int = 5
    mode: str | None = None

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [to_document(p) for p in self.rag.retrieve(query, k=self.k, mode=self.mode)]
