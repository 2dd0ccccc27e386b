"""`rag eval` end to end on a small SQuAD v2.0 file written here, with the real embedder and
the tiny generator; split, sampling and the cache-index key without models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shared_data

from rag.cli import main
from rag.eval.data import load_squad, select, split_titles
from rag.eval.runner import RECALL_KS, eval_index_dir, open_eval_rag
from rag.index.store import IndexStore
from rag.settings import Settings

DOCS = {
    "kessock.txt": (
        "Kessock Lighthouse\n\n"
        "The Kessock lighthouse stands on the north shore of the Beauly Firth. It was built in "
        "1998 to replace an older wooden beacon. The tower is 26 metres tall and is painted red "
        "and white. Its first keeper was Morag Finlay, who lived in the cottage beside the tower."
    ),
    "bakery.txt": (
        "Otter Bakery\n\n"
        "The Otter bakery on Bridge Street sells rye bread and oat cakes. It opened in 1921. "
        "The bakery's ovens are built from granite quarried at Tarradale, and the flour comes "
        "from the mill at Kilmorack."
    ),
    "ferry.txt": (
        "Ness Ferry\n\n"
        "A small ferry crosses the River Ness every half hour in summer. The crossing takes "
        "seven minutes. In winter the ferry runs only on Saturdays."
    ),
}

# (title, question, references; [] = unanswerable, rank of the first chunk holding a reference)
QUESTIONS = [
    ("Kessock", "When was the Kessock lighthouse built?", ["1998", "in 1998"], 1),
    # worded after the lighthouse, answered only by the bakery text: found at rank 2, not 1
    ("Kessock", "What stone was quarried for the Kessock lighthouse tower?", ["granite"], 2),
    # the text says "26 metres": a reference in other words is never found in any chunk
    ("Kessock", "How tall is the Kessock lighthouse?", ["twenty-six metres"], None),
    ("Bakery", "What does the Otter bakery sell?", ["rye bread", "rye bread and oat cakes"], 1),
    ("Bakery", "When did the Otter bakery open?", ["1921"], 1),
    ("Bakery", "Who owns the Otter bakery?", [], None),
    ("Ferry", "How long does the ferry crossing take?", ["seven minutes"], 1),
    ("Ferry", "On which days does the ferry run in winter?", ["Saturdays", "only on Saturdays"], 1),
]
N_ANSWERABLE = sum(1 for q in QUESTIONS if q[2])


def write_tiny_squad(root: Path) -> tuple[Path, Path]:
    """A SQuAD v2.0 JSON file and its documents folder under `root`."""
    docs = root / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (docs / name).write_text(text + "\n", encoding="utf-8")
    articles: dict[str, list[dict]] = {}
    for i, (title, question, refs, _) in enumerate(QUESTIONS):
        qa = {"id": f"q{i}", "question": question, "is_impossible": not refs,
              "answers": [{"text": r, "answer_start": 0} for r in refs]}
        articles.setdefault(title, []).append(qa)
    data = {"version": "v2.0", "data": [
        {"title": t, "paragraphs": [{"context": "", "qas": qas}]} for t, qas in articles.items()]}
    path = root / "squad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path, docs


@pytest.fixture(scope="module")
def tiny_squad(tmp_path_factory) -> tuple[Path, Path]:
    return write_tiny_squad(tmp_path_factory.mktemp("squad"))


# -- no models -------------------------------------------------------------------------------


def test_load_squad_reads_v2_unanswerable_questions(tiny_squad):
    squad = load_squad(tiny_squad[0])
    assert squad.version == "v2.0" and len(squad.questions) == len(QUESTIONS)
    assert squad.titles == ["Kessock", "Bakery", "Ferry"]
    unanswerable = [q for q in squad.questions if not q.answerable]
    assert [q.question for q in unanswerable] == ["Who owns the Otter bakery?"]


def test_load_squad_names_what_is_wrong(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_squad(bad)
    bad.write_text('{"articles": []}')
    with pytest.raises(ValueError, match="'data' list"):
        load_squad(bad)
    with pytest.raises(FileNotFoundError):
        load_squad(tmp_path / "missing.json")


def test_split_is_by_article_deterministic_and_disjoint(tiny_squad):
    squad = load_squad(tiny_squad[0])
    split = split_titles(squad.titles)
    assert split == split_titles(list(reversed(squad.titles)))  # file order does not matter
    assert sorted(split["eval"] + split["train"]) == sorted(squad.titles)
    assert len(split["eval"]) == 2 and len(split["train"]) == 1
    train, held_out = select(squad, "train"), select(squad, "eval")
    assert {q.title for q in train} == set(split["train"])
    assert not {q.id for q in train} & {q.id for q in held_out}


def test_sample_is_seeded_and_a_smaller_one_is_a_prefix(tiny_squad):
    squad = load_squad(tiny_squad[0])
    five = select(squad, limit=5, seed=0)
    assert [q.id for q in select(squad, limit=3, seed=0)] == [q.id for q in five[:3]]
    assert [q.id for q in select(squad, limit=5, seed=0)] == [q.id for q in five]
    assert [q.id for q in select(squad, limit=5, seed=1)] != [q.id for q in five]
    assert len(select(squad, limit=100)) == len(QUESTIONS)
    with pytest.raises(ValueError, match="split"):
        select(squad, "dev")


def test_cache_index_key_is_the_chunking_not_the_question_time_options(tmp_path):
    s = Settings(cache_dir=tmp_path)
    base = eval_index_dir(s, tmp_path / "docs")
    assert base.parent == tmp_path / "eval-indexes" and base.name.startswith("docs-")
    assert eval_index_dir(s.replace(top_k=8, retrieval="bm25", rerank="mpnet", rrf_k=10),
                          tmp_path / "docs") == base
    for change in ({"chunk_tokens": 128}, {"chunk_overlap": 16}, {"embedder": "mpnet"}):
        assert eval_index_dir(s.replace(**change), tmp_path / "docs") != base
    assert eval_index_dir(s, tmp_path / "other" / "docs") != base


# -- real models -----------------------------------------------------------------------------


def _expected_recall(k: int) -> float:
    hits = sum(1 for *_, refs, rank in QUESTIONS if refs and rank is not None and rank <= k)
    return round(100 * hits / N_ANSWERABLE, 2)


def test_eval_end_to_end_with_the_tiny_model(tiny_squad, tmp_path, capsys):
    dataset, docs = tiny_squad
    out = tmp_path / "run"
    code = main(["eval", "--dataset", str(dataset), "--docs", str(docs), "--model", "tiny",
                 "--index", str(tmp_path / "index"), "--out", str(out), "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("n", "em", "f1", "recall_at_k", "latency_s", "ttft_s", "retrieval_latency_s",
                "citation_accuracy", "refusal_accuracy", "false_refusals", "settings"):
        assert key in summary, key
    assert summary["n"] == len(QUESTIONS)
    assert summary["n_answerable"] == N_ANSWERABLE and summary["n_unanswerable"] == 1
    # retrieval is deterministic: exact figures (5 of 7 at rank 1, one more at rank 2)
    assert summary["recall_at_k"] == {str(k): _expected_recall(k) for k in RECALL_KS}
    assert summary["recall_at_k"]["1"] == 71.43 and summary["recall_at_k"]["5"] == 85.71
    assert summary["retrieval_reused"] is True
    assert 0 <= summary["em"] <= summary["f1"] <= 100
    assert 0 <= summary["citation_accuracy"] <= 100
    assert summary["refusal_accuracy"] in (0.0, 100.0)
    lat = summary["latency_s"]
    assert 0 < lat["p50"] <= lat["p95"]
    assert summary["ttft_s"]["p50"] <= lat["p50"]
    assert summary["settings"]["model"] == "tiny" and summary["settings"]["answer_style"] == "short"

    lines = (out / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    records = {r["question"]: r for r in map(json.loads, lines)}
    assert len(records) == len(QUESTIONS)
    for _, question, refs, rank in QUESTIONS:
        r = records[question]
        assert r["references"] == refs and r["hit_rank"] == rank
        assert len(r["retrieved"]) == len(DOCS)  # one chunk per document
        assert isinstance(r["answer"], str) and isinstance(r["short_answer"], str)
        assert 0 <= r["f1"] <= 1 and r["em"] in (0.0, 1.0)
        assert r["timings"]["total_s"] >= r["timings"]["retrieval_s"] > 0
    first = records["What stone was quarried for the Kessock lighthouse tower?"]["retrieved"]
    assert Path(first[0]["source"]).name == "kessock.txt" and not first[0]["has_answer"]
    assert Path(first[1]["source"]).name == "bakery.txt" and first[1]["has_answer"]
    assert json.loads((out / "summary.json").read_text())["n"] == len(QUESTIONS)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| EM (%) |" in report and "recall_at_k.png" in report
    for png in ("recall_at_k.png", "latency.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_retrieval_only_run_ingests_into_the_cache_index_once(tiny_squad, tmp_path, capsys,
                                                              monkeypatch):
    dataset, docs = tiny_squad
    monkeypatch.setenv("RAG_CACHE_DIR", str(tmp_path / "cache"))
    args = ["eval", "--dataset", str(dataset), "--docs", str(docs), "--retrieval-only",
            "--split", "eval", "--json", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    first = json.loads(capsys.readouterr().out)
    index = Path(first["settings"]["index_dir"])
    assert index.parent == tmp_path / "cache" / "eval-indexes"
    assert "em" not in first and first["recall_at_k"]["10"] is not None
    held_out = split_titles([q[0] for q in QUESTIONS])["eval"]
    assert first["n"] == sum(1 for q in QUESTIONS if q[0] in held_out)
    store = IndexStore(index)
    gen_before = store.generation
    store.close()
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["recall_at_k"] == first["recall_at_k"]
    store = IndexStore(index)
    assert store.generation == gen_before  # nothing re-ingested
    store.close()


def test_prefetched_passages_equal_a_fresh_retrieval(tiny_squad, tmp_path):
    """The chain gets the top k of the top-10 retrieval; that must be what it would fetch."""
    squad = load_squad(tiny_squad[0])
    rag = open_eval_rag(Settings(index_dir=tmp_path / "i"), tiny_squad[1], tmp_path / "i")
    try:
        for q in squad.questions:
            for k in (1, 2):
                top10 = [p.chunk.id for p in rag.retrieve(q.question, k=10)][:k]
                assert top10 == [p.chunk.id for p in rag.retrieve(q.question, k=k)]
    finally:
        rag.close()


@pytest.mark.slow
def test_eval_on_shared_squad_dev_sample(tmp_path, capsys):
    """Five questions of ../shared/data/squad-dev (the cached index is built on first use)."""
    data = shared_data("squad-dev")
    out = tmp_path / "run"
    code = main(["eval", "--dataset", str(data / "squad.json"), "--docs", str(data / "docs"),
                 "--limit", "5", "--model", "tiny", "--out", str(out), "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 5 and summary["n_unanswerable"] == 0
    # DESIGN.md: hybrid recall@10 is about 98 % on these articles
    assert summary["recall_at_k"]["10"] >= 60
    assert len((out / "questions.jsonl").read_text().splitlines()) == 5
    # the reuse shortcut on a real index (about 1,100 chunks): top 5 of 10 == a top-5 retrieval
    rag = open_eval_rag(Settings.load(), data / "docs", summary["settings"]["index_dir"])
    try:
        for line in (out / "questions.jsonl").read_text().splitlines():
            q = json.loads(line)["question"]
            assert ([p.chunk.id for p in rag.retrieve(q, k=10)][:5]
                    == [p.chunk.id for p in rag.retrieve(q, k=5)])
    finally:
        rag.close()


@pytest.mark.slow
def test_default_model_answers_held_out_questions_with_the_shipped_adapter(tmp_path, capsys):
    """The default settings score the short answers with the shipped LoRA adapter merged in."""
    from rag.generate.adapter import SHIPPED_DIR

    data = shared_data("squad-dev")
    code = main(["eval", "--dataset", str(data / "squad.json"), "--docs", str(data / "docs"),
                 "--split", "eval", "--limit", "12", "--max-new-tokens", "48",
                 "--out", str(tmp_path / "run"), "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["settings"]["adapter"] == str((SHIPPED_DIR / "default").resolve())
    # EM 66 / F1 74 over 300 such questions (README); 12 questions vary, so a loose floor
    assert summary["n"] == 12 and summary["f1"] >= 50
