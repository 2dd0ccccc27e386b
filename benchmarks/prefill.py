"""Prompt-pass (prefill) time of a local model with glibc's default allocator settings and with
`rag.hardware.keep_freed_memory()`, measured in the same run.

    .venv/bin/python benchmarks/prefill.py                  # default model, 972-token prompt
    .venv/bin/python benchmarks/prefill.py --model fast --tokens 600

The allocator setting is process-wide and cannot be undone cleanly, so each variant runs in its
own child process; the two children take turns (one prompt pass each) so that a change in the
machine's speed during the run hits both alike.
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


def child(model: str, tokens: int, keep: bool) -> None:
    """Load the model, then time one prompt pass per line read from stdin."""
    import torch

    from rag.generate.local import LocalGenerator
    from rag.hardware import keep_freed_memory

    if keep:
        keep_freed_memory()
    else:
        # LocalGenerator calls it when it loads; make that call a no-op for the baseline
        import rag.hardware

        rag.hardware.keep_freed_memory = lambda *a, **k: False
    gen = LocalGenerator(model, int8_decode=False)
    gen.warm_up()
    ids = torch.randint(100, 20000, (1, tokens))
    with torch.inference_mode():
        gen.model(ids, logits_to_keep=1)  # one-off costs (kernel selection)
        print("ready", flush=True)
        for _ in sys.stdin:
            t = time.perf_counter()
            gen.model(ids, logits_to_keep=1)
            print(f"{time.perf_counter() - t:.4f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--tokens", type=int, default=972, help="prompt length (chat, k=5: 972)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--child", choices=["default", "keep"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.model, args.tokens, args.child == "keep")
        return
    procs = {}
    for variant in ("default", "keep"):
        procs[variant] = subprocess.Popen(
            [sys.executable, __file__, "--child", variant, "--model", args.model,
             "--tokens", str(args.tokens)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        while procs[variant].stdout.readline().strip() != "ready":
            if procs[variant].poll() is not None:
                raise SystemExit(f"the {variant} child failed to start")
    times: dict[str, list[float]] = {v: [] for v in procs}
    for i in range(args.rounds):
        order = ("default", "keep") if i % 2 == 0 else ("keep", "default")
        for variant in order:
            p = procs[variant]
            p.stdin.write("go\n")
            p.stdin.flush()
            times[variant].append(float(p.stdout.readline()))
    for p in procs.values():
        p.stdin.close()
        p.wait()
    print(f"prefill of {args.tokens} tokens, model {args.model}, {args.rounds} rounds each:")
    for variant, label in (("default", "glibc defaults"), ("keep", "keep_freed_memory")):
        t = times[variant]
        print(f"  {label:18s} median {statistics.median(t):.2f} s  "
              f"(min {min(t):.2f}, max {max(t):.2f})")
    ratio = statistics.median(times["default"]) / statistics.median(times["keep"])
    print(f"  speed-up {ratio:.2f}x")


if __name__ == "__main__":
    main()
