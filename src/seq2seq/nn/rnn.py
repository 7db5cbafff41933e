"""RNN encoder and attentional RNN decoder (LSTM, GRU or vanilla RNN).

The decoder follows Luong et al. 2015 (section 3, eq. 5-6): the recurrent state h_t queries the
source, the context c_t and h_t are combined into the attentional state
``h~_t = tanh(W_c [c_t; h_t])``, and ``p(y_t) = softmax(W_s h~_t)``. With input feeding (section
3.3) h~_{t-1} is concatenated to the next input, so training must step; without it the recurrence
runs fused over the whole target and attention is computed for all steps at once (step by step
only when coverage is on, as C_t depends on the previous weights).

Options: residual connections between stacked layers (:mod:`.residual_rnn`), dropout on the
embeddings, on the decoder's recurrent output h_t (``hidden_dropout``) and on h~_t (``dropout``),
a coverage vector fed to the scorer (Tu et al. 2016; kept on the state), and W_s tied to the target
embedding (Press & Wolf 2017, "Using the Output Embedding to Improve Language Models").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..data.vocab import PAD_ID
from . import sorted_lstm
from .dropout import Dropout, dropout
from .projection import output_logits
from .residual_rnn import ResidualRNN
from .types import EncoderOutput

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def _check_cell(cell: str) -> type[nn.RNNBase]:
    if cell not in CELLS:
        raise ValueError(f"unknown RNN cell {cell!r}; expected one of {', '.join(CELLS)}")
    return CELLS[cell]


def _stacked_rnn(
    cell: str,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    bidirectional: bool,
    dropout: float,
    residual: bool,
) -> nn.Module:
    """The fused ``nn.LSTM``/``GRU``/``RNN``, or a :class:`ResidualRNN` when residual connections
    are asked for (and there is more than one layer)."""
    dropout = dropout if num_layers > 1 else 0.0
    if residual and num_layers > 1:
        return ResidualRNN(
            _check_cell(cell), input_size, hidden_size, num_layers, bidirectional, dropout
        )
    return _check_cell(cell)(
        input_size,
        hidden_size,
        num_layers,
        batch_first=True,
        bidirectional=bidirectional,
        dropout=dropout,
    )


_CELL_STEPS = {
    "LSTM": torch.lstm_cell,
    "GRU": torch.gru_cell,
    "RNN_TANH": torch.rnn_tanh_cell,
    "RNN_RELU": torch.rnn_relu_cell,
}


def _steps_by_cell(rnn: nn.Module, x: Tensor) -> bool:
    """Whether :func:`rnn_step` takes ``x``: one time step of a plain unidirectional, batch-first
    ``nn.LSTM``/``GRU``/``RNN`` (not a quantized or residual stack) with gradients on (training).

    Decoding keeps the module: the cell functions' results depend on the number of threads (a
    beam score moved by 1e-6 between 1 and 2 threads), which the promise that ``--workers`` and
    ``--threads`` change no translation or score (``tests/test_cli.py``) rules out; the module
    keeps it.
    """
    return (
        torch.is_grad_enabled()
        and type(rnn) in (nn.LSTM, nn.GRU, nn.RNN)
        and x.size(1) == 1
        and rnn.batch_first
        and not rnn.bidirectional
        and rnn.proj_size == 0
    )


def rnn_step(
    rnn: nn.RNNBase, x: Tensor, hx: Tensor | tuple[Tensor, Tensor]
) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
    """``rnn(x, hx)`` for one time step (x (B, 1, In), hx (L, B, H) or a pair for LSTM), layer by
    layer through the cell functions (``torch.lstm_cell`` etc.) on the module's own weights, with
    its dropout between layers in training.

    The fused module runs a one-step sequence through oneDNN on CPU, whose backward pass re-lays
    its weights out on every call: on the Multi30k reference RNN decoder (B = 227, 18 steps, 2
    threads, Zen 4) the backward of the steps took 94-98 ms that way and 51 ms through the cell
    functions in bf16, 126-130 and 98-99 ms in float32 (forward passes level); the input-feeding
    decoder takes every training step this way.
    """
    lstm = rnn.mode == "LSTM"
    h0, c0 = hx if lstm else (hx, None)
    step = _CELL_STEPS[rnn.mode]
    inp, hs, cs = x.squeeze(1), [], []
    for k in range(rnn.num_layers):
        weights = [getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}")]
        if rnn.bias:
            weights += [getattr(rnn, f"bias_ih_l{k}"), getattr(rnn, f"bias_hh_l{k}")]
        if lstm:
            h, c = step(inp, (h0[k], c0[k]), *weights)
            cs.append(c)
        else:
            h = step(inp, h0[k], *weights)
        hs.append(h)
        last = k == rnn.num_layers - 1
        inp = h if last else dropout(h, rnn.dropout, rnn.training)
    hidden = torch.stack(hs)
    return inp.unsqueeze(1), (hidden, torch.stack(cs)) if lstm else hidden


class RNNEncoder(nn.Module):
    """Embeds and encodes a padded source batch over packed sequences; an LSTM in training on CPU
    steps over the rows sorted by length instead (:mod:`.sorted_lstm`, the same results, faster).

    ``residual``: from the second stacked layer on, each layer's input is added to its output.
    Output size is ``hidden_size * (2 if bidirectional else 1)``; forward and backward states are
    concatenated per position and, for the final states, per layer.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden_size: int,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = True,
        dropout: float = 0.0,
        embed_dropout: float = 0.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.embed_dropout = Dropout(embed_dropout)
        self.rnn = _stacked_rnn(
            cell, embed_dim, hidden_size, num_layers, bidirectional, dropout, residual
        )
        self.dropout = Dropout(dropout)
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.num_directions

    def forward(self, src: Tensor, src_mask: Tensor) -> EncoderOutput:
        """src, src_mask: (B, S) -> states (B, S, D*H), final states each (L, B, D*H)."""
        lengths = src_mask.sum(dim=1)
        x = self.embed_dropout(self.embed(src))  # (B, S, E)
        if sorted_lstm.takes(self.rnn, x):
            states, final = sorted_lstm.sorted_lstm(self.rnn, x, lengths.tolist())
        else:
            states, final = self.packed_rnn(x, lengths)
        finals = final if isinstance(final, tuple) else (final,)
        return EncoderOutput(
            states=self.dropout(states),
            mask=src_mask,
            final=tuple(self._merge_directions(f) for f in finals),
        )

    # methods that compiled decoding runs eagerly (seq2seq.compiled wraps them in
    # torch.compiler.disable; a decorator here would import torch._dynamo with the model code,
    # 1.3 s more for every command)
    eager_when_compiled = ("packed_rnn",)

    def packed_rnn(
        self, x: Tensor, lengths: Tensor
    ) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
        """The RNN over the padded batch x (B, S, In) packed by ``lengths``: outputs (B, S, D * H),
        zero at padded positions, and the final states. Eager under ``torch.compile``: dynamo
        does not trace packing (the graph broke there anyway) and rebuilt a ``PackedSequence``
        handed on to a residual stack's layers without its fields, which failed."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return states, final

    def _merge_directions(self, h: Tensor) -> Tensor:
        """(L*D, B, H) -> (L, B, D*H)."""
        layers, directions = self.num_layers, self.num_directions
        h = h.view(layers, directions, h.size(1), h.size(2))
        return torch.cat([h[:, d] for d in range(directions)], dim=-1)


@dataclass
class RNNDecoderState:
    """Everything an RNN decoder step needs, explicitly.

    hidden, cell: (L, B, H) (cell only for LSTM); feed: (B, H) last attentional state (input
    feeding); memory: (B, S, Hm); keys: (B, S, K) precomputed by the attention; mask: (B, S);
    attention: (B, S) weights of the last step; coverage: (B, S) sum of all weights so far (only
    with coverage); step: how many steps were taken (the target position of the next step).
    """

    hidden: Tensor
    cell: Tensor | None
    feed: Tensor
    memory: Tensor
    keys: Tensor
    mask: Tensor
    attention: Tensor | None = None
    coverage: Tensor | None = None
    step: int = 0

    def select(self, index: Tensor) -> RNNDecoderState:
        def rows(t: Tensor | None, dim: int = 0) -> Tensor | None:
            return None if t is None else t.index_select(dim, index)

        return RNNDecoderState(
            hidden=rows(self.hidden, 1),
            cell=rows(self.cell, 1),
            feed=rows(self.feed),
            memory=rows(self.memory),
            keys=rows(self.keys),
            mask=rows(self.mask),
            attention=rows(self.attention),
            coverage=rows(self.coverage),
            step=self.step,
        )


class RNNDecoder(nn.Module):
    """Attentional RNN decoder with optional input feeding and an encoder-to-decoder bridge.

    attention: any module of :mod:`.attention` / :mod:`.local_attention` (``prepare``,
    ``forward(query, keys, memory, mask, first_step, coverage)``, ``context_size``, ``coverage``).
    bridge: ``zero`` (zeros), ``last`` (the encoder's final states, layer by layer; same cell and
    size), ``mean`` (masked mean of encoder states in every layer; same size), ``linear``
    (``tanh(W [final top-layer state])`` per layer, any sizes). ``tie_output`` shares W_s with the
    target embedding (needs ``embed_dim == hidden_size``).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden_size: int,
        memory_size: int,
        attention: nn.Module,
        num_layers: int = 1,
        cell: str = "lstm",
        dropout: float = 0.0,
        embed_dropout: float = 0.0,
        hidden_dropout: float = 0.0,
        input_feeding: bool = True,
        bridge: str = "linear",
        residual: bool = False,
        tie_output: bool = False,
    ) -> None:
        super().__init__()
        if bridge not in ("zero", "last", "mean", "linear"):
            raise ValueError(f"unknown bridge {bridge!r}; expected zero, last, mean or linear")
        if bridge in ("last", "mean") and memory_size != hidden_size:
            raise ValueError(
                f"bridge {bridge!r} needs memory size {memory_size} == hidden size {hidden_size}"
            )
        if tie_output and embed_dim != hidden_size:
            raise ValueError(
                f"tie_output needs embed_dim == hidden_size, got {embed_dim} and {hidden_size}"
            )
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.embed_dropout = Dropout(embed_dropout)
        self.is_lstm = cell == "lstm"
        self.rnn = _stacked_rnn(
            cell,
            embed_dim + (hidden_size if input_feeding else 0),
            hidden_size,
            num_layers,
            False,
            dropout,
            residual,
        )
        self.hidden_dropout = Dropout(hidden_dropout)
        self.attention = attention
        context_size = attention.context_size
        self.combine = nn.Linear(context_size + hidden_size, hidden_size, bias=False)  # W_c, eq. 5
        self.dropout = Dropout(dropout)
        self.output = nn.Linear(hidden_size, vocab_size)  # W_s, eq. 6
        if tie_output:
            self.output.weight = self.embed.weight
        self.bridge = bridge
        if bridge == "linear":
            self.bridge_hidden = nn.Linear(memory_size, num_layers * hidden_size)
            self.bridge_cell = (
                nn.Linear(memory_size, num_layers * hidden_size) if self.is_lstm else None
            )
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.input_feeding = input_feeding

    # -- state ------------------------------------------------------------------------------------

    def init_state(self, enc: EncoderOutput) -> RNNDecoderState:
        batch = enc.states.size(0)
        layers, size = self.num_layers, self.hidden_size
        zeros = enc.states.new_zeros(layers, batch, size)
        if self.bridge == "zero":
            hidden, cell = zeros, zeros if self.is_lstm else None
        elif self.bridge == "last":
            if enc.final is None or len(enc.final) != (2 if self.is_lstm else 1):
                raise ValueError("bridge 'last' needs an RNN encoder with the same cell type")
            hidden = enc.final[0][-layers:].contiguous()
            cell = enc.final[1][-layers:].contiguous() if self.is_lstm else None
        elif self.bridge == "mean":
            hidden = self._mean(enc).unsqueeze(0).expand(layers, -1, -1).contiguous()
            cell = zeros if self.is_lstm else None
        else:
            summary = enc.final[0][-1] if enc.final is not None else self._mean(enc)  # (B, Hm)
            hidden = self._spread(torch.tanh(self.bridge_hidden(summary)))
            cell = self._spread(torch.tanh(self.bridge_cell(summary))) if self.is_lstm else None
        with_coverage = self.attention.coverage is not None
        return RNNDecoderState(
            hidden=hidden,
            cell=cell,
            feed=enc.states.new_zeros(batch, size),
            memory=enc.states,
            keys=self.attention.prepare(enc.states),
            mask=enc.mask,
            coverage=enc.states.new_zeros(enc.mask.shape) if with_coverage else None,
        )

    @staticmethod
    def _mean(enc: EncoderOutput) -> Tensor:
        m = enc.mask.unsqueeze(-1).to(enc.states.dtype)
        return (enc.states * m).sum(1) / m.sum(1)

    def _spread(self, x: Tensor) -> Tensor:
        """(B, L*H) -> (L, B, H)."""
        return x.view(x.size(0), self.num_layers, self.hidden_size).transpose(0, 1).contiguous()

    # -- computation ------------------------------------------------------------------------------

    def _recur(self, x: Tensor, state: RNNDecoderState) -> tuple[Tensor, Tensor, Tensor | None]:
        """x (B, T, In) -> outputs (B, T, H) after hidden dropout, and the new hidden (and cell).
        A single training step (input feeding) goes through :func:`rnn_step`."""
        hx = (state.hidden, state.cell) if self.is_lstm else state.hidden
        if _steps_by_cell(self.rnn, x):
            out, final = rnn_step(self.rnn, x, hx)
        else:
            out, final = self.rnn(x, hx)
        h, c = final if self.is_lstm else (final, None)
        return self.hidden_dropout(out), h, c

    def _attend(self, out: Tensor, state: RNNDecoderState) -> tuple[Tensor, Tensor, Tensor | None]:
        """out (B, T, H), the recurrent outputs of target positions ``state.step ..`` -> attentional
        states h~ (B, T, H) after dropout, weights (B, T, S) and the coverage after the last row.

        With coverage every row needs the weights of the rows before it (C_{t-1}), so the rows are
        attended one at a time; otherwise all at once.
        """
        if state.coverage is None:
            context, weights = self.attention(out, state.keys, state.memory, state.mask, state.step)
            coverage = None
        else:
            contexts, rows, coverage = [], [], state.coverage
            for t in range(out.size(1)):
                c, w = self.attention(
                    out[:, t : t + 1],
                    state.keys,
                    state.memory,
                    state.mask,
                    state.step + t,
                    coverage,
                )
                coverage = coverage + w.squeeze(1)  # C_t = C_{t-1} + a_t (Tu et al. 2016)
                contexts.append(c)
                rows.append(w)
            context, weights = torch.cat(contexts, dim=1), torch.cat(rows, dim=1)
        att = torch.tanh(self.combine(torch.cat([context, out], dim=-1)))  # (B, T, H), eq. 5
        return self.dropout(att), weights, coverage

    def decode_step(self, prev: Tensor, state: RNNDecoderState) -> tuple[Tensor, RNNDecoderState]:
        """prev (B,) ids -> logits (B, V) and a new state (weights on ``state.attention``)."""
        hidden, new = self.decode_features(prev, state)
        return output_logits(self.output, hidden), new

    def decode_features(
        self, prev: Tensor, state: RNNDecoderState
    ) -> tuple[Tensor, RNNDecoderState]:
        """``decode_step`` up to the output layer: the attentional state (B, H) and the new state."""
        x = self.embed_dropout(self.embed(prev)).unsqueeze(1)  # (B, 1, E)
        if self.input_feeding:
            x = torch.cat([x, state.feed.unsqueeze(1)], dim=-1)
        out, h, c = self._recur(x, state)
        att, weights, coverage = self._attend(out, state)
        new = replace(
            state,
            hidden=h,
            cell=c,
            feed=att.squeeze(1),
            attention=weights.squeeze(1),
            coverage=coverage,
            step=state.step + 1,
        )
        return att.squeeze(1), new

    def forward(self, tgt_in: Tensor, state: RNNDecoderState) -> tuple[Tensor, Tensor]:
        """Teacher forcing: tgt_in (B, T) -> logits (B, T, V), attention (B, T, S)."""
        hidden, weights = self.features(tgt_in, state)
        return output_logits(self.output, hidden), weights

    def features(self, tgt_in: Tensor, state: RNNDecoderState) -> tuple[Tensor, Tensor]:
        """Teacher forcing up to the output layer: the attentional states (B, T, H) that
        ``self.output`` maps to logits, and the attention (B, T, S)."""
        emb = self.embed_dropout(self.embed(tgt_in))  # (B, T, E)
        if not self.input_feeding:
            out, _, _ = self._recur(emb, state)  # fused over the whole target
            att, weights, _ = self._attend(out, state)
            return att, weights
        atts, weights = [], []
        for t in range(emb.size(1)):
            x = torch.cat([emb[:, t : t + 1], state.feed.unsqueeze(1)], dim=-1)
            out, h, c = self._recur(x, state)
            att, w, coverage = self._attend(out, state)
            state = replace(
                state, hidden=h, cell=c, feed=att.squeeze(1), coverage=coverage, step=state.step + 1
            )
            atts.append(att)
            weights.append(w)
        return torch.cat(atts, dim=1), torch.cat(weights, dim=1)
