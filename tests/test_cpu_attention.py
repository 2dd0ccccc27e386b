"""Blocked causal attention: the same numbers as SDPA on the masks it takes, SDPA itself on the
rest, and the tiny model's prompt pass with the cached-opening split that uses it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.nn.functional import scaled_dot_product_attention

from rag.generate import cpu_attention
from rag.generate.cpu_attention import blocked_causal_attention
from rag.generate.local import LocalGenerator
from rag.hardware import cpu_supports_bf16
from rag.models import resolve_generator
from rag.settings import Settings

needs_bf16 = pytest.mark.skipif(not cpu_supports_bf16(), reason="the blocked path is bf16 only")


class _Layer(torch.nn.Module):
    is_causal = True


def _qkv(queries: int, keys: int, heads: int = 6, kv_heads: int = 2, dim: int = 32):
    torch.manual_seed(0)
    q = torch.randn(1, heads, queries, dim) * 2
    k = torch.randn(1, kv_heads, keys, dim) * 2
    v = torch.randn(1, kv_heads, keys, dim)
    return q.bfloat16(), k.bfloat16(), v.bfloat16()


def _causal(queries: int, keys: int) -> torch.Tensor:
    rows = torch.arange(keys - queries, keys).view(-1, 1)
    return (torch.arange(keys).view(1, -1) <= rows)[None, None]


def _reference(q, k, v, mask) -> torch.Tensor:
    """float32 SDPA, heads repeated, as (batch, queries, heads, dim)."""
    groups = q.shape[1] // k.shape[1]
    out = scaled_dot_product_attention(
        q.float(), k.float().repeat_interleave(groups, 1), v.float().repeat_interleave(groups, 1),
        attn_mask=mask,
    )
    return out.transpose(1, 2)


@needs_bf16
@pytest.mark.parametrize("queries,keys", [(100, 100), (100, 137), (40, 300)])
def test_matches_float32_attention_over_several_blocks(
    queries: int, keys: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small blocks: 100 queries become several blocks, the last one shorter.
    monkeypatch.setattr(cpu_attention, "BLOCK_SCORE_BYTES", 6 * keys * 4 * 24)
    q, k, v = _qkv(queries, keys)
    mask = _causal(queries, keys)
    with torch.inference_mode():
        out, _ = blocked_causal_attention(_Layer(), q, k, v, None if queries == keys else mask)
        sdpa = scaled_dot_product_attention(
            q, k.repeat_interleave(3, 1), v.repeat_interleave(3, 1), attn_mask=mask
        ).transpose(1, 2)
    ref = _reference(q, k, v, mask)
    assert out.shape == (1, queries, 6, 32) and out.dtype == torch.bfloat16
    err = (out.float() - ref).abs()
    sdpa_err = (sdpa.float() - ref).abs()
    # bf16 output rounding is the error of both: within a few times SDPA's own.
    assert err.mean() < 3 * sdpa_err.mean() and err.max() < 4 * sdpa_err.max()


@pytest.mark.parametrize(
    "case", ["decode", "batch", "padding", "sliding", "grad", "float32", "not_causal"])
def test_everything_else_goes_to_sdpa_unchanged(case: str) -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    queries, keys = (1, 80) if case == "decode" else (64, 80)
    q, k, v = _qkv(queries, keys)
    mask = _causal(queries, keys)
    kwargs = {}
    if case == "batch":
        q, k, v, mask = (torch.cat([t, t]) for t in (q, k, v, mask))
    elif case == "padding":
        mask = mask.clone()
        mask[..., :5] = False
    elif case == "sliding":
        kwargs["sliding_window"] = 32
    elif case == "not_causal":
        mask, kwargs["is_causal"] = None, False
        k, v = k[:, :, :queries], v[:, :, :queries]
    elif case == "float32":
        q, k, v = q.float(), k.float(), v.float()
    layer = _Layer()
    layer.num_key_value_groups = 3
    with torch.set_grad_enabled(case == "grad"):
        got, _ = blocked_causal_attention(layer, q, k, v, mask, **kwargs)
        want, _ = sdpa_attention_forward(layer, q, k, v, mask, **kwargs)
    assert torch.equal(got, want)


@pytest.fixture(scope="module")
def tiny_dir() -> Path:
    return resolve_generator("tiny", Settings().cache_dir)


@needs_bf16
def test_tiny_model_prompt_pass_with_a_cached_opening(tiny_dir: Path) -> None:
    """With the split the prefix cache makes (opening first, then the rest against its cache)
    the model runs the blocked function, and its logits are as close to a float32 run as those
    of plain SDPA."""
    from transformers import DynamicCache

    blocked = LocalGenerator("tiny", int8_decode=False)
    plain = LocalGenerator("tiny", int8_decode=False, blocked_attention=False)
    assert cpu_attention.enabled(blocked.model) and not cpu_attention.enabled(plain.model)
    notes = Path(__file__).parent.parent / "sample_docs" / "kestrel_sands_field_notes.txt"
    text = notes.read_text()
    ids = blocked.tokenizer(text, return_tensors="pt").input_ids[:, :300]
    assert ids.shape[1] == 300
    calls = []

    def logits(model) -> torch.Tensor:
        with torch.inference_mode():
            cache = DynamicCache(config=model.config)
            model(ids[:, :40], past_key_values=cache, use_cache=True)
            return model(ids[:, 40:], past_key_values=cache, logits_to_keep=0).logits.float()

    original = cpu_attention._sdpa
    cpu_attention._sdpa = lambda: calls.append(1) or original()
    try:
        a = logits(blocked.model)
    finally:
        cpu_attention._sdpa = original
    assert not calls  # both passes (40 queries, then 260 against 300 keys) took the blocked path
    b = logits(plain.model)
    # Both are bf16 runs: score each against the same weights run in float32.
    from transformers import AutoModelForCausalLM

    exact = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32).eval()
    ref = logits(exact)

    def closeness(x: torch.Tensor) -> tuple[float, float]:
        agree = (x.argmax(-1) == ref.argmax(-1)).float().mean().item()
        return agree, torch.nn.functional.cosine_similarity(x, ref, dim=-1).min().item()

    (agree_blocked, cos_blocked), (agree_sdpa, cos_sdpa) = closeness(a), closeness(b)
    assert agree_blocked >= agree_sdpa - 0.03 and cos_blocked >= cos_sdpa - 0.005
