"""`rag finetune`: a real (very short) LoRA run on the tiny model, and the adapter in use."""

from __future__ import annotations

import json

import pytest
from test_eval import write_tiny_squad

from rag.cli import main
from rag.eval.data import load_squad, select, split_titles
from rag.eval.runner import open_eval_rag
from rag.finetune import ChatEncoder, apply_adapter, examples, read_adapter
from rag.settings import Settings


def _target_nll(model, exs) -> float:
    """Mean loss of the reply tokens: what training lowers."""
    import torch

    with torch.inference_mode():
        losses = [model(input_ids=torch.tensor([e.input_ids]),
                        labels=torch.tensor([e.labels])).loss.float().item() for e in exs]
    return sum(losses) / len(losses)


# 15 s on a quiet 2-core machine (two training steps of the 135M model, then an eval);
# 75-100 s when other jobs load the cores
def test_finetune_saves_an_adapter_that_loads_and_moves_the_model(tmp_path, capsys):
    import torch

    from rag.generate.local import LocalGenerator

    dataset, docs = write_tiny_squad(tmp_path)
    index, out = tmp_path / "index", tmp_path / "adapter"
    code = main(["finetune", "--dataset", str(dataset), "--docs", str(docs), "--out", str(out),
                 "--model", "tiny", "--index", str(index), "-k", "2", "--max-examples", "2",
                 "--grad-accum", "1", "--lr", "1e-3", "--max-minutes", "10", "--json",
                 "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["examples"] == 2 and summary["optimizer_steps"] == 2
    assert summary["stopped_by"] == "examples"
    for name in ("adapter_model.safetensors", "adapter_config.json", "training.json"):
        assert (out / name).is_file(), name
    assert not list(tmp_path.glob(".adapter.tmp-*"))  # the temporary folder was renamed

    info = read_adapter(out)
    split = split_titles(load_squad(dataset).titles)
    assert info["train_titles"] == split["train"] and info["held_out_titles"] == split["eval"]
    squad = load_squad(dataset)
    train_ids = {q.id for q in select(squad, "train")}
    assert set(info["question_ids"]) <= train_ids  # never a held-out question
    assert info["settings"]["top_k"] == 2 and info["base_model"] == "tiny"

    # the same examples the run trained on, from the same index and prompt
    rag = open_eval_rag(Settings(index_dir=index, top_k=2), docs, index)
    generator = LocalGenerator("tiny")
    trained = [q for q in select(squad, "train") if q.id in set(info["question_ids"])]
    exs = list(examples(rag, trained, ChatEncoder(generator.tokenizer), 8192,
                        {"skipped_no_answer_retrieved": 0}))
    rag.close()
    assert len(exs) == 2 and all(e.target.endswith("]") for e in exs)

    ids = torch.tensor([exs[0].input_ids])
    with torch.inference_mode():
        before = generator.model(input_ids=ids).logits.float()
    nll_before = _target_nll(generator.model, exs)
    apply_adapter(generator, out)
    with torch.inference_mode():
        after = generator.model(input_ids=ids).logits.float()
    nll_after = _target_nll(generator.model, exs)
    assert not torch.equal(before, after)
    assert (after - before).abs().max().item() > 1e-2
    # it learned from what it was shown: the trained replies became more likely
    assert nll_after < nll_before
    # and the generator still answers through the usual interface
    text = generator.generate([{"role": "user", "content": "Say hi."}], max_new_tokens=4)
    assert isinstance(text, str)

    # `rag eval --adapter` on the held-out articles: base model taken from training.json
    code = main(["eval", "--dataset", str(dataset), "--docs", str(docs), "--index", str(index),
                 "--adapter", str(out), "--split", "eval", "-k", "2", "--out",
                 str(tmp_path / "run"), "--json", "--quiet"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["settings"]["model"] == "tiny"
    assert summary["settings"]["adapter"] == str(out.resolve())
    assert summary["n"] == len(select(squad, "eval"))


def test_adapter_for_another_base_model_is_refused(tmp_path):
    from rag.generate.local import LocalGenerator

    out = tmp_path / "adapter"
    out.mkdir()
    (out / "adapter_config.json").write_text("{}")
    (out / "training.json").write_text(json.dumps(
        {"base_model": "fast", "base_model_path": "/x/qwen2.5-coder-0.5b-instruct-bf16"}))
    with pytest.raises(ValueError, match="--model fast"):
        apply_adapter(LocalGenerator("tiny"), out)
    with pytest.raises(FileNotFoundError, match="not a LoRA adapter"):
        read_adapter(tmp_path)


def test_finetune_refuses_to_overwrite_a_folder_that_is_not_an_adapter(tmp_path, capsys):
    dataset, docs = write_tiny_squad(tmp_path)
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    code = main(["finetune", "--dataset", str(dataset), "--docs", str(docs), "--out", str(out),
                 "--model", "tiny", "--index", str(tmp_path / "index")])
    assert code == 2
    assert "not an adapter folder" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "keep me"


def test_eval_uses_the_adapters_base_model_unless_told_otherwise(tmp_path):
    """`rag eval --adapter DIR` without --model takes the base model from training.json."""
    from rag.eval.cli import eval_settings

    out = tmp_path / "adapter"
    out.mkdir()
    (out / "adapter_config.json").write_text("{}")
    (out / "training.json").write_text(json.dumps({"base_model": "fast"}))

    class Args:
        adapter, model = str(out), None
        rerank = rrf_k = chunk_tokens = chunk_overlap = None

    assert eval_settings(Settings(), Args()).model == "fast"
    Args.model = "tiny"
    assert eval_settings(Settings(model="tiny"), Args()).model == "tiny"
