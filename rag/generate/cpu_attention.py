"""Causal attention for prompt passes on CPU, computed a block of queries at a time.

With the prompt's opening reused from the prefix cache, the prompt pass has fewer queries than
keys, so transformers hands SDPA an explicit boolean mask, and torch's CPU kernel for a masked
bf16 call runs far below the matrix-product speed: the 1.5B model's 972-token prompt pass takes
5.30 s with it and 4.75 s with this (`benchmarks/prefill.py --compare attention`). This splits
the queries into blocks whose fp32 scores fit in the L2 cache, lets each block see only the
keys up to its last query (the causal half is never computed), and keeps scores and softmax in
fp32 as SDPA does; only the probabilities are rounded to bf16 for the product with the values.
Key/value heads shared by several query heads (GQA) are used in place, not repeated.

Anything else (decode steps, batches, padding or sliding-window masks, training, dropout) goes to
transformers' own SDPA function unchanged.
"""

from __future__ import annotations

import math
from typing import Any

NAME = "rag_cpu_blocked"
# Below this many queries (decode steps, short follow-ups) SDPA is as fast.
MIN_QUERIES = 32
# fp32 scores of one block: about the size of a core's L2 cache (measured best at 48-64 rows
# of the 1.5B model's 12 heads x 970 keys, i.e. 2-3 MB).
BLOCK_SCORE_BYTES = 2 << 20


def _sdpa() -> Any:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward


def _plain_causal(mask: Any, queries: int, keys: int) -> bool:
    """True if `mask` (None or bool (1, 1, queries, keys)) is the causal mask of one unpadded
    sequence whose last `queries` tokens are the queries.

    Checking the first and last rows is enough for the masks transformers builds: padding
    hides leading keys from the last row, a sliding window hides early keys from it, and the
    first row fixes the offset."""
    if mask is None:
        return queries == keys
    if mask.dtype.is_floating_point or tuple(mask.shape) != (1, 1, queries, keys):
        return False
    offset = keys - queries
    first, last = mask[0, 0, 0], mask[0, 0, -1]
    sees_own_past = bool(first[: offset + 1].all()) and not bool(first[offset + 1 :].any())
    return sees_own_past and bool(last.all())


def blocked_causal_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers attention function: (batch, heads, queries, dim) in, (batch, queries, heads,
    dim) out, like `sdpa_attention_forward`, which takes every case this one does not."""
    import torch

    batch, heads, queries, dim = query.shape
    kv_heads, keys = key.shape[1], key.shape[2]
    if (
        batch != 1
        or queries < MIN_QUERIES
        or query.device.type != "cpu"
        or query.dtype != torch.bfloat16
        or torch.is_grad_enabled()
        or dropout
        or kwargs.get("sliding_window") is not None
        or kwargs.get("softcap") is not None
        or kwargs.get("position_bias") is not None
        or kwargs.get("output_attentions")
        or kwargs.get("s_aux") is not None  # attention sinks
        or kwargs.get("is_causal", True) is False
        or not getattr(module, "is_causal", True)
        or heads % kv_heads
        or keys < queries
        or not _plain_causal(attention_mask, queries, keys)
    ):
        return _sdpa()(module, query, key, value, attention_mask, dropout=dropout,
                       scaling=scaling, **kwargs)

    groups = heads // kv_heads
    offset = keys - queries
    out_dim = value.shape[-1]
    scale = scaling if scaling is not None else 1.0 / math.sqrt(dim)
    # Query heads of one key/value head side by side: one matrix product per key/value head.
    q = torch.empty(heads, queries, dim, dtype=torch.float32).copy_(query[0]).mul_(scale)
    q = q.view(kv_heads, groups, queries, dim)
    k_t = key[0].float().transpose(1, 2).contiguous()  # (kv_heads, dim, keys)
    v = value[0]
    out = torch.empty(1, queries, heads, out_dim, dtype=query.dtype)
    rows = max(16, min(queries, BLOCK_SCORE_BYTES // (4 * heads * keys)))
    upper = torch.full((rows, rows), float("-inf")).triu_(1)
    for start in range(0, queries, rows):
        end = min(queries, start + rows)
        n, seen = end - start, offset + end
        block = q[:, :, start:end].reshape(kv_heads, groups * n, dim)
        scores = torch.bmm(block, k_t[:, :, :seen]).view(kv_heads, groups, n, seen)
        # Only the last n keys are the block's own tokens: mask their upper triangle.
        scores[..., seen - n :] += upper[:n, :n]
        probs = torch.softmax(scores, dim=-1).to(v.dtype).view(kv_heads, groups * n, seen)
        mixed = torch.bmm(probs, v[:, :seen]).view(kv_heads, groups, n, out_dim)
        out[0, start:end] = mixed.permute(2, 0, 1, 3).reshape(n, heads, out_dim)
    return out, None


def enable(model: Any) -> bool:
    """Switch a loaded model from SDPA to this function; False (model unchanged) when it runs
    another attention implementation or transformers lacks the interfaces."""
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError:
        return False
    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(NAME, blocked_causal_attention)
    # The same masks as SDPA, so the fallback gets exactly what it expects.
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return True


def enabled(model: Any) -> bool:
    return getattr(model.config, "_attn_implementation", None) == NAME
