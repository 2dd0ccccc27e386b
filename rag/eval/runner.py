"""Ask SQuAD questions through the chain users get and score the answers and the retrieval.

Per question the retriever runs once, for the top `K_MAX` (10) passages: recall@k is read off
that list, and the chain is handed its first `top_k` through `_Prefetched` instead of
retrieving again. That is exact, not an approximation: `Retriever.retrieve` fetches
max(candidates, 2k) candidates per ranker, the same list for k=10 as for k<=10 whenever
candidates >= 20 (the default is 30), and fusion, overlap removal and reranking do not depend
on k. When the settings break that (fewer candidates, top_k > 10), the chain retrieves on its
own and the summary says so (`retrieval_reused: false`): one more retrieval per question,
tens of milliseconds, small next to generation.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.eval.data import SquadQuestion
from rag.eval.metrics import best, contains_answer, exact_match, f1, percentile
from rag.prompt import cited_numbers, short_answer
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.api import RAG
    from rag.embedder import Embedder
    from rag.types import Passage

K_MAX = 10
RECALL_KS = (1, 3, 5, 8, 10)  # 1/5/10 are the contract; 3 and 8 are the sweep's top_k choices
_INDEX_KEYS = ("embedder", "chunk_tokens", "chunk_overlap")


def _ingest_code_digest() -> str:
    """A hash of the document side's source (loaders, splitter, pipeline).

    Ingestion is incremental by file content, so an index built before the splitter changed
    would keep its old chunks; keying on the code gives a changed splitter a fresh index.
    """
    import importlib.util

    spec = importlib.util.find_spec("ingest")
    if spec is None or not spec.submodule_search_locations:
        return "none"
    h = hashlib.sha256()
    for root in spec.submodule_search_locations:
        for path in sorted(Path(root).rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def eval_index_dir(settings: Settings, docs: str | Path) -> Path:
    """The cached index for a docs folder under these chunking settings.

    Only what changes the stored chunks is in the key (folder, embedder, chunk size and
    overlap, the ingest code); retrieval mode, k and reranking are decided at question time
    and share it.
    """
    docs = Path(docs).resolve()
    key = json.dumps({"docs": str(docs), "code": _ingest_code_digest(),
                      **{k: getattr(settings, k) for k in _INDEX_KEYS}}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return settings.cache_dir / "eval-indexes" / f"{docs.name}-{digest}"


def open_eval_rag(settings: Settings, docs: str | Path, index_dir: str | Path | None = None,
                  show_bar: bool = False, embedder: Embedder | None = None) -> RAG:
    """A RAG over `docs`, ingested (incrementally: cheap when nothing changed) into
    `index_dir`, or into the cache index for these chunk settings. Pass `embedder` to share
    a loaded one between several indexes."""
    from rag.api import RAG

    docs = Path(docs)
    if not docs.is_dir():
        raise FileNotFoundError(f"no documents folder at {docs}")
    index = Path(index_dir) if index_dir else eval_index_dir(settings, docs)
    rag = RAG(settings.replace(index_dir=index), embedder=embedder)
    report = rag.ingest([docs], show_bar=show_bar)
    if rag.stats()["chunks"] == 0:
        failed = "; ".join(f"{f['path']}: {f['error']}" for f in report.failed[:3])
        raise RuntimeError(f"no text could be indexed from {docs}" + (f" ({failed})"
                                                                       if failed else ""))
    for f in report.failed:
        print(f"warning: not indexed: {f['path']}: {f['error']}", file=sys.stderr)
    return rag


class _Prefetched:
    """The retriever as the chain sees it, serving the passages already retrieved for scoring
    (see the module docstring for why that equals a fresh retrieval)."""

    def __init__(self, retriever: Any, question: str, passages: list[Passage],
                 seconds: float) -> None:
        self.retriever = retriever
        self.question = question
        self.passages = passages
        self.seconds = seconds

    def retrieve(self, query: str, k: int | None = None, mode: str | None = None,
                 timings: dict[str, float] | None = None) -> list[Passage]:
        k = k or self.retriever.settings.top_k
        if query != self.question or mode not in (None, self.retriever.settings.retrieval):
            return self.retriever.retrieve(query, k=k, mode=mode, timings=timings)
        if timings is not None:
            timings["retrieval_s"] = self.seconds
        return self.passages[:k]


@dataclass
class Record:
    """One question's outcome; a line of the run's questions.jsonl."""

    id: str
    title: str
    question: str
    references: list[str]
    retrieved: list[dict[str, Any]]  # top K_MAX: source, page, start, end, has_answer
    hit_rank: int | None  # rank of the first retrieved chunk holding a reference
    answer: str | None = None  # the model's reply (None in a retrieval-only run)
    short_answer: str | None = None  # what is scored
    refused: bool | None = None
    # numbers/names of a withheld draft that no passage contains (rag.grounding), and the draft
    withheld: list[str] = field(default_factory=list)
    draft: str | None = None
    em_draft: float | None = None  # EM the draft would have scored had it not been withheld
    cited: list[int] = field(default_factory=list)  # passage numbers the answer cites
    citation_hit: bool | None = None  # a cited passage holds a reference
    in_context: bool | None = None  # some passage the model read holds a reference
    em: float | None = None
    f1: float | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def answerable(self) -> bool:
        return bool(self.references)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvalResult:
    records: list[Record]
    summary: dict[str, Any]


def _passage_info(p: Passage, references: Sequence[str]) -> dict[str, Any]:
    c = p.chunk
    return {"source": c.source, "page": c.page, "start": c.start, "end": c.end,
            "score": round(float(p.score), 6), "has_answer": contains_answer(c.text, references)}


def evaluate(rag: RAG, questions: Sequence[SquadQuestion], *, generate: bool = True,
             progress: bool = True, run_info: dict[str, Any] | None = None) -> EvalResult:
    """Retrieve for (and unless `generate` is False, answer) every question; score all.

    Answers are asked for in the "short" style (the bare phrase and its citation), because
    SQuAD references are short spans; users see the "chat" style.
    """
    from tqdm import tqdm

    from rag.chain import Chain

    settings = rag.settings
    top_k = settings.top_k
    depth = max(K_MAX, top_k)
    reuse = (top_k <= K_MAX
             and max(settings.candidates, 2 * depth) == max(settings.candidates, 2 * top_k))
    # short answers come from the short-answer generator (the tuned copy when there is one)
    generator = rag.short_generator if generate else None
    # load models and indexes first: latencies are those of a running app, not of start-up
    rag.warm_up(generator=False)
    if generator is not None:
        generator.warm_up()
    started = time.perf_counter()
    records: list[Record] = []
    bar = tqdm(questions, desc="eval", unit="q", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    for q in bar:
        timings: dict[str, float] = {}
        passages = rag.retrieve(q.question, k=depth, timings=timings)
        ranks = [i for i, p in enumerate(passages, start=1)
                 if contains_answer(p.chunk.text, q.answers)]
        record = Record(q.id, q.title, q.question, list(q.answers),
                        [_passage_info(p, q.answers) for p in passages],
                        ranks[0] if ranks else None,
                        timings={"retrieval_s": timings["retrieval_s"]})
        if generator is not None:
            retriever = (_Prefetched(rag.retriever, q.question.strip(), passages,
                                     timings["retrieval_s"]) if reuse else rag.retriever)
            answer = Chain(retriever, generator, settings).ask(q.question, style="short")
            _score(record, answer, q, reuse)
        records.append(record)
        if generator is not None:
            bar.set_postfix(_running(records), refresh=False)
    summary = summarize(records, generate)
    summary.update(retrieval_reused=reuse if generate else None,
                   seconds=round(time.perf_counter() - started, 2), **(run_info or {}))
    return EvalResult(records, summary)


def _score(record: Record, answer: Any, q: SquadQuestion, reused: bool) -> None:
    t = dict(answer.timings)
    if reused:
        # the chain's clock started after our retrieval; put it back in what a user waits
        for key in ("total_s", "ttft_s"):
            if key in t:
                t[key] = round(t[key] + t["retrieval_s"], 4)
    record.timings = t
    record.answer = answer.text
    record.short_answer = short_answer(answer.text)
    record.refused = answer.refused
    record.withheld = list(getattr(answer, "unsupported", []) or [])
    if record.withheld:
        record.draft = answer.draft
    passages = answer.passages
    record.cited = cited_numbers(answer.text, len(passages))
    if q.answerable:
        record.citation_hit = any(contains_answer(passages[n - 1].text, q.answers)
                                  for n in record.cited)
        record.in_context = any(contains_answer(p.text, q.answers) for p in passages)
    # unanswerable: the reference is "" and a refusal's short answer is "" (SQuAD v2.0)
    record.em = best(exact_match, record.short_answer, q.answers)
    record.f1 = best(f1, record.short_answer, q.answers)
    record.em_draft = (best(exact_match, short_answer(record.draft), q.answers)
                       if record.draft is not None else record.em)


def _running(records: Sequence[Record]) -> dict[str, str]:
    scored = [r for r in records if r.answerable and r.em is not None]
    if not scored:
        return {}
    return {"EM": f"{100 * sum(r.em for r in scored) / len(scored):.1f}",
            "F1": f"{100 * sum(r.f1 for r in scored) / len(scored):.1f}"}


def _pct(flags: Sequence[bool | float]) -> float | None:
    return round(100 * sum(flags) / len(flags), 2) if flags else None


def _quantiles(values: Sequence[float]) -> dict[str, float | None]:
    def q(p: float) -> float | None:
        v = percentile(values, p)
        return None if v is None else round(v, 4)

    mean = round(sum(values) / len(values), 4) if values else None
    return {"p50": q(50), "p95": q(95), "mean": mean}


def summarize(records: Sequence[Record], generated: bool = True) -> dict[str, Any]:
    """The run's figures: EM/F1 and recall in percent over answerable questions, refusals
    of unanswerable ones separately, latencies in seconds."""
    ans = [r for r in records if r.answerable]
    unans = [r for r in records if not r.answerable]
    out: dict[str, Any] = {
        "n": len(records), "n_answerable": len(ans), "n_unanswerable": len(unans),
        "recall_at_k": {str(k): _pct([r.hit_rank is not None and r.hit_rank <= k for r in ans])
                        for k in RECALL_KS},
        "retrieval_latency_s": _quantiles([r.timings["retrieval_s"] for r in records]),
    }
    if not generated:
        return out
    out.update({
        "em": _pct([r.em for r in ans]),
        "f1": _pct([r.f1 for r in ans]),
        "latency_s": _quantiles([r.timings["total_s"] for r in records]),
        "ttft_s": _quantiles([r.timings["ttft_s"] for r in records if "ttft_s" in r.timings]),
        # the answer points at a passage that really holds a reference answer
        "citation_accuracy": _pct([bool(r.citation_hit) for r in ans]),
        # reader quality apart from retrieval: a reference was in what the model read
        "answer_in_context": _pct([bool(r.in_context) for r in ans]),
        "em_when_in_context": _pct([r.em for r in ans if r.in_context]),
        "false_refusals": _pct([bool(r.refused) for r in ans]),
        # the grounding check's cost (or gain): answers withheld, and EM had none been
        "withheld": _pct([bool(r.withheld) for r in ans]),
        "em_without_withholding": _pct([r.em_draft for r in ans]),
        "refusal_accuracy": _pct([bool(r.refused) for r in unans]),
        "prompt_tokens_mean": (round(sum(r.timings.get("prompt_tokens", 0) for r in records)
                                     / len(records), 1) if records else None),
    })
    return out
