"""The projection to the vocabulary, computed in column slices on CPU.

One GEMM whose output is a whole vocabulary wide (thousands of columns) runs well below the
machine's matmul rate on CPU: on the Multi30k reference shapes (7,795 types, 256 inputs) 90-96
GFLOP/s for 269-538 rows on 2 threads and 42 for 160 rows on one, where 1,024-column slices of the
same product run at 130-133 and 63 (AVX2, torch 2.13; ``benchmarks/kernels.py``, tables in
docs/bench/kernels-2026-11-30-*.md). In bf16 (or under bf16 autocast) the whole product is as fast
or faster: on a Zen 4 machine with AVX-512 BF16, 2 threads, 279-302 GFLOP/s whole against 191-247
in slices for 128-269 rows, level at 538-1,024 (float32 there: slices 114-151, whole 92-110), so
only float32 and float64 products are sliced. Training's fused output layer (``train/loss.py``)
and the decoders' output layers use it. Under ``torch.compile`` it is one ``F.linear``, decided
before any test of sizes (which would guard the graph): inductor's frozen linear does better than
the slices there (compiled beam search 119 sent/s whole, 102 sliced).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

SLICE_COLUMNS = 1024
SLICE_MIN_ROWS = 128  # below, one product is as fast (32 rows, 2 threads: ~100 GFLOP/s either way)


def project(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``F.linear(x, weight, bias)``: x (..., H), weight (V, H) -> (..., V), in column slices on
    CPU when the product is in float32 or float64 (not under autocast), V is wider than one slice
    and there are at least SLICE_MIN_ROWS rows."""
    vocab = weight.size(0)
    rows = x.reshape(-1, x.size(-1))
    if (
        torch.compiler.is_compiling()  # first: a size test before it would guard the graph
        or x.device.type != "cpu"
        or torch.is_autocast_enabled("cpu")
        or torch.promote_types(x.dtype, weight.dtype) not in (torch.float32, torch.float64)
        or vocab <= SLICE_COLUMNS
        or rows.size(0) < SLICE_MIN_ROWS
    ):
        return nn.functional.linear(x, weight, bias)
    out = rows.new_empty(rows.size(0), vocab)
    for j in range(0, vocab, SLICE_COLUMNS):
        k = min(j + SLICE_COLUMNS, vocab)
        w = weight[j:k].t()
        out[:, j:k] = rows @ w if bias is None else torch.addmm(bias[j:k], rows, w)
    return out.view(*x.shape[:-1], vocab)


def output_logits(layer: nn.Module, x: Tensor) -> Tensor:
    """``layer(x)`` for an output layer: a float ``nn.Linear`` goes through :func:`project`;
    anything else (int8, quantized) is called as it is."""
    if type(layer) is nn.Linear:
        return project(x, layer.weight, layer.bias)
    return layer(x)
