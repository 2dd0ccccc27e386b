"""Tuning sweep: which chunking, retrieval and model settings answer SQuAD questions best.

    .venv/bin/python benchmarks/tune.py --stage retrieval               # all combinations
    .venv/bin/python benchmarks/tune.py --stage generation \\
        --config "chunk_tokens=256,chunk_overlap=32,retrieval=hybrid,top_k=5,model=fast" \\
        --config "chunk_tokens=192,chunk_overlap=32,retrieval=hybrid,top_k=8,model=default"
    .venv/bin/python benchmarks/tune.py --stage retrieval --limit 10 --chunk-tokens 256 \\
        --overlap 32 --rerank none                                        # a quick try

Questions: a fixed sample (seed 0, 300 questions by default) of the "eval" article split of
../shared/data/squad-dev/squad.json (rag.eval.data: the half of the articles that
`rag finetune` never trains on), over all of ../shared/data/squad-dev/docs, so distractors
from the other articles are in the index. Each chunking gets its own cached index (built on
first use: a minute or two each).

Stage 1, retrieval (cheap): every combination of chunk tokens x overlap x retrieval mode
(x rrf_k for hybrid) x reranker; answer recall@k for k = 1, 3, 5, 8, 10 from one top-10
retrieval per question. The mpnet reranker's chunk vectors are cached across questions here
(the product computes them per question), so its retrieval latency column is not the
product's; its recall is.
Stage 2, generation (about 2.5 s per question with "fast", 6 s with "default" on 2 cores): the
configurations given with --config, EM/F1, citation accuracy and latency; each run's full
report goes to the output folder.
Tables print as Markdown; everything is also written to bench_results/tune-<time>/.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from rag.api import RAG  # noqa: E402
from rag.embedder import Embedder  # noqa: E402
from rag.eval.data import load_squad, select  # noqa: E402
from rag.eval.report import write_run  # noqa: E402
from rag.eval.runner import evaluate, open_eval_rag  # noqa: E402
from rag.models import ModelError  # noqa: E402
from rag.rerank import EmbedderReranker  # noqa: E402
from rag.retrieve import Retriever  # noqa: E402
from rag.settings import Settings  # noqa: E402

SQUAD = ROOT.parent / "shared" / "data" / "squad-dev"
KS = ("1", "3", "5", "8", "10")
# what --config may set, and how to read each value
CONFIG_KEYS: dict[str, type] = {
    "chunk_tokens": int, "chunk_overlap": int, "retrieval": str, "rrf_k": int, "top_k": int,
    "k": int, "rerank": str, "model": str, "candidates": int, "adapter": str,
    "context_tokens": int,
}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _words(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


class CachedEmbedder:
    """An embedder whose document vectors are remembered by text.

    The reranker embeds each question's candidates; across 300 questions the same chunks come
    up again and again, and re-embedding them would make the sweep take hours.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.cache: dict[str, np.ndarray] = {}

    def warm_up(self) -> None:
        self.embedder.warm_up()

    def embed_query(self, text: str) -> np.ndarray:
        return self.embedder.embed_query(text)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if todo:
            for t, v in zip(todo, self.embedder.embed_documents(todo), strict=True):
                self.cache[t] = v
        return np.stack([self.cache[t] for t in texts])


