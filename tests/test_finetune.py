"""`rag finetune`: a real (very short) LoRA run on the tiny model, and the adapter in use."""

from __future__ import annotations

import json

import pytest
from test_eval import write_tiny_squad

from rag.cli import main
from rag.eval.data import load_squad, select, split_titles
from rag.eval.runner import open_eval_rag
from rag.finetune import ChatEncoder, examples
from rag.generate.adapter import read_adapter
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
                 "--quiet", "--rank", "8", "--top-layers", "6"])
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
    # LoRA on the top 6 of the tiny model's 30 layers only
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["layers_to_transform"] == list(range(24, 30))
    assert info["lora"]["layers"] == list(range(24, 30))

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
    tuned = LocalGenerator("tiny", adapter=out)  # merged into the weights as it loads
    with torch.inference_mode():
        after = tuned.model(input_ids=ids).logits.float()
    nll_after = _target_nll(tuned.model, exs)
    assert not torch.equal(before, after)
    assert (after - before).abs().max().item() > 1e-2
    # it learned from what it was shown: the trained replies became more likely
    assert nll_after < nll_before
    # merged, not wrapped: plain layers, so the int8 decode copies (where the CPU has bf16)
    # are made from the tuned weights and kept apart from the base model's
    assert not any("lora" in name for name, _ in tuned.model.named_modules())
    if generator.precision.endswith("int8 decode"):
        from rag.generate.int8_decode import _cache_file
        from rag.models import folder_key

        assert tuned.precision.endswith("int8 decode")
        tuned_copy = _cache_file(tuned.path, tuned.cache_dir, folder_key(out))
        assert tuned_copy.is_file() and tuned_copy != _cache_file(tuned.path, tuned.cache_dir)
    # and the generator still answers through the usual interface
    text = tuned.generate([{"role": "user", "content": "Say hi."}], max_new_tokens=4)
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

    # through the API: short answers come from a copy of the model with the adapter merged
    # in, chat answers from the plain model, which a short question never loads
    from rag import RAG

    api = RAG.open(index, settings=Settings(model="tiny", top_k=2, short_adapter=str(out)))
    assert api.short_generator.adapter == out and api.generator.adapter is None
    api.ask(trained[0].question, style="short")
    assert api.short_generator._model is not None and api.generator._model is None
    api.ask(trained[0].question)
    assert api.generator._model is not None
    api.close()
    # nothing is shipped for the tiny model: one generator answers both styles
    plain = RAG.open(index, settings=Settings(model="tiny"))
    assert plain.short_generator is plain.generator
    plain.close()


def test_adapter_for_another_base_model_is_refused(tmp_path):
    from rag.generate import GenerationError
    from rag.generate.local import LocalGenerator

    out = tmp_path / "adapter"
    out.mkdir()
    (out / "adapter_config.json").write_text("{}")
    (out / "training.json").write_text(json.dumps(
        {"base_model": "fast", "base_model_path": "/x/qwen2.5-coder-0.5b-instruct-bf16"}))
    with pytest.raises(GenerationError, match="--model fast"):
        LocalGenerator("tiny", adapter=out).warm_up()
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
    assert eval_settings(Settings(), Args()).short_adapter == str(out.resolve())
    Args.model = "tiny"
    assert eval_settings(Settings(model="tiny"), Args()).model == "tiny"


def test_adapter_setting_names_a_folder_the_shipped_one_or_none(tmp_path, monkeypatch):
    from pathlib import Path

    from rag.generate import adapter

    monkeypatch.setattr(adapter, "SHIPPED_DIR", tmp_path)
    for plain in ("", "none", " None "):
        assert adapter.resolve_adapter(plain, "default") is None
    assert adapter.resolve_adapter("auto", "default") is None  # nothing shipped for it
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "adapter_config.json").write_text("{}")
    assert adapter.resolve_adapter("auto", "default") == tmp_path / "default"
    assert adapter.resolve_adapter("auto", "fast") is None
    # a model folder is no preset: the shipped adapters were trained on the presets only
    assert adapter.resolve_adapter("auto", str(tmp_path)) is None
    assert adapter.resolve_adapter("~/qa-adapter", "default") == Path.home() / "qa-adapter"


def test_the_shipped_short_answer_adapter_is_found_for_the_default_model():
    from rag.generate.adapter import SHIPPED_DIR, resolve_adapter

    folder = resolve_adapter("auto", "default")
    assert folder == SHIPPED_DIR / "default"
    info = read_adapter(folder)
    assert info["base_model"] == "default" and info["split"] == "train"
    assert not set(info["train_titles"]) & set(info["held_out_titles"])
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["layers_to_transform"] == info["lora"]["layers"]
    assert (folder / "adapter_model.safetensors").stat().st_size > 1_000_000
