"""Process-wide settings that make CPU training and decoding faster, applied by the ``seq2seq``
command (and by the benchmarks); library users may call :func:`tune_malloc` themselves.

glibc's ``malloc`` serves every block above a (dynamic) threshold with a fresh ``mmap`` and hands
the pages back on ``free``, and trims the top of its heap whenever more than a threshold is free.
A training step or a decoding step allocates and frees the same multi-MB activation buffers again
and again, so each one comes back as fresh pages that the kernel must fault in and zero: on the
reference Transformer that was ~8% of a float32 training step (docs/benchmarks.md). Raising the
mmap threshold to its maximum (32 MiB on 64-bit) and the trim threshold to 1 GiB keeps those
buffers in the heap, where they are reused; the price is memory that stays mapped after a peak.
This is what jemalloc or tcmalloc (``LD_PRELOAD``), the usual advice for PyTorch on CPU, also
achieve, without a dependency.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
MMAP_THRESHOLD = 32 * 2**20  # glibc's maximum on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 2**30
OPT_OUT = "SEQ2SEQ_DEFAULT_MALLOC"


def tune_malloc() -> bool:
    """Raises glibc's mmap and trim thresholds for this process; True if they were set. Does
    nothing (False) off glibc, when ``SEQ2SEQ_DEFAULT_MALLOC=1``, or when the environment already
    sets glibc's own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``."""
    if os.environ.get(OPT_OUT, "") not in ("", "0"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    ok = (
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    )
    log.debug("malloc thresholds %s", "raised" if ok else "left as they were")
    return ok


def cpu_has(feature: str) -> bool:
    """Whether torch reports the CPU feature (``amx_tile``, ``avx512_bf16``, ...) through its private
    ``torch.cpu._is_<feature>_supported``; False where this torch build has no such check."""
    import torch

    return bool(getattr(torch.cpu, f"_is_{feature}_supported", lambda: False)())


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA device that supports it, or a CPU with
    AVX-512 BF16 or AMX. Elsewhere bf16 is emulated (oneDNN) or missing: on an AVX2-only CPU a
    Transformer training step under bf16 autocast ran 25x slower than float32, and the LSTM has
    no bf16 kernel at all."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    return cpu_has("avx512_bf16") or cpu_has("amx_tile")


def resolve_precision(precision: str, device: torch.device) -> str:
    """The training precision for ``train.precision`` on ``device``: ``auto`` is bf16 where the
    device computes it natively (:func:`native_bf16`), else float32; bf16 on a CPU without it and
    fp16 off CUDA are errors that say what to use instead."""
    import torch

    if precision == "auto":
        return "bf16" if native_bf16(device) else "float32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("train.precision: 'fp16' needs a CUDA device; use 'bf16' on CPU")
    if precision == "bf16" and device.type == "cpu" and not native_bf16(device):
        raise ValueError(
            "train.precision: 'bf16' needs a CPU with native bf16 (AVX-512 BF16 or AMX); this "
            f"one has {torch.backends.cpu.get_cpu_capability()} only, where bf16 autocast is "
            "emulated (a Transformer step 25x slower than float32, no LSTM kernel): use "
            "'float32', or 'auto' (bf16 where the CPU has it)"
        )
    return precision


def autocast(precision: str, device: torch.device):
    """The context that runs a forward pass in ``precision`` (a resolved one: float32, bf16 or
    fp16) on ``device``: nothing for float32, else ``torch.autocast`` with that dtype."""
    import contextlib

    import torch

    if precision == "float32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
