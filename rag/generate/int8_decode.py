"""Int8 weights for the decode steps of a bf16 model on CPU; prefill keeps the bf16 weights.

Producing one token reads every weight once, so decode speed is memory bandwidth: measured on
this project's CPU (AVX-512 bf16, no AMX), torch's int8 weight kernel runs a 1.5B model's
token steps 1.8-2x faster than bf16 (181 to 91, and 200 to 112 ms per token in two runs on a
machine whose speed varies), but the same kernel is 3x slower
than bf16 on a prompt's hundreds of rows. So each linear layer keeps both: bf16 for prefill,
int8 (symmetric, one scale per output row) for steps of a few rows. The int8 copy costs half
the model's size again in memory; it is computed once and cached on disk, since quantizing a
1.5B model takes about 10 s and loading the cached copy well under one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from rag.models import Progress, cache_lock, folder_key, remove_stale_temps, temp_path

log = logging.getLogger(__name__)

# Rows up to this go to the int8 kernel: one per sequence in a decode step. A prompt's prefill
# has hundreds, where bf16 matmul wins.
MAX_DECODE_ROWS = 8
# Bump when the stored format changes, so old caches are not misread.
_FORMAT = "int8-decode 1"


def supported(device: str, dtype: torch.dtype) -> bool:
    """Whether the int8 decode path runs here: CPU, bf16 weights, a torch with the kernel."""
    return device == "cpu" and dtype == torch.bfloat16 and hasattr(torch, "_weight_int8pack_mm")


class Int8DecodeLinear(nn.Module):
    """A linear layer that runs small batches of rows on int8 weights, larger ones on bf16."""

    def __init__(self, linear: nn.Linear, qweight: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        # buffers, not parameters: nothing trains them, and state_dict() stays the model's own
        self.register_buffer("qweight", qweight, persistent=False)
        self.register_buffer("scale", scale, persistent=False)

    @property
    def weight(self) -> torch.Tensor:  # code that inspects layers (tied embeddings) expects it
        return self.linear.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows > MAX_DECODE_ROWS or x.dtype != self.scale.dtype:
            return self.linear(x)
        y = torch._weight_int8pack_mm(x.reshape(rows, x.shape[-1]), self.qweight, self.scale)
        if self.linear.bias is not None:
            y = y + self.linear.bias
        return y.reshape(*x.shape[:-1], y.shape[-1])


def quantize(weight: torch.Tensor, block_rows: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8 weights and their scales (in the weight's dtype)."""
    w = weight.detach()
    # the kernel takes scales in the weight's dtype: round to the scale it will really use
    kept = (w.abs().amax(dim=1).float().clamp(min=1e-8) / 127).to(w.dtype)
    scale = kept.float()
    q = torch.empty(w.shape, dtype=torch.int8)
    # in blocks: a float32 copy of a whole embedding-sized matrix would be a gigabyte
    for i in range(0, w.shape[0], block_rows):
        block = w[i:i + block_rows].float() / scale[i:i + block_rows, None]
        q[i:i + block_rows] = block.round_().clamp_(-127, 127)
    return q, kept


def _linears(model: nn.Module) -> list[tuple[str, nn.Module, str, nn.Linear]]:
    """(full name, parent module, attribute name, layer) of every plain linear layer
    (subclasses of nn.Linear, such as peft's, are left alone)."""
    return [
        (f"{prefix}.{name}" if prefix else name, parent, name, child)
        for prefix, parent in model.named_modules()
        for name, child in parent.named_children()
        if type(child) is nn.Linear
    ]


def _cache_file(model_dir: Path, cache_dir: Path, variant: str = "") -> Path:
    key = folder_key(model_dir, _FORMAT, torch.__version__, variant)
    return cache_dir / "int8-decode" / f"{key}.safetensors"


def _read(path: Path, names: list[str]) -> dict[str, torch.Tensor] | None:
    """The cached copies, or None when the file is missing, damaged or lacks a layer."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as exc:  # a damaged cache is rebuilt, never fatal
        log.warning("rebuilding the int8 copy in %s: %s", path, exc)
        return None
    return tensors if all(f"{n}.q" in tensors and f"{n}.s" in tensors for n in names) else None


def _load_or_build(layers: list[tuple[str, nn.Module, str, nn.Linear]], model_dir: Path,
                   cache_dir: Path, progress: Progress | None,
                   variant: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import save_file

    path = _cache_file(model_dir, cache_dir, variant)
    names = [full for full, *_ in layers]
    tensors = _read(path, names)
    if tensors is not None:
        return tensors
    with cache_lock(cache_dir, path.stem, "the int8 copy of the weights", progress):
        tensors = _read(path, names)  # another process may have built it while we waited
        if tensors is not None:
            return tensors
        remove_stale_temps(path)
        message = f"making an int8 copy of {model_dir.name} for faster answers (once)"
        log.info(message)
        if progress is not None:
            progress(message)
        tensors = {}
        for full, _parent, _name, lin in layers:
            tensors[f"{full}.q"], tensors[f"{full}.s"] = quantize(lin.weight)
        with temp_path(path) as tmp:
            mode = tmp.stat().st_mode & 0o777  # the cache's usual permissions ...
            save_file(tensors, str(tmp))
            tmp.chmod(mode)  # ... which save_file, writing a new file, does not keep
            tmp.replace(path)  # atomic: readers see no file or a whole one
        return tensors


def add_int8_decode(model: nn.Module, model_dir: Path, cache_dir: Path,
                    progress: Progress | None = None, variant: str = "") -> int:
    """Give every linear layer of `model` an int8 copy for decode steps; returns how many.

    The model must be on CPU in bf16 (see `supported`). The int8 copies are loaded from, or
    written to, a cache file under `cache_dir` keyed by the model folder's weights and by
    `variant`, which names whatever changed the weights since (a merged adapter).
    """
    layers = _linears(model)
    if not layers:
        return 0
    tensors = _load_or_build(layers, Path(model_dir), Path(cache_dir), progress, variant)
    for full, parent, name, lin in layers:
        setattr(parent, name, Int8DecodeLinear(lin, tensors[f"{full}.q"], tensors[f"{full}.s"]))
    return len(layers)


def has_int8_decode(model: nn.Module) -> bool:
    return any(isinstance(m, Int8DecodeLinear) for m in model.modules())
