"""Compiled decoding (torch.compile with frozen weights) gives the eager model's search results."""

import re

import pytest
import torch
from torch._dynamo.utils import compilation_time_metrics, counters
from torch._inductor.utils import run_and_get_code

from seq2seq.compiled import compile_decoding
from seq2seq.data.batching import make_batch
from seq2seq.data.vocab import BOS_ID
from seq2seq.processors import constraints
from seq2seq.quantize import Int8Linear, Int8RNN, default_kernel, quantize
from seq2seq.search import beam_search

from .conftest import compiles, tiny_model, tiny_transformer

SRCS = [[4, 5, 6, 7, 8, 9, 10], [11, 12], [5, 12, 4], [9], [6, 6, 7, 8, 11]]


def same_beam_search(eager, compiled, srcs, abs=1e-4):
    """Beam search (4 beams, 2 best) with both models over ``srcs``: the same hypotheses, scores
    within ``abs``. Returns the compiled model's."""
    b = make_batch(srcs, None, list(range(len(srcs))))
    limit = constraints(b.src_mask.sum(1))
    want = beam_search(eager, b.src, b.src_mask, limit, beam_size=4, n_best=2)
    got = beam_search(compiled, b.src, b.src_mask, limit, beam_size=4, n_best=2)
    assert [[h.tokens for h in n] for n in got] == [[h.tokens for h in n] for n in want]
    assert [h.score for n in got for h in n] == pytest.approx(
        [h.score for n in want for h in n], abs=abs
    )
    return got


def step_is_one_graph(eager, model, abs):
    """Compiles ``model`` with a graph-counting backend: its first decoder step over SRCS is one
    frame (no graph break), and its searches are ``eager``'s (scores within ``abs``)."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = compile_decoding(model, backend=counter)
    b = make_batch(SRCS, None, list(range(len(SRCS))))
    state = compiled.init_state(compiled.encode(b.src, b.src_mask))
    before = counter.frame_count
    compiled.decode_log_probs(torch.full((len(SRCS),), BOS_ID), state)
    assert counter.frame_count - before == 1
    same_beam_search(eager, compiled, SRCS, abs=abs)
    torch._dynamo.reset()


@compiles
def test_compiled_beam_search_equals_eager():
    counters.clear()
    compilation_time_metrics.clear()
    eager = tiny_transformer("pre", seed=11).eval()
    compiled = compile_decoding(tiny_transformer("pre", seed=11))
    assert compile_decoding(compiled) is compiled  # compiling twice is a no-op
    for srcs in (SRCS, SRCS[:2], SRCS[3:]):  # other batch and source sizes reuse the graphs
        same_beam_search(eager, compiled, srcs)
    # encode, init_state, the first step and every later one; no more for other batch or source
    # sizes (test_every_later_step_is_one_graph)
    assert counters["stats"]["unique_graphs"] == 4
    # each graph traced once: a float that dynamo made an input and then failed to turn into a
    # tensor restarts its analysis (twice the tracing); compiled.py specializes floats
    assert "compile_attempt_1" not in compilation_time_metrics


def test_every_later_step_is_one_graph():
    """The step after the first is one graph for every length of the key/value cache. Dynamo
    specializes sizes 0 and 1, so without size-oblivious shapes the step compiled for a cache of
    1 position and again for 2 or more; and at the second step beam search's row indices were one
    tensor in two fields, an aliasing guard. The first step stays its own graph (no row indices
    yet, one row per sentence). A graph-counting backend: no C++ compiler needed."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    eager = tiny_transformer("pre", seed=11).eval()
    compiled = compile_decoding(tiny_transformer("pre", seed=11), backend=counter)
    for srcs in (SRCS, SRCS[:2], SRCS[3:]):
        got = same_beam_search(eager, compiled, srcs)
        assert max(len(n[0].tokens) for n in got) >= 3  # steps with a cache of 0, 1 and 2
    assert counter.frame_count == 4  # encode, init_state, the first step, every later step
    torch._dynamo.reset()


