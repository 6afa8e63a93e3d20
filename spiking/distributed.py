"""Scale-out with torch.distributed: shard samples over processes, gather results.

Launch any sample-parallel job with torchrun; each process simulates its share
of the samples (instances are independent), and the results are gathered in
sample order, so the outcome equals a single-process run with the same seed:

    torchrun --nproc_per_node=K -m spiking train CONFIG --out DIR     # one machine
    torchrun --nnodes=M --node_rank=R --nproc_per_node=K \\
             --rdzv_backend=c10d --rdzv_endpoint=HOST:PORT -m spiking train ...   # a cluster

The backend is NCCL when every process has a CUDA device, gloo otherwise (CPU
runs and CI). Every collective has a timeout (``SPIKING_DIST_TIMEOUT`` seconds,
default 300), so a missing peer ends in an error, not a hang.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Callable, List, Sequence

import numpy as np

from spiking.errors import SpikingError

ENV_KEYS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_CONTEXT = Context()


def timeout_s() -> float:
    return float(os.environ.get("SPIKING_DIST_TIMEOUT", "300"))


def init_from_env() -> Context:
    """Join the process group that torchrun describes in the environment.

    Without WORLD_SIZE (or with WORLD_SIZE=1) this is a single-process run.
    Missing or inconsistent settings raise a SpikingError naming them.
    """
    global _CONTEXT
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        _CONTEXT = Context()
        return _CONTEXT
    missing = [k for k in ENV_KEYS if not os.environ.get(k)]
    if missing:
        raise SpikingError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: start the job "
                           f"with torchrun (see spiking/distributed.py) or unset WORLD_SIZE")
    rank = int(os.environ["RANK"])
    if not 0 <= rank < world:
        raise SpikingError(f"RANK={rank} is outside WORLD_SIZE={world}")
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_nccl = torch.cuda.is_available() and torch.cuda.device_count() > local_rank
    if use_nccl:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        try:
            dist.init_process_group("nccl" if use_nccl else "gloo",
                                    timeout=datetime.timedelta(seconds=timeout_s()))
        except Exception as e:  # rendezvous failures come in many types
            raise SpikingError(f"could not join the process group (rank {rank} of {world} at "
                               f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}): {e}") from None
    if dist.get_world_size() != world:
        raise SpikingError(f"WORLD_SIZE={world} but the process group has {dist.get_world_size()}")
    _CONTEXT = Context(rank, world, local_rank)
    return _CONTEXT


def context() -> Context:
    return _CONTEXT


def shard(n_samples: int, ctx: Context | None = None) -> np.ndarray:
    """The sample indices this process handles: contiguous, nearly equal blocks."""
    ctx = ctx or _CONTEXT
    bounds = np.linspace(0, n_samples, ctx.world_size + 1).round().astype(int)
    return np.arange(bounds[ctx.rank], bounds[ctx.rank + 1])


def gather_rows(local: np.ndarray, n_samples: int, ctx: Context | None = None) -> np.ndarray:
    """Concatenate every process's rows (its :func:`shard`, in order) on every process."""
    ctx = ctx or _CONTEXT
    local = np.ascontiguousarray(local)
    if not ctx.active:
        return local
    import torch
    import torch.distributed as dist

    counts = np.diff(np.linspace(0, n_samples, ctx.world_size + 1).round().astype(int))
    if local.shape[0] != counts[ctx.rank]:
        raise SpikingError(f"rank {ctx.rank} has {local.shape[0]} rows, expected {counts[ctx.rank]}")
    width = int(np.prod(local.shape[1:])) if local.ndim > 1 else 1
    longest = int(counts.max())
    buffer = np.zeros((longest, width), dtype=np.float64)
    buffer[: local.shape[0]] = local.reshape(local.shape[0], width)
    tensor = _tensor(buffer, ctx)
    parts = [torch.empty_like(tensor) for _ in range(ctx.world_size)]
    _wait(dist.all_gather(parts, tensor, async_op=True), "all_gather")
    rows = [p.cpu().numpy()[:c] for p, c in zip(parts, counts)]
    out = np.concatenate(rows).reshape((n_samples,) + local.shape[1:])
    return out.astype(local.dtype)


def map_samples(fn: Callable[[Sequence[int]], np.ndarray], n_samples: int,
                ctx: Context | None = None) -> np.ndarray:
    """``fn(indices) -> rows`` on this process's shard, gathered in sample order."""
    ctx = ctx or _CONTEXT
    return gather_rows(fn(shard(n_samples, ctx)), n_samples, ctx)


def _wait(work, what: str) -> None:
    """Wait for an asynchronous collective, at most SPIKING_DIST_TIMEOUT seconds."""
    try:
        finished = work.wait(timeout=datetime.timedelta(seconds=timeout_s()))
    except RuntimeError as e:   # gloo reports a timeout (or a peer that left) as an error
        raise SpikingError(f"{what} failed after waiting up to {timeout_s():g} s "
                           f"(SPIKING_DIST_TIMEOUT): a process is missing or stuck ({e})") from None
    if finished is False:
        raise SpikingError(f"{what} timed out after {timeout_s():g} s (SPIKING_DIST_TIMEOUT): "
                           f"a process is missing or stuck")


def _tensor(values, ctx: Context):
    """A float64 tensor of ``values`` on the device the process group's backend uses."""
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", ctx.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")
    return torch.as_tensor(np.asarray(values, np.float64)).to(device)


def reduce(value: float, op: str = "max", ctx: Context | None = None) -> float:
    """``value`` combined over all processes: ``max``, ``min`` or ``sum``."""
    ctx = ctx or _CONTEXT
    if not ctx.active:
        return float(value)
    import torch.distributed as dist

    tensor = _tensor([value], ctx)
    ops = {"max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN, "sum": dist.ReduceOp.SUM}
    _wait(dist.all_reduce(tensor, op=ops[op], async_op=True), f"all_reduce ({op})")
    return float(tensor.cpu()[0])


def all_true(flag: bool, ctx: Context | None = None) -> bool:
    """Whether ``flag`` holds on every process (so that all take the same branch)."""
    return reduce(1.0 if flag else 0.0, "min", ctx) > 0.5


def broadcast(array: np.ndarray, src: int = 0, ctx: Context | None = None) -> np.ndarray:
    """Process ``src``'s ``array`` on every process (same shape everywhere; values
    exact when float64 holds them: counts, float32 weights)."""
    ctx = ctx or _CONTEXT
    if not ctx.active:
        return array
    import torch.distributed as dist

    tensor = _tensor(array, ctx)
    _wait(dist.broadcast(tensor, src, async_op=True), "broadcast")
    return tensor.cpu().numpy().astype(np.asarray(array).dtype)


def barrier(ctx: Context | None = None) -> None:
    """Wait for every process (at most SPIKING_DIST_TIMEOUT seconds)."""
    ctx = ctx or _CONTEXT
    if ctx.active:
        import torch.distributed as dist
        _wait(dist.barrier(async_op=True), "barrier")


def shutdown() -> None:
    import sys

    if "torch.distributed" in sys.modules:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
