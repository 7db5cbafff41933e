"""Decoding in worker processes: each process loads the model from its files (spawned, so no
OpenMP or compiled state is inherited through fork) and decodes whole batches with its own
intra-op threads, while the parent hands out the batches and collects the n-best lists in input
order. On a CPU with few cores, two processes of one thread decode compiled or int8 models
faster than one process of two threads or two decoding threads sharing Python's lock
(docs/decoding.md). The batches and their sampling seeds are the parent's, so the results are
those of one process."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

if TYPE_CHECKING:
    from .data.batching import ParallelData
    from .search import Hypothesis, SearchOptions
    from .shortlist import Shortlist
    from .translator import Translator


@dataclass(frozen=True)
class Origin:
    """What :func:`seq2seq.translator.load` was given, to load the same translator again in
    another process."""

    paths: tuple[str, ...]
    device: str = "cpu"
    quantize_to: str | None = None
    compile: bool = False
    shortlist: str | Shortlist | None = None

    def load(self) -> Translator:
        from .translator import load

        return load(list(self.paths), self.device, self.quantize_to, self.compile, self.shortlist)


_translator: Translator | None = None  # the one of this worker process


def _start(origin: Origin, threads: int) -> None:
    global _translator
    torch.set_num_threads(threads)
    _translator = origin.load()


def _decode(
    src: list[list[int]], options: SearchOptions, return_attention: bool, seed: int | None
) -> list[list[Hypothesis]]:
    from .data.batching import ParallelData
    from .translator import decode_batch

    t = _translator
    assert t is not None, "worker process not started"
    data = ParallelData(src)
    return decode_batch(
        t.model, data, list(range(len(src))), options, return_attention, t.device, t.restrict, seed
    )


def decode_in_processes(
    origin: Origin,
    data: ParallelData,
    options: SearchOptions,
    batch_size: int,
    return_attention: bool = False,
    processes: int = 2,
    threads: int = 1,
    progress: bool = False,
) -> list[list[Hypothesis]]:
    """n-best lists for every example of ``data``, in the original order, by ``processes``
    spawned processes of ``threads`` intra-op threads each, a batch at a time (the batches of
    :func:`seq2seq.translator.decode_all`, so the results do not depend on ``processes``)."""
    from .translator import decode_jobs

    if processes < 1 or threads < 1:
        raise ValueError(f"processes and threads must be >= 1, got {processes}, {threads}")
    out: list[list[Hypothesis]] = [[] for _ in range(len(data))]
    bar = tqdm(total=len(data), unit="sent", desc="translate", disable=not progress)
    pool = ProcessPoolExecutor(
        processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start,
        initargs=(origin, threads),
    )
    try:
        jobs = {  # handed out in this order as processes become free: the longest first
            pool.submit(_decode, [data.src[i] for i in idx], options, return_attention, seed): idx
            for idx, seed in decode_jobs(data, options, batch_size)
        }
        for job in as_completed(jobs):
            for i, hyps in zip(jobs[job], job.result()):
                out[i] = hyps
            bar.update(len(jobs[job]))
    finally:
        pool.shutdown(cancel_futures=True)
        bar.close()
    return out


def origin_of(paths, device, quantize_to: str | None, compile: bool) -> Origin:
    """The :class:`Origin` of a ``load`` call (paths as given: a file, a run directory, or
    several); :meth:`Translator.use_shortlist` fills in the shortlist."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    return Origin(tuple(str(p) for p in items), str(device), quantize_to, compile)
