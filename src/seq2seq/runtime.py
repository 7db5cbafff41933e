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
import functools
import logging
import os
import time
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


# bf16 autocast pays for its casts; ``auto`` takes it only where its products are this much faster
BF16_MIN_SPEEDUP = 1.2


@functools.cache
def bf16_speedup(threads: int) -> float:
    """How many times faster a training-sized product (2,048 x 256 by 256 x 1,024, the reference
    Transformer's feed-forward layer on a batch of ~2k tokens) runs in bf16 than in float32 on this
    CPU with ``threads`` threads: the best of 5 timings of each, interleaved, after a warm-up
    (~50 ms in all). Measured once per process and thread count. CPUs with AVX-512 BF16 differ:
    a Zen 4 EPYC ran bf16 products about twice as fast as float32, an Intel Xeon whose AMX the
    hypervisor hides (model 207) at 0.55x (docs/benchmarks.md)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a32, b32 = torch.randn(2048, 256, generator=gen), torch.randn(256, 1024, generator=gen)
        a16, b16 = a32.bfloat16(), b32.bfloat16()
        best = {torch.float32: float("inf"), torch.bfloat16: float("inf")}
        with torch.inference_mode():
            for rep in range(7):
                for a, b in ((a32, b32), (a16, b16)):
                    start = time.perf_counter()
                    torch.mm(a, b)
                    if rep >= 2:  # two warm-up rounds
                        best[a.dtype] = min(best[a.dtype], time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return best[torch.float32] / best[torch.bfloat16]


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast should speed training up on ``device``: a CUDA device with bf16, or
    a CPU with native bf16 (:func:`native_bf16`) whose bf16 products measured at least
    :data:`BF16_MIN_SPEEDUP` times as fast as float32 (:func:`bf16_speedup`)."""
    import torch

    if not native_bf16(device):
        return False
    return device.type != "cpu" or bf16_speedup(torch.get_num_threads()) >= BF16_MIN_SPEEDUP


def auto_precision_note(device: torch.device) -> str:
    """What the log says after a precision that ``auto`` chose: on a CPU with native bf16, the
    measured speed of its bf16 products that decided it (cached: no second measurement)."""
    import torch

    if device.type == "cpu" and native_bf16(device):
        speedup = bf16_speedup(torch.get_num_threads())
        return f" (auto: bf16 products ran at {speedup:.2f}x float32's speed on this CPU)"
    return " (auto)"


def resolve_precision(precision: str, device: torch.device, started: str | None = None) -> str:
    """The training precision for ``train.precision`` on ``device``: ``auto`` is bf16 where it
    speeds training up (:func:`fast_bf16`: native, and on a CPU measured faster), else float32;
    bf16 on a CPU without native bf16 and fp16 off CUDA are errors that say what to use instead.
    An explicit bf16 on a CPU where it measured slower than float32 is kept, with a warning.

    ``started``: the precision a resumed ``auto`` run started in, kept without measuring again
    (a measurement might come out the other way, and exact resume needs the same precision),
    unless it is bf16 and ``device`` has no native bf16 (the run moved): then float32, with a
    warning."""
    import torch

    if precision == "auto":
        if started == "float32" or (started == "bf16" and native_bf16(device)):
            return started
        if started == "bf16":
            log.warning(
                "train.precision: auto: this run started in bf16, which %s does not compute "
                "natively, so it goes on in float32 (not bitwise the run it would have been)",
                device,
            )
            return "float32"
        return "bf16" if fast_bf16(device) else "float32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("train.precision: 'fp16' needs a CUDA device; use 'bf16' on CPU")
    if precision == "bf16" and device.type == "cpu":
        if not native_bf16(device):
            raise ValueError(
                "train.precision: 'bf16' needs a CPU with native bf16 (AVX-512 BF16 or AMX); this "
                f"one has {torch.backends.cpu.get_cpu_capability()} only, where bf16 autocast is "
                "emulated (a Transformer step 25x slower than float32, no LSTM kernel): use "
                "'float32', or 'auto' (bf16 where the CPU has it and it is faster)"
            )
        speedup = bf16_speedup(torch.get_num_threads())
        if speedup < 1.0:
            log.warning(
                "train.precision: bf16 products ran at %.2fx the speed of float32 on this CPU "
                "(%d threads), so bf16 will train slower than 'float32' (or 'auto') would",
                speedup,
                torch.get_num_threads(),
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
