"""Write an evaluation run to a folder: questions.jsonl, summary.json, report.md and plots."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.eval.runner import K_MAX, EvalResult, Record

FILES = ("questions.jsonl", "summary.json", "report.md", "recall_at_k.png", "latency.png")
_WORST = 10  # failed answers listed in the report: enough to see a pattern, short to read


def write_run(out_dir: str | Path, result: EvalResult) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "questions.jsonl", "w", encoding="utf-8") as fh:
        for r in result.records:
            fh.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
    (out / "summary.json").write_text(json.dumps(result.summary, indent=2, ensure_ascii=False)
                                      + "\n", encoding="utf-8")
    plot_recall(result.records, out / "recall_at_k.png")
    plot_latency(result.records, out / "latency.png")
    (out / "report.md").write_text(markdown(result), encoding="utf-8")
    return out


def recall_curve(records: Sequence[Record], k_max: int = K_MAX) -> list[float]:
    """Answer recall at k = 1..k_max in percent over the answerable questions."""
    ranks = [r.hit_rank for r in records if r.answerable]
    if not ranks:
        return []
    return [100 * sum(h is not None and h <= k for h in ranks) / len(ranks)
            for k in range(1, k_max + 1)]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server
    import matplotlib.pyplot as plt

    return plt


def plot_recall(records: Sequence[Record], path: Path) -> None:
    plt = _pyplot()
    curve = recall_curve(records)
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    if curve:
        ks = range(1, len(curve) + 1)
        ax.plot(ks, curve, marker="o")
        ax.set_xticks(list(ks))
    else:
        ax.text(0.5, 0.5, "no answerable questions", ha="center", transform=ax.transAxes)
    ax.set(xlabel="k (passages retrieved)", ylabel="answer recall@k (%)", ylim=(0, 101),
           title="Answer recall@k")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_latency(records: Sequence[Record], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    series = [(key, label) for key, label in (("total_s", "whole answer"),
                                              ("ttft_s", "first token"),
                                              ("retrieval_s", "retrieval"))
              if any(key in r.timings for r in records)]
    top = max((r.timings[k] for r in records for k, _ in series if k in r.timings), default=1)
    bins = [top * i / 30 for i in range(31)]  # shared bins: the series compare by eye
    for key, label in series:
        ax.hist([r.timings[key] for r in records if key in r.timings], bins=bins, alpha=0.6,
                label=label)
    ax.set(xlabel="seconds", ylabel="questions", title="Latency per question")
    if series:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:.2f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def markdown(result: EvalResult) -> str:
    s = result.summary
    lines = ["# Evaluation run", ""]
    info = {k: s[k] for k in ("dataset", "docs", "split", "limit", "seed", "settings")
            if k in s}
    if info:
        lines += ["```json", json.dumps(info, indent=2, ensure_ascii=False), "```", ""]
    rows = [("questions", s["n"]), ("answerable / unanswerable",
                                    f"{s['n_answerable']} / {s['n_unanswerable']}")]
    if "em" in s:
        rows += [("EM (%)", _fmt(s["em"])), ("F1 (%)", _fmt(s["f1"]))]
    rows += [(f"answer recall@{k} (%)", _fmt(v)) for k, v in s["recall_at_k"].items()]
    if "em" in s:
        rows += [("citation accuracy (%)", _fmt(s["citation_accuracy"])),
                 ("answer in the passages read (%)", _fmt(s["answer_in_context"])),
                 ("EM when the answer was read (%)", _fmt(s["em_when_in_context"])),
                 ("declined answerable (%)", _fmt(s["false_refusals"])),
                 ("withheld as unsupported (%)", _fmt(s["withheld"])),
                 ("EM had nothing been withheld (%)", _fmt(s["em_without_withholding"])),
                 ("declined unanswerable (%)", _fmt(s["refusal_accuracy"])),
                 ("answer latency p50 / p95 (s)",
                  f"{_fmt(s['latency_s']['p50'])} / {_fmt(s['latency_s']['p95'])}"),
                 ("first token p50 / p95 (s)",
                  f"{_fmt(s['ttft_s']['p50'])} / {_fmt(s['ttft_s']['p95'])}"),
                 ("prompt tokens (mean)", _fmt(s["prompt_tokens_mean"]))]
    rl = s["retrieval_latency_s"]
    rows.append(("retrieval p50 / p95 (ms)", f"{_fmt(_ms(rl['p50']))} / {_fmt(_ms(rl['p95']))}"))
    lines += ["| metric | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows), ""]
    lines += ["![recall@k](recall_at_k.png) ![latency](latency.png)", ""]
    wrong = [r for r in result.records if r.answerable and r.em is not None and r.em < 1]
    if wrong:
        wrong.sort(key=lambda r: (r.f1, r.id))
        lines += [f"## Lowest-F1 answers ({min(_WORST, len(wrong))} of {len(wrong)} not exact)",
                  "", "| question | references | short answer | F1 | answer retrieved at |",
                  "|---|---|---|---|---|"]
        for r in wrong[:_WORST]:
            refs = " / ".join(dict.fromkeys(r.references))
            lines.append(f"| {_cell(r.question)} | {_cell(refs)} | {_cell(r.short_answer or '')}"
                         f" | {r.f1:.2f} | {r.hit_rank or '–'} |")
        lines.append("")
    return "\n".join(lines)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _cell(text: str, limit: int = 120) -> str:
    # a rambling model's "short" answer can run to paragraphs; a table cell needs the start
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return text.replace("|", "\\|")
