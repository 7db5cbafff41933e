"""Training-step speed of the RNN decoder with and without input feeding.

With input feeding (Luong et al. 2015, 3.3) the decoder must step through the target one token at a
time during training; without it the recurrence runs fused over the whole target (one cuDNN/oneDNN
call) and attention is computed for all steps at once. This times one training step (forward,
backward, Adam) of the `configs/dates_rnn.yaml` model on a synthetic batch shaped like the dates
task (64 sentences, source 25 and target 11 tokens with <eos>/<bos>; decoder hidden 256), or of
other lengths.

    python benchmarks/input_feeding.py --threads 2
    python benchmarks/input_feeding.py --threads 2 --src-len 40 --tgt-len 40 --batch 32
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

import torch

from seq2seq import config
from seq2seq.build import build_model
from seq2seq.data.batching import make_batch

REPO = Path(__file__).resolve().parents[1]


def time_steps(model: torch.nn.Module, batch, repeats: int) -> float:
    """Median milliseconds of one training step."""
    opt = torch.optim.Adam(model.parameters())
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        logits = model(batch.src, batch.src_mask, batch.tgt_in)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 3:  # warm-up steps are not counted
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--src-len", type=int, default=24, help="source tokens before <eos>")
    p.add_argument("--tgt-len", type=int, default=10, help="target tokens before <eos>")
    p.add_argument("--kinds", nargs="+", default=["bahdanau", "luong_general", "local_p"])
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    base = config.load(REPO / "configs/dates_rnn.yaml").model
    g = torch.Generator().manual_seed(0)
    src = torch.randint(4, 62, (args.batch, args.src_len), generator=g).tolist()
    tgt = torch.randint(4, 15, (args.batch, args.tgt_len), generator=g).tolist()
    batch = make_batch(src, tgt, list(range(args.batch)))
    shape = f"{args.batch} x (source {args.src_len + 1}, target {args.tgt_len + 1})"
    print(f"# torch {torch.__version__}, {args.threads} threads, batch {shape}")
    print("| attention | coverage | input feeding on (ms/step) | off (ms/step) | speed-up |")
    print("|---|---|---|---|---|", flush=True)
    for kind in args.kinds:
        for coverage in (False, True):
            ms = {}
            for feeding in (True, False):
                att = dataclasses.replace(base.decoder.attention, kind=kind, coverage=coverage)
                dec = dataclasses.replace(base.decoder, input_feeding=feeding, attention=att)
                torch.manual_seed(0)
                model = build_model(dataclasses.replace(base, decoder=dec), 62, 15).train()
                ms[feeding] = time_steps(model, batch, args.repeats)
            print(
                f"| {kind} | {'on' if coverage else 'off'} | {ms[True]:.0f} | {ms[False]:.0f} "
                f"| {ms[True] / ms[False]:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
