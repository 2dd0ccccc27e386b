"""Query-side speed: retrieval on a 100,000-chunk index, and answer latency per model preset.

    .venv/bin/python benchmarks/query.py                 # both parts
    .venv/bin/python benchmarks/query.py --skip-generation

Retrieval: real chunks (../shared/data squad-dev articles and PDFs, else sample_docs/) are
ingested by the pipeline, then replicated into a 100,000-chunk store. Replicas keep their text
and terms (so BM25 posting lists grow with the corpus, as they would) and get their vector
slightly perturbed and re-normalised; search cost depends on the number of chunks and the
term statistics, not on whether texts repeat. The timed step is what a question costs:
query embedding + dense search + BM25 + fusion + fetching the chunks from SQLite.

Generation: the same chain users get (retrieve k passages, prompt, stream), over questions of
../shared/data/squad-dev (else docs/sample_questions.md), time to first token and total; k=5
by default (the latency targets are set for 5 passages), `--k 5 3` adds the product's default.
`--bf16-decode-baseline` runs each model again with its int8 decode weights off.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.embedder import Embedder  # noqa: E402
from rag.index.dense import DenseIndex  # noqa: E402
from rag.index.sparse import SparseIndex  # noqa: E402
from rag.index.store import IndexStore  # noqa: E402
from rag.retrieve import Retriever  # noqa: E402
from rag.settings import Settings  # noqa: E402
from rag.types import Chunk  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def source_folders() -> list[Path]:
    found = [p for p in (SHARED / "squad-dev" / "docs", SHARED / "pdfs") if p.exists()]
    return found or [ROOT / "sample_docs"]


def questions(n: int, seed: int = 0) -> list[str]:
    squad = SHARED / "squad-dev" / "squad.json"
    if squad.exists():
        data = json.loads(squad.read_text())
        qs = [qa["question"] for art in data["data"] for p in art["paragraphs"]
              for qa in p["qas"]]
    else:
        text = (ROOT / "docs" / "sample_questions.md").read_text()
        # rows of the answer key's table: | n | question | answer | where |
        qs = [cells[2].strip() for line in text.splitlines()
              if (cells := line.split("|")) and len(cells) > 4 and cells[1].strip().isdigit()]
    random.Random(seed).shuffle(qs)
    return qs[:n]


def build_big_index(base_dir: Path, big_dir: Path, target: int, embedder: Embedder) -> None:
    from ingest.pipeline import IngestPipeline

    settings = Settings(index_dir=base_dir)
    IngestPipeline(settings, embedder).run([str(p) for p in source_folders()], show_bar=False)
    base = IndexStore(base_dir)
    rows = base.db.execute(
        "SELECT d.path, c.page, c.start, c.\"end\", c.heading, c.text, c.terms, c.vector "
        "FROM chunks c JOIN documents d ON d.id = c.doc_id").fetchall()
    embedder_meta = base.get_meta("embedder")
    base.close()
    if not rows:
        raise SystemExit("no chunks to replicate")
    rng = np.random.default_rng(0)
    big = IndexStore(big_dir)
    with big.writer():
        big.set_meta("embedder", embedder_meta)
        copy, made = 0, 0
        while made < target:
            take = rows[: target - made]
            by_doc: dict[str, list] = {}
            for r in take:
                by_doc.setdefault(r[0], []).append(r)
            for path, rs in by_doc.items():
                vecs = np.stack([np.frombuffer(r[7], dtype=np.float32) for r in rs])
                if copy:
                    vecs = vecs + rng.normal(0, 0.02, vecs.shape).astype(np.float32)
                    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                chunks = [Chunk(r[5], path, r[1], r[2], r[3], r[4]) for r in rs]
                big.put_document(f"copy{copy}/{path}", f"{copy}-{path}", 0, 0.0, 1, chunks,
                                 vecs, [r[6] for r in rs], [])
                made += len(rs)
            copy += 1
        dim = vecs.shape[1]
    DenseIndex.build(big, dim).save(big.dir)
    SparseIndex.build(big).save(big.dir)
    big.close()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def bench_retrieval(args: argparse.Namespace, embedder: Embedder) -> dict:
    big_dir = ROOT / "indexes" / f"bench-{args.chunks}"
    store = IndexStore(big_dir)
    have = store.count_chunks()
    store.close()
    if have != args.chunks or args.rebuild:
        import shutil

        shutil.rmtree(big_dir, ignore_errors=True)
        t = time.perf_counter()
        build_big_index(ROOT / "indexes" / "bench-base", big_dir, args.chunks, embedder)
        print(f"built {args.chunks:,}-chunk index in {time.perf_counter() - t:.0f} s "
              f"({big_dir})", flush=True)
    settings = Settings(index_dir=big_dir)
    retriever = Retriever.open(settings, embedder)
    t = time.perf_counter()
    retriever.warm_up()
    load_s = time.perf_counter() - t
    qs = questions(args.queries)
    out = {"chunks": retriever.size, "index_load_s": round(load_s, 2), "queries": len(qs)}
    for mode in ("hybrid", "dense", "bm25"):
        for q in qs[:10]:  # warm caches and lazy paths
            retriever.retrieve(q, k=5, mode=mode)
        times = []
        for q in qs:
            t = time.perf_counter()
            retriever.retrieve(q, k=5, mode=mode)
            times.append((time.perf_counter() - t) * 1000)
        out[mode] = {"p50_ms": round(pct(times, 50), 2), "p95_ms": round(pct(times, 95), 2)}
    retriever.store.close()
    return out


def bench_generation(args: argparse.Namespace, embedder: Embedder) -> dict:
    from rag.api import RAG

    settings = Settings(index_dir=ROOT / "indexes" / "bench-base")
    if IndexStore(settings.index_dir).count_chunks() == 0:
        from ingest.pipeline import IngestPipeline

        IngestPipeline(settings, embedder).run([str(p) for p in source_folders()],
                                               show_bar=False)
    qs = questions(args.answers, seed=1)
    out = {}
    runs = [(m, True) for m in args.models]
    if args.bf16_decode_baseline:
        runs += [(m, False) for m in args.models]
    for model, int8 in runs:
        rag = RAG(settings.replace(model=model, int8_decode=int8), embedder=embedder)
        t = time.perf_counter()
        rag.warm_up()
        load_s = time.perf_counter() - t
        precision = getattr(rag.generator, "precision", None)
        print(f"  {model}: {precision}, loaded in {load_s:.1f} s", flush=True)
        rag.ask(qs[0])  # first call pays one-off costs (kernel selection, caches)
        if "short" in args.styles:  # short answers may come from a tuned copy (rag/adapters)
            rag.short_generator.warm_up()
            rag.ask(qs[0], style="short")
        for style, k in [(s, k) for k in args.k for s in args.styles]:
            ttft, total, prompt_tokens, out_tokens = [], [], [], []
            for q in qs:
                a = rag.ask(q, style=style, k=k)
                ttft.append(a.timings.get("ttft_s", a.timings["total_s"]))
                total.append(a.timings["total_s"])
                prompt_tokens.append(a.timings.get("prompt_tokens", 0))
                out_tokens.append(a.timings.get("completion_tokens", 0))
            name = (f"{model}/{style}" + ("" if k == 5 else f"/k={k}")
                    + ("" if int8 else " (bf16 decode)"))
            out[name] = {
                "load_s": round(load_s, 1),
                "ttft_p50_s": round(statistics.median(ttft), 2),
                "total_p50_s": round(statistics.median(total), 2),
                "total_p95_s": round(pct(total, 95), 2),
                "prompt_tokens_p50": int(statistics.median(prompt_tokens)),
                "answer_tokens_p50": int(statistics.median(out_tokens)),
            }
            print(f"  {name}: {out[name]}", flush=True)
        del rag
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--answers", type=int, default=10, help="questions per model for latency")
    ap.add_argument("--models", nargs="+", default=["default", "fast"])
    ap.add_argument("--styles", nargs="+", default=["chat", "short"])
    ap.add_argument("--k", type=int, nargs="+", default=[5], help="passages of context")
    ap.add_argument("--bf16-decode-baseline", action="store_true",
                    help="also run each model with int8 decode off, for comparison")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--skip-retrieval", action="store_true")
    ap.add_argument("--skip-generation", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    embedder = Embedder()
    embedder.warm_up()
    result: dict = {"threads": __import__("torch").get_num_threads()}
    if not args.skip_retrieval:
        result["retrieval"] = r = bench_retrieval(args, embedder)
        print(f"retrieval over {r['chunks']:,} chunks ({r['queries']} queries, k=5): "
              + ", ".join(f"{m} p50 {r[m]['p50_ms']} ms / p95 {r[m]['p95_ms']} ms"
                          for m in ("hybrid", "dense", "bm25")), flush=True)
    if not args.skip_generation:
        print(f"answer latency, k={'/'.join(map(str, args.k))} passages of context:", flush=True)
        result["generation"] = bench_generation(args, embedder)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
