"""The RNN training update with its two CPU training paths on and off, in one process.

The encoder's LSTM steps over rows sorted by length (``seq2seq.nn.sorted_lstm``) and the
input-feeding decoder's single steps go through the cell functions (``seq2seq.nn.rnn.rnn_step``);
each can be switched back to the ``nn.LSTM`` module. This machine's speed drifts by several per
cent within minutes, so the four combinations are timed on the same batches, one after the other
for each batch (every one of them updates the model, which does not change the work), and
reported as real target tokens/s over all batches and the median time per batch. Run from the
repository root, e.g. the Multi30k RNN recipe's shape in bf16:

    python benchmarks/rnn_train_paths.py recipes/multi30k/rnn.yaml --precision bf16 --batches 16

The run is built by ``train_speed.py``'s ``anchor_trainer``, with the anchors' settings (label
smoothing 0, constant learning rate).
"""

from __future__ import annotations

import argparse
import statistics
import time

from train_speed import anchor_trainer  # this folder's script, on sys.path when run as one

import seq2seq.nn.rnn as rnn_module
import seq2seq.nn.sorted_lstm as sorted_module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--precision", default="bf16", choices=["float32", "bf16"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", type=int, default=16, help="timed batches (each run 4 times)")
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--data-root", default=None, help="multi30k folder (default: the config's)")
    args = p.parse_args()

    sorted_on, cells_on = sorted_module.takes, rnn_module._steps_by_cell

    def off(*_: object) -> bool:
        return False

    modes = {
        "both (default)": (sorted_on, cells_on),
        "packed encoder": (off, cells_on),
        "module decoder steps": (sorted_on, off),
        "neither": (off, off),
    }
    times: dict[str, list[float]] = {m: [] for m in modes}
    tokens = dict.fromkeys(modes, 0)
    with anchor_trainer(args.config, args.precision, args.threads, args.data_root) as run:
        trainer, data, batches = run
        try:
            for i in range(args.warmup):
                trainer.update([data.batch(batches[i])])
            for i in range(args.warmup, args.warmup + args.batches):
                batch = data.batch(batches[i % len(batches)])
                for mode, (takes, steps) in modes.items():
                    sorted_module.takes, rnn_module._steps_by_cell = takes, steps
                    start = time.perf_counter()
                    _, n = trainer.update([batch])
                    times[mode].append(time.perf_counter() - start)
                    tokens[mode] += n
        finally:
            sorted_module.takes, rnn_module._steps_by_cell = sorted_on, cells_on
    print(
        f"# {args.config}, {args.precision}, {args.threads} threads, {args.batches} batches "
        f"after {args.warmup}"
    )
    print("| paths | target tok/s (all batches) | median ms per batch |")
    print("|---|---:|---:|")
    for mode in modes:
        rate = tokens[mode] / sum(times[mode])
        print(f"| {mode} | {rate:,.0f} | {statistics.median(times[mode]) * 1000:,.0f} |")


if __name__ == "__main__":
    main()
