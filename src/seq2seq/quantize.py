"""Post-training quantization for CPU inference, behind one function so the backend can change.

``int8``, eager: dynamic quantization of Linear and LSTM/GRU weights to int8 with activations
quantized on the fly (``torch.ao.quantization.quantize_dynamic``). ``torch.ao.quantization`` is
deprecated in favour of torchao, but on our 2-core CPU it measured ~300 GOP/s against ~98 for
torchao's eager int8 path (see ../shared/bench/anchors/README.md), so it stays until a replacement
is faster.

``int8``, for compiled decoding (``compiled=True``, used with :mod:`seq2seq.compiled`): every
Linear becomes an :class:`Int8Linear`, whose int8 product the compiled graph calls with the
activation quantization and the rescaling around it fused into generated code. Quantized modules
of ``quantize_dynamic`` are not traced by ``torch.compile`` (dynamo runs them eagerly, so nothing
around them fuses), hence the second form. Its product has three kernels, chosen by the CPU and the
layer (:func:`default_kernel`):

- ``int_mm``: ``torch._int_mm`` (oneDNN's VNNI kernels, as fast as fbgemm's inside the compiled
  graph) where the CPU has AVX-512;
- ``onednn``: oneDNN's int8 linear on weights prepacked once (``onednn.qlinear_pointwise``, which
  inductor's freezing pass substitutes for the product when the two scales are applied one after
  the other). With AMX it runs a beam-5 step's output layer (160 x 256 x 7,795) at 637 GOP/s
  against 297 for ``torch._int_mm`` on one thread, but it is slower on the narrow layers, and
  without AMX its signed-int8 activations take a path that ran at ~0.1 GOP/s (an AVX-512 VNNI
  CPU); so it serves layers of at least 1,024 outputs on CPUs with AMX
  (``benchmarks/int8_linear.py``, docs/benchmarks.md);
- ``fbgemm``: fbgemm's dynamic int8 linear called as a custom operator
  (``seq2seq::fbgemm_int8_linear``) on CPUs without AVX-512, where ``torch._int_mm`` falls back to
  a scalar loop (measured ~1.9 GOP/s on an AVX2 EPYC, against ~55 GFLOP/s for float32).
"""

from __future__ import annotations

import copy
import itertools
import warnings
import weakref

import torch
from torch import Tensor, nn

from .runtime import cpu_has

KINDS = ("int8",)


KERNELS = ("int_mm", "onednn", "fbgemm")

# layers this wide take oneDNN's prepacked int8 linear on CPUs with AMX (see the module notes)
ONEDNN_MIN_OUT = 1024

# fbgemm's packed weights (opaque objects that a graph cannot hold) by Int8Linear.key, so the
# compiled graph passes only an integer to the custom operator below
_PACKED: dict[int, object] = {}
_KEYS = itertools.count()


def default_kernel(out_features: int = 0) -> str:
    """The product kernel for a layer of ``out_features`` outputs: ``onednn`` for layers of at
    least :data:`ONEDNN_MIN_OUT` outputs on CPUs with AMX, else ``int_mm`` on CPUs with AVX-512
    (or where fbgemm is missing), ``fbgemm`` elsewhere."""
    if torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        if out_features >= ONEDNN_MIN_OUT and cpu_has("amx_tile"):
            return "onednn"
        return "int_mm"
    return "fbgemm" if "fbgemm" in torch.backends.quantized.supported_engines else "int_mm"


@torch.library.custom_op("seq2seq::fbgemm_int8_linear", mutates_args=())
def fbgemm_int8_linear(x: Tensor, key: int, out_features: int) -> Tensor:
    """x (N, in) float32 -> (N, out): fbgemm's dynamic int8 linear (activations quantized per
    tensor on the fly, 7-bit range as ``quantize_dynamic`` uses on x86) with the packed weights and
    bias registered under ``key``."""
    return torch.ops.quantized.linear_dynamic(x, _PACKED[key], True)


