"""A (bidirectional, stacked) LSTM over a padded batch, stepped in Python over rows sorted by length.

``nn.LSTM`` over a packed sequence on CPU runs ATen's per-time-step loop, one direction after the
other; profiled in training, its backward pass zero-fills and adds tensors the size of the whole
packed data many times per update (``fill_`` and ``add_`` of (tokens, 4 H), ~15 ms of the
reference RNN's 77 ms encoder in bf16). Here,
per layer, the input projections of every position and both directions are one batched product;
then each time step is one batched product per direction pair over the rows still running (the
rows sorted by length, so they are a prefix and every slice is a view), and the LSTM cell's
element-wise update. The backward direction reads each sentence reversed within its length.
Results equal the packed module's (to rounding: 2e-16 in float64); the final states are each
row's at its own last position, as packing gives.

On the Multi30k reference encoder (227 sentences of 12-18 tokens, embeddings 256, 2 x 128, 2
threads, Zen 4) forward and backward took 56-58 ms against 65-83 ms packed in bf16, and 84-88
against 107-113 ms in float32; in whole training updates of the reference RNN, old and new
alternated batch by batch in one process, +6.5% in bf16 and +1% in float32 (docs/benchmarks.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dropout import dropout


def takes(rnn: nn.Module, x: Tensor) -> bool:
    """Whether :func:`sorted_lstm` runs ``rnn`` on ``x``: a plain batch-first ``nn.LSTM`` (no
    projection) on CPU with gradients on (training), outside ``torch.compile`` (whose graphs would
    specialise on the lengths). Elsewhere the packed module is as fast (cuDNN), the only choice,
    or faster: without gradients its forward pass took 3.9-4.4 ms against 6.9-7.5 for 32
    sentences of up to 20 tokens (same shape and machine as above)."""
    return (
        torch.is_grad_enabled()
        and type(rnn) is nn.LSTM
        and rnn.batch_first
        and rnn.proj_size == 0
        and x.device.type == "cpu"
        and not torch.compiler.is_compiling()
    )


def sorted_lstm(
    rnn: nn.LSTM, x: Tensor, lengths: list[int]
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """``rnn`` over the padded batch x (B, S, In) whose rows have ``lengths`` (each >= 1): outputs
    (B, S, D * H), zero at padded positions, and the final (h, c), each (L * D, B, H), as
    ``rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))`` followed by
    ``pad_packed_sequence(..., total_length=S)`` gives; the module's dropout acts between layers
    in training."""
    batch, width = x.size(0), x.size(1)
    directions = 2 if rnn.bidirectional else 1
    size = rnn.hidden_size
    order = sorted(range(batch), key=lambda b: -lengths[b])  # stable: ties keep their order
    by_length = [lengths[b] for b in order]
    order_t = torch.tensor(order, device=x.device)
    inverse = torch.empty_like(order_t)
    inverse[order_t] = torch.arange(batch, device=x.device)
    steps = by_length[0]
    running, n = [], batch  # rows still running at each step: a prefix of the sorted rows
    for t in range(steps):
        while by_length[n - 1] <= t:
            n -= 1
        running.append(n)
    if directions == 2:  # each row's positions reversed within its length: (B, T), involutive
        positions = torch.arange(steps, device=x.device)
        ends = torch.tensor(by_length, device=x.device).unsqueeze(1)
        reverse = torch.where(positions < ends, ends - 1 - positions, positions)
    inp = x.index_select(0, order_t)[:, :steps]
    finals_h, finals_c = [], []
    for layer in range(rnn.num_layers):
        names = [f"_l{layer}"] + ([f"_l{layer}_reverse"] if directions == 2 else [])
        w_ih = torch.stack([getattr(rnn, "weight_ih" + n) for n in names]).transpose(1, 2)
        w_hh = torch.stack([getattr(rnn, "weight_hh" + n) for n in names]).transpose(1, 2)
        inputs = [inp]
        if directions == 2:
            inputs.append(inp.gather(1, reverse.unsqueeze(-1).expand_as(inp)))
        flat = torch.stack(inputs).flatten(1, 2)  # (D, B * T, In)
        if rnn.bias:
            bias = torch.stack(
                [getattr(rnn, "bias_ih" + n) + getattr(rnn, "bias_hh" + n) for n in names]
            )
            gates_in = torch.baddbmm(bias.unsqueeze(1), flat, w_ih)
        else:
            gates_in = torch.bmm(flat, w_ih)
        per_step = gates_in.view(directions, batch, steps, 4 * size).unbind(2)
        h = c = None
        outs, done_h, done_c = [], [], []
        for t, n in enumerate(running):
            if h is None:
                gates = per_step[t]
            else:
                if n < h.size(1):  # rows n.. ended at the previous step: their final states
                    done_h.append(h[:, n:])
                    done_c.append(c[:, n:])
                    h, c = h[:, :n], c[:, :n]
                gates = torch.baddbmm(per_step[t][:, :n], h, w_hh)
            i, f, g, o = gates.chunk(4, dim=-1)
            i, g = torch.sigmoid(i), torch.tanh(g)
            c = i * g if c is None else torch.sigmoid(f) * c + i * g
            h = torch.sigmoid(o) * torch.tanh(c)
            outs.append(F.pad(h, (0, 0, 0, batch - n)))
        done_h.append(h)
        done_c.append(c)
        finals_h.append(torch.cat(done_h[::-1], dim=1))  # (D, B, H), rows by length
        finals_c.append(torch.cat(done_c[::-1], dim=1))
        out = torch.stack(outs, dim=2)  # (D, B, T, H), zero where a row had ended
        if directions == 2:
            back = out[1].gather(1, reverse.unsqueeze(-1).expand(-1, -1, size))
            out = torch.cat([out[0], back], dim=-1)
        else:
            out = out[0]
        last = layer == rnn.num_layers - 1
        inp = out if last else dropout(out, rnn.dropout, rnn.training)
    out = F.pad(inp, (0, 0, 0, width - steps)).index_select(0, inverse)
    h = torch.cat(finals_h).index_select(1, inverse)
    c = torch.cat(finals_c).index_select(1, inverse)
    return out, (h, c)
