"""LoRA fine-tuning of the local generator on retrieval-augmented SQuAD examples.

    rag finetune --dataset squad.json --docs DIR --out adapters/fast-squad --model fast
    rag eval --dataset squad.json --docs DIR --adapter adapters/fast-squad --split eval

Each example is what the model sees at question time: the question's passages from the same
retriever and index settings, in the same "short" prompt (rag.prompt.build_prompt), and the
target reply "<reference answer> [n]" with n the first passage that holds the answer.
Questions whose answer no retrieved passage holds are skipped: the model would learn to cite
a passage that does not support its answer. v2.0 unanswerable questions teach the refusal.

Only questions of the "train" article split are read (rag.eval.data: half of the articles by
title hash); `rag eval --split eval` and benchmarks/tune.py use the other half, so no article
the adapter was trained on is ever scored.

Training (DESIGN.md section 1): LoRA (r=16 unless told) on all attention and MLP projections,
of every decoder layer or of the top `--top-layers` only, bf16 weights where the CPU has native
bf16, one example per forward pass (no padding waste) and gradients accumulated over
`grad_accum` examples. It stops at the time limit; the adapter is saved with peft
(adapter_model.safetensors, adapter_config.json) plus training.json saying what it was
trained on. `rag eval --adapter` and the `adapter` setting merge it into the model's weights
as it loads (rag.generate.adapter).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.eval.data import SquadQuestion, load_squad, select, split_titles
from rag.eval.metrics import contains_answer
from rag.generate.adapter import TRAINING_INFO
from rag.prompt import REFUSAL, build_prompt
from rag.settings import Settings

log = logging.getLogger(__name__)

# the projections of Qwen2 and Llama-style (SmolLM2) blocks: attention and MLP
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# as rag.chain: room for the chat template's markers when the model's window is the limit
_TEMPLATE_SLACK = 64
_SAVE_RESERVE_S = 15.0  # time kept back from --max-minutes for writing the adapter


@dataclass
class Example:
    question: SquadQuestion
    target: str
    input_ids: list[int]
    labels: list[int]  # -100 on the prompt: only the reply is learned


class ChatEncoder:
    """Token ids of prompt + reply, with the reply marked for the loss."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def _ids(self, messages: list[dict[str, str]], generation_prompt: bool) -> list[int]:
        out = self.tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt,
                                                 tokenize=True, return_dict=True)
        return list(out["input_ids"])

    def encode(self, messages: list[dict[str, str]], reply: str) -> tuple[list[int], list[int]]:
        # the prompt ids are the ones LocalGenerator.encode_chat gives at question time
        prompt = self._ids(messages, True)
        full = self._ids([*messages, {"role": "assistant", "content": reply}], False)
        if full[:len(prompt)] != prompt:
            raise ValueError("the model's chat template renders the prompt differently when a "
                             "reply follows; cannot align the training labels")
        return full, [-100] * len(prompt) + full[len(prompt):]


def _target(q: SquadQuestion, passages: list[Any]) -> str | None:
    """The reply to learn, or None when no passage supports an answer."""
    if not q.answerable:
        return REFUSAL
    for n, p in enumerate(passages, start=1):
        for ref in q.answers:
            if contains_answer(p.chunk.text, [ref]):
                return f"{ref} [{n}]"
    return None


