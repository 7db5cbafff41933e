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
around them fuses), hence the second form. An RNN decoder's LSTM/GRU/RNN becomes an
:class:`Int8RNN` (its input and hidden products ``Int8Linear`` layers), an RNN encoder's LSTM/GRU
(run eagerly, over packed sequences) ``quantize_dynamic``'s module. The product has three
kernels, chosen by the CPU and the layer (:func:`default_kernel`):

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


def _weights_as_linear(weight: Tensor, bias: Tensor | None) -> nn.Linear:
    linear = nn.Linear(weight.size(1), weight.size(0), bias=bias is not None)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias)
    return linear


class Int8RNN(nn.Module):
    """A unidirectional, batch-first ``nn.LSTM``/``GRU``/``RNN`` for decoding, whose input and
    hidden products are :class:`Int8Linear` layers (one of each per layer, with the module's own
    weights and biases) and whose gate arithmetic runs in float32, time step by time step.

    It is the recurrent part of the int8 form for compiled decoding: ``quantize_dynamic``'s int8
    LSTM (fbgemm) is opaque to ``torch.compile``, and a float LSTM left in the compiled step kept
    its largest product in float32. Compiled, each step is two int8 products with the
    quantization, the gates and the new state fused around them. Same inputs and outputs as the
    module it replaces (x (B, T, In), hx (L, B, H) or a pair for LSTM; None for zeros), with no
    dropout between layers (decoding only) and no packed sequences (the encoder keeps its own).
    """

    def __init__(self, rnn: nn.RNNBase, kernel: str | None = None) -> None:
        super().__init__()
        if rnn.bidirectional or not rnn.batch_first or getattr(rnn, "proj_size", 0):
            raise ValueError(
                f"Int8RNN takes a unidirectional, batch-first {type(rnn).__name__} without "
                f"projection; got bidirectional={rnn.bidirectional}, "
                f"batch_first={rnn.batch_first}, proj_size={getattr(rnn, 'proj_size', 0)}"
            )
        self.mode, self.num_layers, self.hidden_size = rnn.mode, rnn.num_layers, rnn.hidden_size

        def layer(kind: str, k: int) -> Int8Linear:
            weight = getattr(rnn, f"weight_{kind}_l{k}").detach()
            bias = getattr(rnn, f"bias_{kind}_l{k}").detach() if rnn.bias else None
            return Int8Linear(_weights_as_linear(weight, bias), kernel)

        self.ih = nn.ModuleList(layer("ih", k) for k in range(rnn.num_layers))
        self.hh = nn.ModuleList(layer("hh", k) for k in range(rnn.num_layers))

    def _cell(self, k: int, x: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """One step of layer k: x (B, G) its input product (biases in), h and c (B, H)."""
        gh = self.hh[k](h)
        if self.mode == "LSTM":
            i, f, g, o = (x + gh).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            return torch.sigmoid(o) * torch.tanh(c), c
        if self.mode == "GRU":  # r, z, n (torch.nn.GRU's order; b_hn stays inside r * (...))
            xr, xz, xn = x.chunk(3, dim=1)
            hr, hz, hn = gh.chunk(3, dim=1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            return n + z * (h - n), None
        act = torch.tanh if self.mode == "RNN_TANH" else torch.relu
        return act(x + gh), None

    def forward(
        self, x: Tensor, hx: Tensor | tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
        if not isinstance(x, Tensor):
            raise TypeError(f"Int8RNN takes a (B, T, In) tensor, not {type(x).__name__}")
        lstm = self.mode == "LSTM"
        if hx is None:
            zeros = x.new_zeros(self.num_layers, x.size(0), self.hidden_size)
            hx = (zeros, zeros) if lstm else zeros
        h0, c0 = hx if lstm else (hx, None)
        hs, cs = [], []
        for k in range(self.num_layers):
            inputs = self.ih[k](x)  # every time step's input product at once: (B, T, G)
            h, c = h0[k], None if c0 is None else c0[k]
            outs = []
            for t in range(x.size(1)):
                h, c = self._cell(k, inputs[:, t], h, c)
                outs.append(h)
            x = torch.stack(outs, dim=1)
            hs.append(h)
            cs.append(c)
        hidden = torch.stack(hs)
        return x, (hidden, torch.stack(cs)) if lstm else hidden

    def extra_repr(self) -> str:
        return f"{self.mode}, hidden_size={self.hidden_size}, num_layers={self.num_layers}, int8"


def _dynamic_int8(model: nn.Module, types: set[type[nn.Module]], inplace: bool) -> nn.Module:
    """``quantize_dynamic`` of the modules of these types to int8, its deprecation notices off."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)  # deprecation notices of qint8
        return torch.ao.quantization.quantize_dynamic(
            model, types, dtype=torch.qint8, inplace=inplace
        )


def _int8_linears(model: nn.Module, kernel: str | None = None) -> nn.Module:
    """A copy of ``model`` with every nn.Linear replaced by an :class:`Int8Linear`, and the
    recurrent stack of every RNN decoder (an ``nn.LSTM``/``GRU``/``RNN``, or each layer of a
    residual stack) by an :class:`Int8RNN`. An encoder's LSTM/GRU, which runs over packed
    sequences outside the compiled graphs (``RNNEncoder.packed_rnn``), becomes
    ``quantize_dynamic``'s int8 module, as in the eager int8 form."""
    from .nn.residual_rnn import ResidualRNN
    from .nn.rnn import RNNDecoder

    model = copy.deepcopy(model)
    for decoder in [m for m in model.modules() if isinstance(m, RNNDecoder)]:
        if isinstance(decoder.rnn, ResidualRNN):
            for i, layer in enumerate(decoder.rnn.layers):
                decoder.rnn.layers[i] = Int8RNN(layer, kernel)
        else:
            decoder.rnn = Int8RNN(decoder.rnn, kernel)
    _dynamic_int8(model, {nn.LSTM, nn.GRU}, inplace=True)  # what is left: the encoders' RNNs
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
            return _dynamic_int8(model, {nn.Linear, nn.LSTM, nn.GRU}, inplace=False)
    raise ValueError(f"unknown quantization {kind!r}; expected one of {', '.join(KINDS)}")
