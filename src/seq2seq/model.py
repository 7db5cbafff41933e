"""The model contract every architecture implements, so one search serves all of them.

enc    = model.encode(src, src_mask)            # EncoderOutput: states (B, S, H), mask (B, S)
state  = model.init_state(enc)                  # an explicit decoder state object
logits, state = model.decode_step(prev, state)  # prev (B,) ids -> logits (B, V), a NEW state
hidden, state = model.decode_features(prev, state)  # the same step before output_layer: (B, H)
state  = state.select(index)                    # reorder / expand rows (beam search)
logits = model(src, src_mask, tgt_in)           # teacher forcing: (B, T, V)
hidden = model(src, src_mask, tgt_in, features=True)  # (B, T, H), before model.output_layer
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from .nn.types import DecoderState, EncoderOutput


class Seq2Seq(nn.Module):
    """An encoder and a decoder, injected by the caller (see ``build.build_model``).

    The encoder maps ``(src, src_mask)`` to an :class:`EncoderOutput`; the decoder offers
    ``init_state(enc)``, ``decode_step(prev, state)`` and ``forward(tgt_in, state)`` returning
    ``(logits, attention)``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, src: Tensor, src_mask: Tensor) -> EncoderOutput:
        return self.encoder(src, src_mask)

    def init_state(self, enc: EncoderOutput) -> Any:
        return self.decoder.init_state(enc)

    def decode_step(self, prev: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        return self.decoder.decode_step(prev, state)

    def decode_features(self, prev: Tensor, state: DecoderState) -> tuple[Tensor, DecoderState]:
        """``decode_step`` up to ``output_layer``: hidden (B, H) and the new state."""
        return self.decoder.decode_features(prev, state)

    def forward_with_attention(
        self, src: Tensor, src_mask: Tensor, tgt_in: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Teacher forcing: logits (B, T, V) and attention (B, T, S)."""
        return self.decoder(tgt_in, self.init_state(self.encode(src, src_mask)))

    def forward(
        self, src: Tensor, src_mask: Tensor, tgt_in: Tensor, features: bool = False
    ) -> Tensor:
        """Teacher forcing: logits (B, T, V); with ``features`` the decoder states (B, T, H) that
        ``self.output_layer`` maps to logits (training fuses that layer with the loss)."""
        if features:
            return self.decoder.features(tgt_in, self.init_state(self.encode(src, src_mask)))[0]
        return self.forward_with_attention(src, src_mask, tgt_in)[0]

    @property
    def output_layer(self) -> nn.Linear:
        return self.decoder.output
