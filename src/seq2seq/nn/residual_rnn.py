"""A stacked RNN with residual connections between layers, interchangeable with ``nn.LSTM`` etc.

``nn.LSTM(num_layers=L)`` runs all layers in one fused call but cannot add a layer's input to its
output. ``ResidualRNN`` runs one single-layer RNN per layer and, from the second layer on, adds
each layer's input to its output, ``x_{l+1} = RNN_l(x_l) + x_l`` (as in Wu et al. 2016, GNMT,
section 3.1; the first layer's input is the embedding, of another size). It accepts the same
inputs (a (B, T, In) tensor or a ``PackedSequence``, batch first) and returns the same outputs
and final states ((L * D, B, H), a tuple (h, c) for LSTM) as the fused module.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from .dropout import Dropout

HiddenState = Tensor | tuple[Tensor, Tensor]


class ResidualRNN(nn.Module):
    def __init__(
        self,
        rnn_class: type[nn.RNNBase],
        input_size: int,
        hidden_size: int,
        num_layers: int,
        bidirectional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        directions = 2 if bidirectional else 1
        self.layers = nn.ModuleList(
            rnn_class(
                input_size if i == 0 else hidden_size * directions,
                hidden_size,
                1,
                batch_first=True,
                bidirectional=bidirectional,
            )
            for i in range(num_layers)
        )
        self.dropout = Dropout(dropout)
        self.directions = directions
        self.is_lstm = rnn_class is nn.LSTM

    def _layer_state(self, hx: HiddenState | None, i: int) -> HiddenState | None:
        d = self.directions
        if hx is None:
            return None
        # narrow, not a slice: compiled with size-oblivious shapes (seq2seq.compiled), a slice's
        # length is not known to be d, and the traced RNN call failed on it
        if isinstance(hx, tuple):
            return hx[0].narrow(0, i * d, d), hx[1].narrow(0, i * d, d)
        return hx.narrow(0, i * d, d)

    def forward(
        self, x: Tensor | PackedSequence, hx: HiddenState | None = None
    ) -> tuple[Tensor | PackedSequence, HiddenState]:
        """x (B, T, In) or packed; hx (L * D, B, H) (a pair for LSTM) -> outputs (B, T, D * H) or
        packed, and final states shaped like hx."""
        finals = []
        for i, layer in enumerate(self.layers):
            out, final = layer(x, self._layer_state(hx, i))
            if i > 0:
                out = _map(out, lambda o, inp=x: o + _data(inp))  # residual connection
            if i < len(self.layers) - 1:
                out = _map(out, self.dropout)  # between layers, as nn.LSTM's dropout
            x = out
            finals.append(final)
        if self.is_lstm:
            return x, (torch.cat([f[0] for f in finals]), torch.cat([f[1] for f in finals]))
        return x, torch.cat(finals)


def _data(x: Tensor | PackedSequence) -> Tensor:
    return x.data if isinstance(x, PackedSequence) else x


def _map(x: Tensor | PackedSequence, fn) -> Tensor | PackedSequence:
    """Applies ``fn`` to a tensor or to the data of a packed sequence (same batch layout)."""
    if isinstance(x, PackedSequence):
        return x._replace(data=fn(x.data))
    return fn(x)
