"""Post-training quantization for CPU inference, behind one function so the backend can change.

``int8``: dynamic quantization of Linear and LSTM/GRU weights to int8 with activations quantized on
the fly (``torch.ao.quantization.quantize_dynamic``). ``torch.ao.quantization`` is deprecated in
favour of torchao, but on our 2-core CPU it measured ~300 GOP/s against ~98 for torchao's eager
int8 path (see ../shared/bench/anchors/README.md), so it stays until a replacement is faster.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

KINDS = ("int8",)


def quantize(model: nn.Module, kind: str) -> nn.Module:
    """A quantized copy of ``model`` for CPU inference (the original is left unchanged)."""
    match kind:
        case "int8":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", UserWarning)  # deprecation notices of qint8
                return torch.ao.quantization.quantize_dynamic(
                    model, {nn.Linear, nn.LSTM, nn.GRU}, dtype=torch.qint8, inplace=False
                )
    raise ValueError(f"unknown quantization {kind!r}; expected one of {', '.join(KINDS)}")
