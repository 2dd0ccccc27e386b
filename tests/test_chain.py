"""Questions end to end on the sample documents with the real default model.

The default preset (Qwen2.5-Coder-1.5B, bf16) is what users get, so honesty is tested with it:
a grounded answer cites the right file and page, a question the documents cannot answer is
declined, and a follow-up is rewritten with the conversation before retrieval.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.api import RAG
from rag.prompt import REFUSAL, build_prompt, echoes_question, short_answer
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_docs"


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory, embedder) -> Path:
    index = tmp_path_factory.mktemp("sample-index")
    report = RAG(Settings(index_dir=index), embedder=embedder).ingest([SAMPLES])
    assert report.ok and len(report.added) == 5
    return index


@pytest.fixture(scope="session")
def rag(sample_index, embedder) -> RAG:
    from rag.generate.local import LocalGenerator

    settings = Settings(index_dir=sample_index)
    return RAG(settings, embedder=embedder,
               generator=LocalGenerator("default", settings.cache_dir))


def test_answer_cites_the_file_and_page_that_hold_it(rag):
    answer = rag.ask("Who founded Tidewater Kayak Co.?")
    assert "Okonkwo" in answer.text
    assert not answer.refused
    cited = [(Path(s.source).name, s.page) for s in answer.sources]
    assert ("tidewater_staff_handbook.pdf", 1) in cited
    assert answer.timings["prompt_tokens"] > 0 and answer.timings["ttft_s"] > 0
    assert answer.timings["total_s"] >= answer.timings["ttft_s"]


@pytest.mark.parametrize("question", ["Who painted the Mona Lisa?",
                                      "What is the capital of Australia?"])
def test_question_the_documents_cannot_answer_is_declined(rag, question):
    # the model knows these answers; the documents do not hold them, so they must not be given
    answer = rag.ask(question)
    assert answer.refused, answer.text
    assert answer.sources == []
    assert answer.text.startswith(REFUSAL)


def test_follow_up_is_rewritten_from_the_conversation(rag):
    history = [
        {"role": "user", "content": "Who was the last principal keeper at Gannet Rock?"},
        {"role": "assistant", "content": "Tomas Reilly was the last principal keeper [1]."},
    ]
    stream = rag.stream("When was its light shown for the first time?", history)
    assert "gannet" in stream.standalone_question.lower()
    pieces = list(stream)
    answer = stream.result()
    assert len(pieces) > 1  # streamed, not returned in one piece
    assert "1867" in answer.text
    assert any(Path(s.source).name == "gannet_rock_lighthouse.md" for s in answer.sources)


def test_short_style_gives_a_phrase(rag):
    answer = rag.ask("How many steps lead up to the lantern room of Gannet Rock?", style="short")
    assert "137" in answer.text and len(answer.text) < 40


def test_short_reply_that_restates_the_question_is_asked_again(rag):
    """A reply that only repeats the question's words gets one more try with a nudge; a real
    reply is kept as it is."""
    question = "Who founded Tidewater Kayak Co.?"
    chain = rag.chain
    passages = rag.retriever.retrieve(question)
    prompt = build_prompt(question, passages, rag.generator.count_tokens, 2048, "short")
    texts = [p.chunk.text for p in prompt.passages]
    fixed = chain._short_reply("Tidewater Kayak Co. [1]", prompt.messages, question, texts, None)
    assert "Okonkwo" in fixed and not echoes_question(short_answer(fixed), question)
    kept = chain._short_reply("Marta Okonkwo [1]", prompt.messages, question, texts, None)
    assert kept == "Marta Okonkwo [1]"


def test_langchain_retriever_returns_documents_with_pages(rag):
    from langchain_core.documents import Document

    docs = rag.as_langchain_retriever(k=3).invoke("paid annual leave for full-time staff")
    assert len(docs) == 3 and all(isinstance(d, Document) for d in docs)
    top = docs[0].metadata
    assert Path(top["source"]).name == "tidewater_staff_handbook.pdf" and top["page"] == 2


def test_rag_ask_json_contract(sample_index):
    out = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ask", "How many grey seals were counted at Kestrel "
         "Sands in June 2024?", "--index", str(sample_index), "--json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"answer", "sources", "timings"} <= set(data)
    for s in data["sources"] + data["passages"]:
        assert {"source", "page", "text", "score"} <= set(s)
    notes = [s for s in data["passages"] if s["source"].endswith("kestrel_sands_field_notes.txt")]
    assert notes and all(s["page"] is None for s in notes)  # a .txt file has no pages
    assert "62" in data["answer"]


def test_rag_ask_on_an_empty_index_says_how_to_fill_it(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "anything?", "--index",
                          str(tmp_path / "empty")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "rag ingest" in out.stderr and "Traceback" not in out.stderr