@fbgemm_int8_linear.register_fake
def _(x: Tensor, key: int, out_features: int) -> Tensor:
    return x.new_empty(x.size(0), out_features)


class Int8Linear(nn.Module):
    """A Linear with int8 weights (symmetric, one scale per output feature) whose input is
    quantized row by row on the fly (symmetric int8, one scale per row), multiplied in int32 by
    ``torch._int_mm`` and scaled back to float32, bias added in float32.

    Compiled (:func:`seq2seq.compiled.compile_decoding`), the quantization of the input and the
    rescaling of the output fuse into the loops around the int8 product; eager it is correct but
    slower than ``quantize_dynamic``'s modules, so it is meant for compiled decoding.

    ``kernel="onednn"`` computes the same (the two scales applied one after the other), in the form
    that compiled decoding runs as oneDNN's int8 linear on prepacked weights. ``kernel="fbgemm"``
    (the default on CPUs without AVX-512, see :func:`default_kernel`) keeps the same int8 weights
    packed for fbgemm and quantizes the input per tensor inside fbgemm's kernel.
    """

    def __init__(self, linear: nn.Linear, kernel: str | None = None) -> None:
        super().__init__()
        kernel = kernel or default_kernel(linear.out_features)
        if kernel not in KERNELS:
            raise ValueError(
                f"unknown int8 kernel {kernel!r}; expected one of {', '.join(KERNELS)}"
            )
        w = linear.weight.detach().float()  # (out, in)
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        q = (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_t", q.t().contiguous())  # (in, out), as _int_mm takes it
        self.register_buffer("weight_scale", scale)
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self.register_buffer("bias", bias)
        self.kernel = kernel
        if kernel == "fbgemm":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # deprecation notice of qint8
                qweight = torch._make_per_channel_quantized_tensor(
                    q, scale.double(), torch.zeros_like(scale, dtype=torch.long), 0
                )
                packed = torch.ops.quantized.linear_prepack(qweight, self.bias)
            self.key = next(_KEYS)
            _PACKED[self.key] = packed
            weakref.finalize(self, _PACKED.pop, self.key, None)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        rows = x.reshape(-1, self.in_features).float()
        if self.kernel == "fbgemm":
            y = fbgemm_int8_linear(rows, self.key, self.out_features)
            return y.reshape(*shape[:-1], self.out_features)
        row_scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0  # (N, 1)
        q = (rows / row_scale).round().clamp(-127, 127).to(torch.int8)
        y = torch._int_mm(q, self.weight_t).to(torch.float32)
        if self.kernel == "onednn":  # the pattern that freezing rewrites to oneDNN's int8 linear
            y = y * row_scale * self.weight_scale
        else:  # both scales in one factor: inductor keeps aten._int_mm
            y = y * (row_scale * self.weight_scale)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, int8, "
            f"kernel={self.kernel}"
        )


def _int8_linears(model: nn.Module, kernel: str | None = None) -> nn.Module:
    """A copy of ``model`` with every nn.Linear replaced by an :class:`Int8Linear`."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, Int8Linear(child, kernel))
    return model


def quantize(
    model: nn.Module, kind: str, compiled: bool = False, kernel: str | None = None
) -> nn.Module:
    """A quantized copy of ``model`` for CPU inference (the original is left unchanged);
    ``compiled``: the form that :func:`seq2seq.compiled.compile_decoding` lowers to int8 kernels,
    with the product's ``kernel`` (see :class:`Int8Linear`; None: :func:`default_kernel`)."""
    match kind:
        case "int8" if compiled:
            return _int8_linears(model, kernel)
        case "int8":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.simplefilter("ignore", FutureWarning)
                warnings.simplefilter("ignore", UserWarning)  # deprecation notices of qint8
                return torch.ao.quantization.quantize_dynamic(
                    model, {nn.Linear, nn.LSTM, nn.GRU}, dtype=torch.qint8, inplace=False
                )
    raise ValueError(f"unknown quantization {kind!r}; expected one of {', '.join(KINDS)}")