def retrieval_stage(args: argparse.Namespace, base: Settings, questions: list, out: Path
                    ) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    modes = [(m, k) for m in _words(args.retrieval)
             for k in (_ints(args.rrf_k) if m == "hybrid" else [None])]
    rerankers = _words(args.rerank)
    mpnet = None
    if "mpnet" in rerankers:
        mpnet = CachedEmbedder(Embedder("mpnet", base.cache_dir, base.device, base.embed_batch,
                                          base.embed_backend))
        try:
            mpnet.warm_up()  # now, not after an hour of other runs
        except ModelError as exc:
            print(f"warning: leaving out the mpnet reranker: {exc}", file=sys.stderr)
            rerankers.remove("mpnet")
            mpnet = None
    embedder = Embedder.from_settings(base)
    chunkings = list(itertools.product(_ints(args.chunk_tokens), _ints(args.overlap)))
    total = len(chunkings) * len(modes) * len(rerankers)
    print(f"retrieval stage: {total} runs x {len(questions)} questions", file=sys.stderr)
    for chunk_tokens, overlap in chunkings:
        if overlap >= chunk_tokens:
            continue
        settings = base.replace(chunk_tokens=chunk_tokens, chunk_overlap=overlap)
        started = time.perf_counter()
        indexed = open_eval_rag(settings, args.docs, show_bar=sys.stderr.isatty(),
                                embedder=embedder)
        ingest_s = time.perf_counter() - started
        chunks = indexed.stats()["chunks"]
        if mpnet is not None:
            mpnet.cache.clear()  # other chunk texts now; keeps memory flat
        for (mode, rrf_k), rerank in itertools.product(modes, rerankers):
            s = indexed.settings.replace(retrieval=mode, rerank=rerank,
                                         rrf_k=rrf_k or base.rrf_k)
            reranker = EmbedderReranker(mpnet, rrf_k=s.rrf_k) if rerank == "mpnet" else None
            retriever = Retriever(indexed.retriever.store, embedder, s, reranker)
            rag = RAG(s, embedder=embedder, retriever=retriever)
            result = evaluate(rag, questions, generate=False, progress=not args.quiet)
            r = result.summary
            rows.append({"chunk_tokens": chunk_tokens, "chunk_overlap": overlap,
                         "retrieval": mode, "rrf_k": rrf_k, "rerank": rerank, "chunks": chunks,
                         **{f"R@{k}": r["recall_at_k"][k] for k in KS},
                         "retrieval_ms_p50": round(1000 * r["retrieval_latency_s"]["p50"], 1),
                         "ingest_s": round(ingest_s, 1)})
            print(_row_line(rows[-1]), file=sys.stderr)
        indexed.close()
    rows.sort(key=lambda row: (-row["R@5"], -row["R@10"], -row["R@1"]))
    (out / "retrieval.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def _row_line(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items())


def parse_config(text: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for part in _words(text):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in CONFIG_KEYS:
            raise SystemExit(f"--config {text!r}: expected key=value pairs with keys from "
                             f"{', '.join(CONFIG_KEYS)}")
        config["top_k" if key == "k" else key] = CONFIG_KEYS[key](value.strip())
    return config


def generation_stage(args: argparse.Namespace, base: Settings, questions: list, out: Path
                     ) -> list[dict[str, Any]]:
    from rag.generate import make_generator
    from rag.generate.adapter import read_adapter, resolve_adapter

    rows: list[dict[str, Any]] = []
    generators: dict[str, Any] = {}  # one load per model and adapter
    embedder = Embedder.from_settings(base)
    for n, text in enumerate(args.config, start=1):
        config = parse_config(text)
        adapter = config.pop("adapter", None)
        folder = resolve_adapter(adapter, config.get("model", base.model)) if adapter else None
        if adapter:
            config["short_adapter"] = adapter
        if folder and "model" not in config:
            config["model"] = read_adapter(folder).get("base_model", base.model)
        settings = base.replace(**config)
        rag = open_eval_rag(settings, args.docs, show_bar=sys.stderr.isatty(),
                            embedder=embedder)
        key = f"{settings.model}+{settings.short_adapter}"
        generator = generators.get(key) or make_generator(rag.settings, style="short")
        generators[key] = generator
        rag = rag.with_generator(generator)
        print(f"generation {n}/{len(args.config)}: {text}", file=sys.stderr)
        result = evaluate(rag, questions, progress=not args.quiet,
                          run_info={"config": text, "settings": {k: str(v) for k, v in
                                                                 vars(rag.settings).items()}})
        write_run(out / f"gen-{n}", result)
        s = result.summary
        rows.append({"config": text, "EM": s["em"], "F1": s["f1"],
                     **{f"R@{k}": s["recall_at_k"][k] for k in ("1", "5", "10")},
                     "cites answer": s["citation_accuracy"],
                     "answer read": s["answer_in_context"],
                     "p50 s": s["latency_s"]["p50"], "p95 s": s["latency_s"]["p95"],
                     "ttft p50 s": s["ttft_s"]["p50"], "prompt tok": s["prompt_tokens_mean"]})
        rag.close()
    (out / "generation.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no rows)"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join("–" if row[c] is None else str(row[c]) for c in cols)
                     + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", choices=["retrieval", "generation", "both"], default="retrieval")
    p.add_argument("--dataset", default=str(SQUAD / "squad.json"))
    p.add_argument("--docs", default=str(SQUAD / "docs"))
    p.add_argument("--limit", type=int, default=300, help="questions in the sample (300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-tokens", default="128,192,256")
    p.add_argument("--overlap", default="0,32,64")
    p.add_argument("--retrieval", default="hybrid,dense,bm25")
    p.add_argument("--rrf-k", default="30,60,100", help="fusion constants tried for hybrid")
    p.add_argument("--rerank", default="none,mpnet")
    p.add_argument("--config", action="append", default=[],
                   help="a generation-stage configuration, e.g. 'chunk_tokens=256,"
                        "chunk_overlap=32,retrieval=hybrid,top_k=5,rerank=none,model=fast' "
                        "(repeat the option for more)")
    p.add_argument("--out", help="results folder (default bench_results/tune-<time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if not Path(args.dataset).is_file() or not Path(args.docs).is_dir():
        raise SystemExit(f"needs {args.dataset} and {args.docs} (../shared/data/squad-dev)")
    if args.stage in ("generation", "both") and not args.config:
        raise SystemExit("the generation stage needs at least one --config")
    out = Path(args.out or ROOT / "bench_results" / time.strftime("tune-%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    base = Settings.load()
    questions = select(load_squad(args.dataset), "eval", args.limit, args.seed)
    (out / "questions.json").write_text(json.dumps([q.id for q in questions]) + "\n")
    header = (f"{len(questions)} questions (seed {args.seed}, eval split) of {args.dataset}; "
              f"results in {out}")
    print(header + "\n")
    if args.stage in ("retrieval", "both"):
        rows = retrieval_stage(args, base, questions, out)
        print("## Retrieval (answer recall@k, %; best R@5 first)\n")
        print(markdown_table(rows) + "\n")
    if args.stage in ("generation", "both"):
        rows = generation_stage(args, base, questions, out)
        print("## Generation (EM, F1, recall and citation accuracy in %)\n")
        print(markdown_table(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
