"""`rag eval`: options and the command (imported by rag.cli only when `eval` runs)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rag.settings import Settings

# eval asks for the short form ("1998 [2]"): a phrase and its citation fit well within this,
# and a model that rambles on is cut instead of writing the default 256 tokens per question
EVAL_MAX_NEW_TOKENS = 48
_RUN_SETTINGS = ("backend", "model", "embedder", "chunk_tokens", "chunk_overlap", "retrieval",
                 "top_k", "candidates", "rrf_k", "rerank", "context_tokens", "index_dir")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="SQuAD v1.1 or v2.0 JSON file")
    p.add_argument("--docs", required=True, help="folder of the documents the questions are about")
    p.add_argument("--limit", type=int, help="ask a seeded random sample of N questions")
    p.add_argument("--seed", type=int, default=0, help="sample seed (default 0)")
    p.add_argument("--split", choices=["all", "eval", "train"], default="all",
                   help="articles to ask about: all, or the half held out from (eval) or used "
                        "by (train) `rag finetune` (default all)")
    p.add_argument("--model", help="default | fast | tiny | a model folder | API model")
    p.add_argument("--adapter", help="LoRA adapter for the short answers: a folder from `rag "
                                     "finetune` (without --model, its base model is used), "
                                     "'none' for the plain model, or 'auto' (the default: "
                                     "the adapter shipped for the model preset, if any)")
    p.add_argument("-k", "--k", dest="top_k", type=int, help="passages given to the model")
    p.add_argument("--retrieval", choices=["hybrid", "dense", "bm25"])
    p.add_argument("--rerank", choices=["none", "mpnet"])
    p.add_argument("--rrf-k", dest="rrf_k", type=int, help="reciprocal rank fusion constant")
    p.add_argument("--chunk-tokens", type=int, help="chunk size (a separate cached index)")
    p.add_argument("--chunk-overlap", type=int, help="chunk overlap (a separate cached index)")
    p.add_argument("--max-new-tokens", type=int, default=EVAL_MAX_NEW_TOKENS,
                   help=f"answer length cap (default {EVAL_MAX_NEW_TOKENS})")
    p.add_argument("--retrieval-only", action="store_true",
                   help="score retrieval (recall@k) without generating answers")
    p.add_argument("--out", help="run folder (default eval_runs/<timestamp>)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def eval_settings(settings: Settings, args: argparse.Namespace) -> Settings:
    """Settings with the eval-only options applied (the rest come through rag.cli)."""
    changes: dict[str, Any] = {k: getattr(args, k) for k in
                               ("rerank", "rrf_k", "chunk_tokens", "chunk_overlap")
                               if getattr(args, k, None) is not None}
    adapter = getattr(args, "adapter", None)
    if adapter:
        from rag.generate.adapter import read_adapter, resolve_adapter

        folder = resolve_adapter(adapter, settings.model)
        changes["short_adapter"] = str(folder.resolve()) if folder else "none"
        base = read_adapter(folder).get("base_model") if folder else None
        if base and getattr(args, "model", None) is None:
            changes["model"] = base
    return settings.replace(**changes) if changes else settings


def _adapter_used(settings: Settings) -> str | None:
    from rag.generate import short_adapter

    path = short_adapter(settings)
    return str(path.resolve()) if path else None


def default_out() -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out, n = Path("eval_runs") / stamp, 1
    while out.exists():  # two runs in the same second
        n += 1
        out = Path("eval_runs") / f"{stamp}-{n}"
    return out


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rag.eval.data import load_squad, select
    from rag.eval.report import write_run
    from rag.eval.runner import evaluate, open_eval_rag

    settings = eval_settings(settings, args).replace(max_new_tokens=args.max_new_tokens)
    squad = load_squad(args.dataset)
    questions = select(squad, args.split, args.limit, args.seed)
    show = not args.quiet
    rag = open_eval_rag(settings, args.docs, args.index_dir, show_bar=show and sys.stderr.isatty())
    run_info = {
        "dataset": str(Path(args.dataset).resolve()), "squad_version": squad.version,
        "docs": str(Path(args.docs).resolve()), "split": args.split, "limit": args.limit,
        "seed": args.seed,
        "settings": {**{k: str(v) if isinstance(v, Path) else v
                        for k, v in vars(rag.settings).items() if k in _RUN_SETTINGS},
                     "adapter": _adapter_used(rag.settings),
                     "max_new_tokens": args.max_new_tokens, "answer_style": "short"},
    }
    try:
        result = evaluate(rag, questions, generate=not args.retrieval_only, progress=show,
                          run_info=run_info)
    finally:
        rag.close()
    out = write_run(args.out or default_out(), result)
    result.summary["out"] = str(out)
    if args.json:
        print(json.dumps(result.summary, ensure_ascii=False))
    else:
        print(_human(result.summary))
    return 0


def _human(s: dict[str, Any]) -> str:
    recall = ", ".join(f"@{k} {v:.1f}" for k, v in s["recall_at_k"].items() if v is not None)
    lines = [f"{s['n']} questions ({s['n_unanswerable']} unanswerable)",
             f"answer recall {recall or '–'} %"]
    if "em" in s:
        lat = s["latency_s"]
        lines.append(f"EM {_f(s['em'])}  F1 {_f(s['f1'])}  citation accuracy "
                     f"{_f(s['citation_accuracy'])} %  answer latency p50 {_f(lat['p50'], 2)} s, "
                     f"p95 {_f(lat['p95'], 2)} s")
        if s["n_unanswerable"]:
            lines.append(f"declined {_f(s['refusal_accuracy'])} % of unanswerable questions")
    lines.append(f"report: {s['out']}/report.md")
    return "\n".join(lines)


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
