"""Compiled decoding: a model's ``encode``, ``init_state`` and ``decode_step`` through inductor.

Eager PyTorch runs a Transformer decoder step as some twenty separate kernels per layer, each over a
freshly allocated buffer, and multiplies by weights it re-reads in their stored layout. Compiled
with ``torch.compile`` and inductor's *freezing* (parameters become constants of the graph), the
linear layers run on weights prepacked once for the CPU's matrix kernels (oneDNN) and the pointwise
work around them (bias, residual sums, LayerNorm, ReLU) is fused into generated C++ loops. Shapes
are compiled as dynamic (the number of rows shrinks as sentences finish, the key/value cache grows
by one position per step), so a handful of graphs serve a whole file; the first batches pay for the
compilation (tens of seconds on two cores), every later one runs the compiled code.

Freezing bakes the weights in: a compiled model is for decoding only, and must be compiled again
after its weights change. The search itself (top-k, beam bookkeeping) stays in eager Python, so the
results are those of the eager model up to floating-point rounding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .shortlist import shortlist_log_probs


def _frozen(fn: Callable[..., Any], backend: Any = "inductor") -> Callable[..., Any]:
    """``fn`` compiled with dynamic shapes; every call (so every compilation it triggers) runs with
    inductor's freezing on, Python floats specialized, sizes reasoned about size-obliviously and
    RNN modules traced, without changing the process-wide settings for other compiled code.

    - A model's floats (LayerNorm's eps, dropout rates, the embedding scale) are constants;
      traced as symbolic inputs, as ``dynamic=True`` does, some fail to become tensors and dynamo
      restarts the analysis of the graph: each graph traced twice (the Multi30k reference
      Transformer's beam search compiled in 90 s instead of 68, int8 in 117 instead of 82;
      ``benchmarks/compile_time.py``).
    - Dynamo specializes a size of 0 or 1 (a graph for it alone) unless it reasons
      size-obliviously (``backed_size_oblivious``): the Transformer's step, whose key/value cache
      grows by a position per step, compiled for a cache of 1 and again for 2 or more positions
      (5 graphs for beam search, now 4; compiling 58-61 s -> 48-52 s on the Xeon).
    - Dynamo refuses ``nn.LSTM``/``GRU``/``RNN`` unless ``allow_rnn`` is set: the RNN decoder's
      step broke into graphs around an eager LSTM call (18 graphs for the Multi30k RNN's beam
      search, then 8, the step one graph; 6 since the encoder's packed part runs eagerly) and
      decoded no faster than eager (10.8-11.2 s on test_2016_flickr against eager's 10.7; now
      8.8-10.2 against 11.6)."""
    import torch._dynamo.config as dynamo_config  # here, not per call: decode_step is hot
    import torch._inductor.config as inductor_config
    import torch.fx.experimental._config as shapes_config

    compiled = torch.compile(fn, dynamic=True, backend=backend)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with (
            inductor_config.patch(freezing=True),
            dynamo_config.patch(specialize_float=True, allow_rnn=True),
            shapes_config.patch(backed_size_oblivious=True),
        ):
            return compiled(*args, **kwargs)

    return call


def compile_decoding(model: nn.Module, backend: Any = "inductor") -> nn.Module:
    """Compiles ``model.encode``, ``model.init_state`` and ``model.decode_step`` in place and
    returns the model, in eval mode. Works for any model of the decode contract (an ensemble too);
    needs a C++ compiler on CPU, as ``torch.compile`` does with its default ``backend``
    (inductor; any ``torch.compile`` backend may be given, e.g. a graph counter in tests)."""
    if not all(hasattr(model, f) for f in ("encode", "init_state", "decode_step")):
        raise ValueError(f"{type(model).__name__} has no encode/decode_step to compile")
    if getattr(model, "_seq2seq_compiled", False):
        return model
    model.eval()
    for module in model.modules():  # parts a module asks to run eagerly (e.g. packed sequences)
        for name in getattr(module, "eager_when_compiled", ()):
            setattr(module, name, torch.compiler.disable(getattr(module, name)))
    step = model.decode_step

    def decode_log_probs(prev: Any, state: Any) -> tuple[torch.Tensor, Any]:
        logits, state = step(prev, state)
        return torch.log_softmax(logits.float(), dim=-1), state

    frozen = functools.partial(_frozen, backend=backend)
    model.encode = frozen(model.encode)
    model.init_state = frozen(model.init_state)
    model.decode_step = frozen(step)
    model.decode_log_probs = frozen(decode_log_probs)  # what search calls: one fused graph
    if hasattr(model, "decode_features"):  # the step over a vocabulary shortlist: its output
        # rows are inputs of the graph, so one graph serves every batch's shortlist
        shortlisted = functools.partial(shortlist_log_probs, model.decode_features)
        model.decode_shortlist_log_probs = frozen(shortlisted)
    model._seq2seq_compiled = True
    return model
