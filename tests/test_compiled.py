"""Compiled decoding (torch.compile with frozen weights) gives the eager model's search results."""

import pytest
import torch
from torch._dynamo.utils import counters

from seq2seq.compiled import compile_decoding
from seq2seq.data.batching import make_batch
from seq2seq.processors import constraints
from seq2seq.search import beam_search

from .conftest import tiny_transformer

SRCS = [[4, 5, 6, 7, 8, 9, 10], [11, 12], [5, 12, 4], [9], [6, 6, 7, 8, 11]]


def test_compiled_beam_search_equals_eager():
    counters.clear()
    eager = tiny_transformer("pre", seed=11).eval()
    compiled = compile_decoding(tiny_transformer("pre", seed=11))
    assert compile_decoding(compiled) is compiled  # compiling twice is a no-op
    for srcs in (SRCS, SRCS[:2], SRCS[3:]):  # other batch and source sizes reuse the graphs
        b = make_batch(srcs, None, list(range(len(srcs))))
        limit = constraints(b.src_mask.sum(1))
        want = beam_search(eager, b.src, b.src_mask, limit, beam_size=4, n_best=2)
        got = beam_search(compiled, b.src, b.src_mask, limit, beam_size=4, n_best=2)
        assert [[h.tokens for h in n] for n in got] == [[h.tokens for h in n] for n in want]
        assert [h.score for n in got for h in n] == pytest.approx(
            [h.score for n in want for h in n], abs=1e-4
        )
    assert counters["stats"]["unique_graphs"] >= 3  # encode, init_state, decode_step compiled


def test_compile_needs_the_decode_contract():
    with pytest.raises(ValueError, match="Linear has no encode/decode_step to compile"):
        compile_decoding(torch.nn.Linear(2, 2))
