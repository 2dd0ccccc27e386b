"""What this machine can run fast: the device, the dtype and the thread count.

torch is imported inside the functions so that importing this module (for example from the CLI's
argument parsing) stays cheap.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# CPU flags that give native bf16 matmuls. Without them bf16 is emulated and slower than fp32.
_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@functools.cache
def cpu_supports_bf16() -> bool:
    """True when the CPU has AMX-BF16 or AVX512-BF16 (read from /proc/cpuinfo; False elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(_BF16_FLAGS & set(line.partition(":")[2].split()))
    return False


@functools.cache
def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pick_device(setting: str = "auto") -> str:
    """Map the ``device`` setting to a torch device string.

    "auto" picks CUDA when present; asking for CUDA on a machine without it is an error rather
    than a silent fallback, so a misconfigured GPU server is noticed.
    """
    setting = (setting or "auto").strip().lower()
    if setting == "auto":
        return "cuda" if cuda_available() else "cpu"
    if setting.startswith("cuda") and not cuda_available():
        raise ValueError(
            f"device is set to {setting!r} but torch sees no CUDA device; use 'auto' or 'cpu'"
        )
    return setting


def pick_dtype(device: str) -> torch.dtype:
    """bf16 where it is native (CUDA, or a CPU with bf16 instructions), float32 elsewhere."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32


def available_cpus() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@functools.cache
def configure_torch_threads() -> int:
    """Cap torch's intra-op threads at the CPUs we may use; returns the count.

    torch defaults to the machine's physical cores, which oversubscribes a container limited
    to fewer CPUs and makes every matmul slower. Done once: the setting is process-wide.
    """
    import torch

    threads = max(1, min(torch.get_num_threads(), available_cpus()))
    torch.set_num_threads(threads)
    return threads


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


@functools.cache
def keep_freed_memory(keep_bytes: int = 1 << 30, mmap_bytes: int = 32 << 20) -> bool:
    """Ask glibc to keep freed memory for reuse instead of handing it back to the OS at once.

    A language model's prompt pass allocates and frees buffers of tens of MB in every layer. With
    glibc's defaults that memory goes back to the OS and is faulted in, zeroed, again on the next
    layer: measured on the 1.5B model, a 972-token prompt (70 tokens of it cached) took 5.12 s
    with the defaults and 4.32 s with this (`benchmarks/prefill.py --compare allocator`). Up to
    `keep_bytes` of freed memory stays with the process. Done once, process-wide; False where
    the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        # the process's own symbols include its C library's: no library search (which runs
        # ldconfig) is needed
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    kept = mallopt(_M_TRIM_THRESHOLD, keep_bytes)
    return bool(kept) and bool(mallopt(_M_MMAP_THRESHOLD, mmap_bytes))
