"""Prompt-pass (prefill) time of a local model under two settings, measured in the same run:
glibc's default allocator settings against `rag.hardware.keep_freed_memory()`
(`--compare allocator`), or transformers' SDPA against `rag.generate.cpu_attention`
(`--compare attention`).

    .venv/bin/python benchmarks/prefill.py --compare attention   # default model, 972 tokens
    .venv/bin/python benchmarks/prefill.py --compare allocator --model fast --tokens 600

Each pass reads the prompt the way an answer does: the opening (chat rules, `--opening`
tokens) comes from a cache made before the clock starts, the rest is timed. The allocator
setting is process-wide and cannot be undone cleanly, so each variant runs in its own child
process; the two children take turns (one prompt pass each) so that a change in the machine's
speed during the run hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = {
    "allocator": (("glibc", "glibc defaults"), ("keep", "keep_freed_memory")),
    "attention": (("sdpa", "SDPA"), ("blocked", "blocked attention")),
}


def child(model: str, tokens: int, opening: int, variant: str) -> None:
    """Load the model, then time one prompt pass per line read from stdin."""
    import torch
    from transformers import DynamicCache

    from rag.generate.local import LocalGenerator

    if variant == "glibc":
        # LocalGenerator calls it when it loads; make that call a no-op for the baseline
        import rag.hardware

        rag.hardware.keep_freed_memory = lambda *a, **k: False
    gen = LocalGenerator(model, int8_decode=False, blocked_attention=variant != "sdpa")
    gen.warm_up()
    torch.manual_seed(0)
    ids = torch.randint(100, 20000, (1, tokens))

    def prompt_pass() -> float:
        cache = DynamicCache(config=gen.model.config)
        gen.model(ids[:, :opening], past_key_values=cache, use_cache=True)
        t = time.perf_counter()
        gen.model(ids[:, opening:], past_key_values=cache, use_cache=True, logits_to_keep=1)
        return time.perf_counter() - t

    with torch.inference_mode():
        prompt_pass()  # one-off costs (kernel selection)
        print("ready", flush=True)
        for _ in sys.stdin:
            print(f"{prompt_pass():.4f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--compare", choices=sorted(VARIANTS), default="attention")
    ap.add_argument("--model", default="default")
    ap.add_argument("--tokens", type=int, default=972, help="prompt length (chat, k=5: 972)")
    ap.add_argument("--opening", type=int, default=70, help="cached opening of the prompt")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.model, args.tokens, args.opening, args.child)
        return
    (base, base_label), (new, new_label) = VARIANTS[args.compare]
    procs = {}
    for variant in (base, new):
        procs[variant] = subprocess.Popen(
            [sys.executable, __file__, "--child", variant, "--model", args.model,
             "--tokens", str(args.tokens), "--opening", str(args.opening)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        while procs[variant].stdout.readline().strip() != "ready":
            if procs[variant].poll() is not None:
                raise SystemExit(f"the {variant} child failed to start")
    times: dict[str, list[float]] = {v: [] for v in procs}
    for i in range(args.rounds):
        order = (base, new) if i % 2 == 0 else (new, base)
        for variant in order:
            p = procs[variant]
            p.stdin.write("go\n")
            p.stdin.flush()
            times[variant].append(float(p.stdout.readline()))
    for p in procs.values():
        p.stdin.close()
        p.wait()
    print(f"prefill of {args.tokens} tokens ({args.opening} cached), model {args.model}, "
          f"{args.rounds} rounds each:")
    for variant, label in VARIANTS[args.compare]:
        t = times[variant]
        print(f"  {label:18s} median {statistics.median(t):.2f} s  "
              f"(min {min(t):.2f}, max {max(t):.2f})")
    ratio = statistics.median(times[base]) / statistics.median(times[new])
    print(f"  speed-up {ratio:.2f}x")


if __name__ == "__main__":
    main()
