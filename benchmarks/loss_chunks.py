"""Whole training updates with the fused output layer + loss at several chunk sizes, alternated.

``train/loss.py`` forms the logits, their softmax and the projection's gradients chunk by chunk;
``CHUNK_BYTES`` bounds one chunk's logits. This builds the run of CONFIG as
``benchmarks/train_speed.py`` does (the anchors' settings: label smoothing 0, constant rate),
then times ``Trainer.update`` on ``--batches`` batches after one untimed update per size, every
batch once with each chunk size, the order rotating from batch to batch so that the machine's
drift falls on all sizes alike. Prints real target tokens/s per size and the ratio to the first.
Run from the repository root, e.g.:

    python benchmarks/loss_chunks.py configs/multi30k_en_de_rnn.yaml --precision bf16 \\
        --chunk-mib 4 16 --data-root ../shared/data/multi30k
"""

from __future__ import annotations

import argparse
import platform
import time

from train_speed import anchor_trainer  # this folder's script, on sys.path when run as one

import seq2seq.train.loss as loss_module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--chunk-mib", type=float, nargs="+", default=[4, 8, 16])
    p.add_argument("--batches", type=int, default=45)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-root", default=None, help="multi30k folder (default: the config's)")
    args = p.parse_args()
    sizes = [int(m * 2**20) for m in args.chunk_mib]
    seconds, tokens = dict.fromkeys(sizes, 0.0), dict.fromkeys(sizes, 0)
    with anchor_trainer(args.config, args.precision, args.threads, args.data_root) as run:
        trainer, data, batches = run
        for size in sizes:  # one untimed update each
            loss_module.CHUNK_BYTES = size
            trainer.update([data.batch(batches[0])])
        for i in range(1, args.batches + 1):
            batch = data.batch(batches[i % len(batches)])
            k = i % len(sizes)
            for size in sizes[k:] + sizes[:k]:
                loss_module.CHUNK_BYTES = size
                start = time.perf_counter()
                _, n = trainer.update([batch])
                seconds[size] += time.perf_counter() - start
                tokens[size] += n
    first = tokens[sizes[0]] / seconds[sizes[0]]
    print(
        f"# {args.config}, {args.precision}, {platform.processor() or platform.machine()}, "
        f"{args.threads} threads, {args.batches} batches, each with every chunk size"
    )
    print("| chunk MiB | target tok/s | vs first |")
    print("|---:|---:|---:|")
    for size, mib in zip(sizes, args.chunk_mib):
        rate = tokens[size] / seconds[size]
        print(f"| {mib:g} | {rate:,.0f} | {rate / first:.3f} |")


if __name__ == "__main__":
    main()
