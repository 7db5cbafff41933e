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