def test_rnn_decoder_step_is_one_graph():
    """Compiled, the RNN decoder's step is one graph. Dynamo refuses ``nn.LSTM`` unless its
    ``allow_rnn`` is set, so the step broke into several graphs around an eager LSTM call, and the
    Multi30k RNN decoded no faster compiled than eager (docs/benchmarks.md); compiled.py sets it."""
    eager = tiny_transformer(seed=11, encoder="rnn", decoder="rnn")
    assert isinstance(eager.decoder.rnn, torch.nn.LSTM)
    step_is_one_graph(eager, tiny_transformer(seed=11, encoder="rnn", decoder="rnn"), abs=1e-5)


@pytest.mark.parametrize(
    "changes",
    [
        dict(attention="luong_general", input_feeding=False, num_layers=2, cell="gru"),
        dict(attention="luong_concat", cell="rnn", bidirectional=False),
        dict(attention="local_p", coverage=True, bridge="zero"),
    ],
)
def test_compiled_int8_rnn_searches_as_its_eager_form(changes):
    """Other attentions, cells and bridges of the RNN decoder in the int8 form for compiled
    decoding: compiled, the same searches as uncompiled (a graph-tracing backend). Each of the
    eight attentions passed this way once (the stop-40 note); three cases keep the suite short."""
    torch._dynamo.reset()
    model = tiny_model(seed=11, **changes)
    eager = quantize(model, "int8", compiled=True)
    compiled = compile_decoding(quantize(model, "int8", compiled=True), backend="aot_eager")
    same_beam_search(eager, compiled, SRCS, abs=1e-4)
    torch._dynamo.reset()


@pytest.mark.parametrize("cell", ["lstm", "gru"])  # the layer states: a pair, a tensor
def test_compiled_residual_rnn_searches_as_eager(cell):
    """A residual RNN stack over packed sequences compiles: dynamo rebuilt the PackedSequence
    that the encoder's residual stack hands to its layers without its fields (ValueError: not
    enough values to unpack), so the packed part runs eagerly (``RNNEncoder.packed_rnn``)."""
    torch._dynamo.reset()
    eager = tiny_model(cell=cell, residual=True, num_layers=2, seed=11)
    compiled = compile_decoding(
        tiny_model(cell=cell, residual=True, num_layers=2, seed=11), backend="aot_eager"
    )
    same_beam_search(eager, compiled, SRCS, abs=1e-5)
    torch._dynamo.reset()


