"""Multi-process training with PyTorch DistributedDataParallel, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m seq2seq train CONFIG`` starts N processes; each reads RANK,
WORLD_SIZE and LOCAL_RANK from its environment. GPUs use NCCL (one device per local rank), CPUs
use gloo. Every rank sees the same batch list for an epoch and takes every WORLD_SIZE-th batch;
rank 0 alone validates and writes checkpoints and logs; stop decisions are shared by all-reduce.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA (device ``local_rank``) when available, else CPU."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device: 'cuda' was asked for but no CUDA device is available")
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(device_preference: str = "auto") -> Context:
    """Joins the process group when started by torchrun (WORLD_SIZE > 1), else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_preference, local)
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(rank, world, local, device)


def shard(batches: list[list[int]], ctx: Context) -> list[list[int]]:
    """This rank's share of an epoch's batches; every rank gets the same number."""
    if not ctx.distributed:
        return batches
    usable = len(batches) // ctx.world_size * ctx.world_size
    return batches[ctx.rank : usable : ctx.world_size]


def any_rank(flags: list[bool], ctx: Context) -> list[bool]:
    """Element-wise OR of boolean flags over all ranks."""
    if not ctx.distributed:
        return flags
    t = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(x) for x in t.tolist()]


def broadcast(obj: object, ctx: Context) -> object:
    """Rank 0's ``obj`` on every rank (plain data: tokenizer states, vocabularies)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def teardown(ctx: Context, finished: bool = True) -> None:
    """Leaves the process group. After a normal finish every rank first waits for the others, so
    that none closes its connections while a peer still has collectives in flight (gloo's worker
    threads then abort the process at exit); after an error there is no wait, as the other ranks
    may never arrive."""
    if ctx.distributed and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