def examples(rag: Any, questions: list[SquadQuestion], encoder: ChatEncoder,
             context_window: int, stats: dict[str, int]) -> Iterator[Example]:
    """Retrieval-augmented examples, built as they are needed (a time-limited run uses
    only the first few hundred, so retrieving for all questions up front would be waste)."""
    settings = rag.settings
    budget = min(settings.context_tokens,
                 context_window - settings.max_new_tokens - _TEMPLATE_SLACK)

    def count(text: str) -> int:
        return len(encoder.tokenizer.encode(text, add_special_tokens=False))

    for q in questions:
        passages = rag.retrieve(q.question)
        prompt = build_prompt(q.question, passages, count, budget, "short")
        target = _target(q, prompt.passages)
        if target is None:
            stats["skipped_no_answer_retrieved"] += 1
            continue
        ids, labels = encoder.encode(prompt.messages, target)
        yield Example(q, target, ids, labels)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def finetune(dataset: str | Path, docs: str | Path, out: str | Path, settings: Settings, *,
             max_minutes: float = 45.0, max_examples: int | None = None, seed: int = 0,
             grad_accum: int = 4, lr: float = 2e-4, rank: int = 16, alpha: int = 32,
             warmup_steps: int = 5, top_layers: int | None = None,
             checkpointing: bool = False, index_dir: str | Path | None = None,
             progress: bool = True) -> dict[str, Any]:
    """Train a LoRA adapter for `settings.model`; returns what training.json records.

    `top_layers` puts LoRA on the last N decoder layers only: the layers below run without
    autograd (nothing of theirs is stored or back-propagated), which halves the cost of a step
    when N is half the model. `checkpointing` trades a second forward pass for memory; without
    it the 1.5B model at 1,000 tokens needs a few GB.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rag.eval.runner import open_eval_rag
    from rag.hardware import configure_torch_threads, pick_device, pick_dtype
    from rag.models import resolve_generator

    started = time.monotonic()
    deadline = started + max_minutes * 60 - _SAVE_RESERVE_S
    if settings.backend != "local":
        raise ValueError(f"fine-tuning needs the local backend, not {settings.backend!r}")
    out = Path(out)
    _check_out(out)
    squad = load_squad(dataset)
    split = split_titles(squad.titles)
    questions = select(squad, "train")
    random.Random(seed).shuffle(questions)
    rag = open_eval_rag(settings, docs, index_dir)

    model_path = resolve_generator(settings.model, settings.cache_dir)
    configure_torch_threads()
    device = pick_device(settings.device)
    dtype = pick_dtype(device)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype,
                                                 local_files_only=True).to(device)
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [m for m in TARGET_MODULES if m in present]
    if not targets:
        raise ValueError(f"{model_path} has none of the projections LoRA targets "
                         f"({', '.join(TARGET_MODULES)})")
    model.config.use_cache = False  # the KV cache is useless in training and costs memory
    n_layers = int(model.config.num_hidden_layers)
    if top_layers is not None and not 1 <= top_layers <= n_layers:
        raise ValueError(f"top_layers must be between 1 and {n_layers}, not {top_layers}")
    layers = list(range(n_layers - top_layers, n_layers)) if top_layers else None
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.05, target_modules=targets,
                      layers_to_transform=layers, task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    window = int(getattr(model.config, "max_position_embeddings", 4096) or 4096)

    stats = {"skipped_no_answer_retrieved": 0}
    used: list[str] = []
    losses: list[float] = []
    tokens = steps = pending = 0
    pending_loss = 0.0
    stopped = "examples"
    bar = tqdm(total=max_examples or len(questions), desc="finetune", unit="ex",
               file=sys.stderr, disable=not progress, dynamic_ncols=True)

    def step() -> None:
        nonlocal steps, pending, pending_loss
        for p in params:  # mean over the accumulated examples, however many there were
            if p.grad is not None:
                p.grad /= pending
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for group in optimizer.param_groups:  # linear warm-up, then constant
            group["lr"] = lr * min(1.0, (steps + 1) / warmup_steps)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(pending_loss / pending, 4))
        steps += 1
        pending, pending_loss = 0, 0.0

    for ex in examples(rag, questions, ChatEncoder(tokenizer), window, stats):
        if time.monotonic() > deadline:
            stopped = "time"
            break
        if max_examples is not None and len(used) >= max_examples:
            break
        ids = torch.tensor([ex.input_ids], device=device)
        labels = torch.tensor([ex.labels], device=device)
        loss = model(input_ids=ids, labels=labels).loss
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"the loss became {loss.item()} at example {len(used) + 1}; "
                               "try a lower learning rate")
        loss.backward()
        pending += 1
        pending_loss += loss.item()
        tokens += len(ex.input_ids)
        used.append(ex.question.id)
        bar.update(1)
        if pending == grad_accum:
            step()
            rate = tokens / (time.monotonic() - started)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", tok_s=f"{rate:.0f}")
    if pending:
        step()
    bar.close()
    if not used:
        raise RuntimeError("no training example could be built: no retrieved passage held "
                           "the answer of any training question")
    seconds = round(time.monotonic() - started, 1)
    info = {
        "base_model": settings.model,
        "base_model_path": str(model_path),
        "dataset": str(Path(dataset).resolve()),
        "dataset_sha256": _sha256(Path(dataset)),
        "docs": str(Path(docs).resolve()),
        "split": "train",
        "train_titles": split["train"],
        "held_out_titles": split["eval"],
        "examples": len(used),
        "question_ids": used,
        **stats,
        "optimizer_steps": steps,
        "tokens": tokens,
        "seconds": seconds,
        "stopped_by": stopped,
        "loss_per_step": losses,
        "lora": {"r": rank, "alpha": alpha, "dropout": 0.05, "target_modules": targets,
                 "layers": layers or "all", "checkpointing": checkpointing,
                 "lr": lr, "grad_accum": grad_accum, "warmup_steps": warmup_steps,
                 "dtype": str(dtype).removeprefix("torch."), "seed": seed},
        "settings": {k: (str(v) if isinstance(v, Path) else v)
                     for k, v in vars(rag.settings).items()
                     if k in ("embedder", "chunk_tokens", "chunk_overlap", "retrieval", "top_k",
                              "candidates", "rrf_k", "rerank", "context_tokens",
                              "max_new_tokens", "index_dir")},
    }
    _save(model, out, info)
    rag.close()
    return info


def _check_out(out: Path) -> None:
    """Refuse to replace a folder that is not an adapter: `--out` could be mistyped."""
    if out.exists() and any(out.iterdir()) and not (out / TRAINING_INFO).exists():
        raise ValueError(f"{out} exists and is not an adapter folder; choose another --out")


def _save(model: Any, out: Path, info: dict[str, Any]) -> None:
    # written beside the target and renamed: a killed run never leaves half an adapter
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    (tmp / TRAINING_INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


# -- command line -------------------------------------------------------------------------


def add_arguments(p: Any) -> None:
    p.add_argument("--dataset", required=True, help="SQuAD v1.1 or v2.0 JSON file")
    p.add_argument("--docs", required=True, help="folder of the documents the questions are about")
    p.add_argument("--out", required=True, help="folder to write the adapter to")
    p.add_argument("--model", help="base model: default | fast | tiny | a model folder")
    p.add_argument("-k", "--k", dest="top_k", type=int,
                   help="passages per prompt; use the k you will evaluate with (default: "
                        "the top_k setting)")
    p.add_argument("--max-minutes", type=float, default=45.0,
                   help="stop training after this long, saving included (default 45)")
    p.add_argument("--max-examples", type=int, help="stop after this many examples")
    p.add_argument("--seed", type=int, default=0, help="order of the training questions")
    p.add_argument("--grad-accum", type=int, default=4, help="examples per optimizer step")
    p.add_argument("--lr", type=float, default=2e-4, help="learning rate (default 2e-4)")
    p.add_argument("--rank", type=int, default=16,
                   help="LoRA rank; the adapter's size grows with it (default 16)")
    p.add_argument("--alpha", type=int, help="LoRA alpha (default: twice the rank)")
    p.add_argument("--top-layers", type=int,
                   help="LoRA on the last N decoder layers only; the layers below run without "
                        "gradients, so a step costs less (default: all layers)")
    p.add_argument("--checkpointing", action="store_true",
                   help="gradient checkpointing: less memory, a second forward pass")
    p.add_argument("--json", action="store_true", help="print training.json's summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: Any, settings: Settings) -> int:
    if args.max_minutes <= 0:
        raise ValueError("--max-minutes must be positive")
    info = finetune(args.dataset, args.docs, args.out, settings, max_minutes=args.max_minutes,
                    max_examples=args.max_examples, seed=args.seed, grad_accum=args.grad_accum,
                    lr=args.lr, rank=args.rank, alpha=args.alpha or 2 * args.rank,
                    top_layers=args.top_layers, checkpointing=args.checkpointing,
                    index_dir=args.index_dir, progress=not args.quiet)
    brief = {k: v for k, v in info.items() if k not in ("question_ids", "loss_per_step")}
    brief["final_loss"] = info["loss_per_step"][-1]
    brief["out"] = str(Path(args.out).resolve())
    if args.json:
        print(json.dumps(brief, ensure_ascii=False))
    else:
        print(f"trained {info['base_model']} on {info['examples']} examples "
              f"({info['tokens']} tokens, {info['optimizer_steps']} steps) in "
              f"{info['seconds']:.0f} s; last loss {brief['final_loss']:.3f}; "
              f"adapter in {brief['out']}")
    return 0