def test_the_model_code_does_not_import_dynamo():
    """torch._dynamo takes 1.3-1.6 s to import on 2 cores: only compiling may pay it, not every
    command (a torch.compiler.disable decorator in nn/rnn.py did, at import)."""
    import subprocess
    import sys

    modules = "seq2seq.cli, seq2seq.build, seq2seq.translator, seq2seq.quantize, seq2seq.search"
    code = f"import sys, {modules}; print('torch._dynamo' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_compile_needs_the_decode_contract():
    with pytest.raises(ValueError, match="Linear has no encode/decode_step to compile"):
        compile_decoding(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("kernel", ["int_mm", "onednn", "fbgemm"])
def test_int8_linear_approximates_the_float_layer(kernel):
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    q = Int8Linear(linear, kernel)
    x = torch.randn(3, 5, 64)
    want, got = linear(x), q(x)
    assert got.shape == want.shape
    assert (got - want).abs().max() < 0.03 * want.abs().max()
    assert q.weight_t.dtype == torch.int8


def test_int8_linear_kernel_is_checked():
    with pytest.raises(
        ValueError, match="unknown int8 kernel 'vnni'; expected one of int_mm, onednn, fbgemm"
    ):
        Int8Linear(torch.nn.Linear(4, 4), "vnni")
    assert default_kernel() in ("int_mm", "fbgemm")


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cls", [torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN])
def test_int8_rnn_approximates_the_float_module(cls, num_layers):
    torch.manual_seed(0)
    rnn = cls(12, 16, num_layers, batch_first=True).eval()
    q = Int8RNN(rnn)
    assert q.ih[0].weight_t.dtype == q.hh[-1].weight_t.dtype == torch.int8
    x = torch.randn(3, 5, 12)
    h0 = torch.randn(num_layers, 3, 16) * 0.5
    lstm = cls is torch.nn.LSTM
    with torch.no_grad():
        for hx in ((h0, torch.randn_like(h0)) if lstm else h0, None):
            (want, want_final), (got, got_final) = rnn(x, hx), q(x, hx)
            assert got.shape == want.shape == (3, 5, 16)
            assert (got - want).abs().max() < 0.03
            for w, g in zip(
                want_final if lstm else [want_final], got_final if lstm else [got_final]
            ):
                assert g.shape == w.shape == (num_layers, 3, 16)
                assert (g - w).abs().max() < 0.03


def test_int8_rnn_takes_unidirectional_batch_first_modules():
    message = (
        "Int8RNN takes a unidirectional, batch-first LSTM without projection; "
        "got bidirectional=True, batch_first=True, proj_size=0"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        Int8RNN(torch.nn.LSTM(4, 4, batch_first=True, bidirectional=True))
    with pytest.raises(
        TypeError, match="Int8RNN takes a \\(B, T, In\\) tensor, not PackedSequence"
    ):
        packed = torch.nn.utils.rnn.pack_padded_sequence(torch.zeros(2, 3, 4), [3, 2], True)
        Int8RNN(torch.nn.LSTM(4, 4, batch_first=True))(packed)


def test_int8_rnn_decoder_step_is_one_compiled_graph():
    """In the int8 form for compiled decoding the RNN decoder's recurrent stack (each layer of a
    residual one) is an Int8RNN, its products int8 like the linear layers'; the encoder's RNN,
    which runs eagerly over packed sequences, is quantize_dynamic's int8 module. Compiled, the
    step is one graph and searches as the eager int8 form does."""
    model = tiny_model(cell="lstm", residual=True, num_layers=2, seed=11)
    eager = quantize(model, "int8", compiled=True)
    assert [type(r) for r in eager.decoder.rnn.layers] == [Int8RNN, Int8RNN]
    int8_lstm = torch.ao.nn.quantized.dynamic.LSTM
    assert [type(r) for r in eager.encoder.rnn.layers] == [int8_lstm, int8_lstm]
    assert type(model.decoder.rnn.layers[0]) is torch.nn.LSTM  # the original is left unchanged
    step_is_one_graph(eager, quantize(model, "int8", compiled=True), abs=1e-4)


@pytest.mark.parametrize(
    "capability, amx, fbgemm, narrow, wide",
    [
        ("AVX512", True, True, "int_mm", "onednn"),  # oneDNN's int8 linear for wide layers
        ("AVX512", False, True, "int_mm", "int_mm"),  # no AMX: its signed-int8 path is slow
        ("AVX2", True, True, "fbgemm", "fbgemm"),
        ("AVX2", False, False, "int_mm", "int_mm"),  # no fbgemm in this build
    ],
)
def test_default_int8_kernel_follows_the_cpu_and_the_layer(
    monkeypatch, capability, amx, fbgemm, narrow, wide
):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    engines = [1, 4] if fbgemm else [4]  # ids of fbgemm, x86 (torch.backends.quantized)
    monkeypatch.setattr(torch._C, "_supported_qengines", lambda: engines)
    assert ("fbgemm" in torch.backends.quantized.supported_engines) is fbgemm
    assert default_kernel(1023) == narrow
    assert default_kernel(1024) == wide
    assert Int8Linear(torch.nn.Linear(8, 1024)).kernel == wide
    assert Int8Linear(torch.nn.Linear(8, 16)).kernel == narrow


needs_avx512 = pytest.mark.skipif(
    not torch.backends.cpu.get_cpu_capability().startswith("AVX512"),
    reason="the onednn int8 kernel serves CPUs with AVX-512 (and AMX) only",
)


@compiles
@pytest.mark.parametrize(
    "kernel, product, not_there",
    [
        ("int_mm", "aten._int_mm", "qlinear"),  # not rewritten to oneDNN's int8 linear
        pytest.param("onednn", "onednn.qlinear_pointwise", "aten._int_mm", marks=needs_avx512),
        ("fbgemm", "seq2seq.fbgemm_int8_linear", "qlinear"),
    ],
)
def test_compiled_int8_decoding_matches_its_eager_form(kernel, product, not_there):
    """The int8 form for compilation (seq2seq.quantize, compiled=True) runs int8 products inside
    the compiled graph, each kernel its own: same searches as the eager int8 modules, up to
    rounding."""
    model = tiny_transformer("pre", seed=11).eval()
    eager = quantize(model, "int8", compiled=True, kernel=kernel)
    assert sum(isinstance(m, Int8Linear) for m in eager.modules()) > 10
    compiled = compile_decoding(quantize(model, "int8", compiled=True, kernel=kernel))
    b = make_batch(SRCS, None, list(range(len(SRCS))))
    limit = constraints(b.src_mask.sum(1))
    want = beam_search(eager, b.src, b.src_mask, limit, beam_size=4)
    got, code = run_and_get_code(beam_search, compiled, b.src, b.src_mask, limit, beam_size=4)
    code = "".join(code)
    assert product in code  # this kernel's int8 products in the compiled graph
    assert not_there not in code
    assert [n[0].tokens for n in got] == [n[0].tokens for n in want]
    assert [n[0].score for n in got] == pytest.approx([n[0].score for n in want], abs=1e-3)


@compiles
def test_inductor_runs_the_int8_rnn_step_on_int8_products():
    """The RNN's int8 step through inductor (the real backend): its LSTM and linear products are
    torch._int_mm calls inside the generated code, and its log-probabilities are those of the
    uncompiled int8 form. Only the step is compiled here (the searches of the whole compiled
    model are test_int8_rnn_decoder_step_is_one_compiled_graph's), to keep CI short."""
    model = tiny_model(seed=11)
    eager = quantize(model, "int8", compiled=True, kernel="int_mm")
    compiled = compile_decoding(quantize(model, "int8", compiled=True, kernel="int_mm"))
    b = make_batch(SRCS, None, list(range(len(SRCS))))
    state = eager.init_state(eager.encode(b.src, b.src_mask))
    prev = torch.full((len(SRCS),), BOS_ID)
    (got, _), code = run_and_get_code(compiled.decode_log_probs, prev, state)
    # the step's products: the LSTM's input and hidden ones, Bahdanau's query projection and its
    # v, the combination layer, the output layer (4 with the LSTM in float32)
    assert "".join(code).count("aten._int_mm") == 6
    want = torch.log_softmax(eager.decode_step(prev, state)[0], dim=-1)
    assert got.shape == want.shape == (len(SRCS), 11)
    assert (got - want).abs().max() < 1e-4


@compiles
def test_compiled_shortlist_decoding_equals_eager_shortlist_decoding():
    """Compiled, the shortlist's output rows are graph inputs: batches with shortlists of other
    sizes reuse the graph and give the eager restricted search's results."""
    from seq2seq.shortlist import Restrictor, Shortlist

    counters.clear()
    eager = tiny_transformer("pre", seed=11).eval()
    compiled = compile_decoding(tiny_transformer("pre", seed=11))
    table = torch.full((13, 2), -1, dtype=torch.long)
    table[4:, 0] = torch.arange(4, 13) % 11  # some translations per source id
    table[4:, 1] = (torch.arange(4, 13) * 3) % 11
    sl = Shortlist(table, torch.tensor([4]), "", "", 11, 2)
    for srcs in (SRCS, SRCS[:2], SRCS[3:]):
        b = make_batch(srcs, None, list(range(len(srcs))))
        limit = constraints(b.src_mask.sum(1))
        want = beam_search(Restrictor(eager, sl)(b.src), b.src, b.src_mask, limit, beam_size=3)
        got = beam_search(Restrictor(compiled, sl)(b.src), b.src, b.src_mask, limit, beam_size=3)
        assert [n[0].tokens for n in got] == [n[0].tokens for n in want]
        assert [n[0].score for n in got] == pytest.approx([n[0].score for n in want], abs=1e-4)
    assert counters["stats"]["unique_graphs"] <= 6  # no graph per shortlist size
