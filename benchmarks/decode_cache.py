"""Per-token decoding time of the Transformer with and without the key/value cache.

Cached decoding runs one new position through the decoder per step (``model.decode_step``).
The uncached contrast, written only here, re-runs the decoder over the whole prefix at every
step and keeps the last position's logits, which is what decoding without a cache costs: the
per-token time grows with the output length. Weights are random (timing does not depend on
them); a fixed token sequence is fed so every run decodes exactly N tokens.

    PYTHONPATH=src python benchmarks/decode_cache.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch

from seq2seq.build import build_model
from seq2seq.config import ModelConfig, TransformerDecoderConfig, TransformerEncoderConfig


def cached(model, src, mask, tokens: torch.Tensor) -> None:
    state = model.init_state(model.encode(src, mask))
    for t in range(tokens.size(1)):
        _, state = model.decode_step(tokens[:, t], state)


def uncached(model, src, mask, tokens: torch.Tensor) -> None:
    enc = model.encode(src, mask)
    for t in range(tokens.size(1)):
        # a fresh state each step: the decoder sees the whole prefix again
        logits, _ = model.decoder(tokens[:, : t + 1], model.init_state(enc))
        logits[:, -1]


def per_token_ms(fn, model, src, mask, tokens, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(model, src, mask, tokens)
        best = min(best, time.perf_counter() - start)
    return best / tokens.size(1) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1, help="sentences decoded together")
    p.add_argument("--src-len", type=int, default=32)
    p.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    p.add_argument("--embed-dim", type=int, default=256)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--vocab", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sizes = dict(
        embed_dim=args.embed_dim,
        num_layers=args.layers,
        num_heads=args.heads,
        ff_size=4 * args.embed_dim,
        max_positions=max(args.lengths) + 1,
    )
    cfg = ModelConfig(
        encoder=TransformerEncoderConfig(**sizes), decoder=TransformerDecoderConfig(**sizes)
    )
    model = build_model(cfg, args.vocab, args.vocab).eval()
    src = torch.randint(4, args.vocab, (args.batch, args.src_len))
    mask = torch.ones_like(src, dtype=torch.bool)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, "
        f"source {args.src_len} tokens, d_model {args.embed_dim}, {args.layers}+{args.layers} "
        f"layers, {args.heads} heads, vocab {args.vocab}; best of {args.repeats}"
    )
    print("| output tokens | cached ms/token | uncached ms/token | uncached / cached |")
    print("|---:|---:|---:|---:|")
    with torch.inference_mode():
        for n in args.lengths:
            tokens = torch.randint(4, args.vocab, (args.batch, n))
            c = per_token_ms(cached, model, src, mask, tokens, args.repeats)
            u = per_token_ms(uncached, model, src, mask, tokens, args.repeats)
            print(f"| {n} | {c:.2f} | {u:.2f} | {u / c:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
