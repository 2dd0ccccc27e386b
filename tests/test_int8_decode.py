"""Int8 decode weights: the layer, the on-disk cache, and the tiny model's answers with them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from rag.generate import int8_decode
from rag.generate.int8_decode import (
    Int8DecodeLinear,
    add_int8_decode,
    quantize,
)
from rag.generate.local import LocalGenerator
from rag.hardware import cpu_supports_bf16
from rag.models import resolve_generator
from rag.settings import Settings

needs_bf16 = pytest.mark.skipif(
    not (cpu_supports_bf16() and int8_decode.supported("cpu", torch.bfloat16)),
    reason="the int8 decode path runs only on CPUs with native bf16",
)

DAYS = [{"role": "user", "content": "List the days of the week."}]


def _linear(n_out: int = 96, n_in: int = 64) -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(n_in, n_out, bias=True).to(torch.bfloat16)


def test_quantize_keeps_each_weight_within_a_step() -> None:
    w = _linear().weight
    q, scale = quantize(w, block_rows=7)  # blocks that do not divide the rows evenly
    assert q.dtype == torch.int8 and scale.shape == (w.shape[0],)
    assert int(q.abs().max()) == 127  # every row's largest weight uses the full range
    back = q.float() * scale.float()[:, None]
    step = scale.float()[:, None]
    # rounding: half a step; the row's largest weight may be clamped by as much again, since
    # its scale is rounded to bf16
    err = (back - w.float()).abs() / step
    assert err.max() <= 1.0 and (err > 0.5 + 1e-3).sum() <= w.shape[0]
    assert err.mean() < 0.26


@needs_bf16
def test_layer_uses_int8_for_a_few_rows_and_bf16_for_many() -> None:
    lin = _linear()
    layer = Int8DecodeLinear(lin, *quantize(lin.weight))
    with torch.inference_mode():
        one = torch.randn(1, 1, 64, dtype=torch.bfloat16)
        exact, approx = lin(one), layer(one)
        assert approx.shape == exact.shape
        assert not torch.equal(approx, exact)  # the int8 kernel ran, not the bf16 one
        rel = (approx.float() - exact.float()).norm() / exact.float().norm()
        assert rel < 0.02
        many = torch.randn(1, 40, 64, dtype=torch.bfloat16)  # a prompt: the bf16 weights
        assert torch.equal(layer(many), lin(many))


@pytest.fixture(scope="module")
def tiny_dir() -> Path:
    return resolve_generator("tiny", Settings().cache_dir)


def _fresh_model(tiny_dir: Path) -> nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.bfloat16).eval()


@needs_bf16
def test_int8_copy_is_cached_and_a_damaged_cache_rebuilt(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _fresh_model(tiny_dir)
    n = add_int8_decode(model, tiny_dir, tmp_path)
    assert n == sum(isinstance(m, Int8DecodeLinear) for m in model.modules()) > 0
    files = list((tmp_path / "int8-decode").glob("*.safetensors"))
    assert len(files) == 1
    umask = os.umask(0o022)
    os.umask(umask)
    # the usual permissions for a new file, as the rest of the cache has (a shared cache)
    assert files[0].stat().st_mode & 0o777 == 0o666 & ~umask

    def no_quantizing(*_a, **_k):
        raise AssertionError("quantized again although the cache holds the copy")

    with monkeypatch.context() as m:
        m.setattr(int8_decode, "quantize", no_quantizing)
        again = _fresh_model(tiny_dir)
        assert add_int8_decode(again, tiny_dir, tmp_path) == n

    files[0].write_bytes(files[0].read_bytes()[:1000])  # a disk that filled up, say
    damaged = _fresh_model(tiny_dir)
    assert add_int8_decode(damaged, tiny_dir, tmp_path) == n
    assert files[0].stat().st_size > 1000
    assert not list((tmp_path / "int8-decode").glob(".*tmp-*"))


@needs_bf16
def test_generator_decodes_on_int8_with_the_same_greedy_answer() -> None:
    # Same attention kernel in both, so that only the decode weights differ: this tiny model's
    # greedy text is fragile enough that any change of rounding in the prompt pass can flip it.
    with_int8 = LocalGenerator("tiny", blocked_attention=False)
    plain = LocalGenerator("tiny", int8_decode=False, blocked_attention=False)
    with_int8.warm_up()
    plain.warm_up()
    assert with_int8.precision == "bfloat16, int8 decode"
    assert plain.precision == "bfloat16"
    answer = with_int8.generate(DAYS, max_new_tokens=30)
    assert "Monday" in answer and "Friday" in answer
    # int8 rounding moves logits a little; on this prompt the greedy choice never flips
    assert answer == plain.generate(DAYS, max_new_tokens=30)
