"""Multi-process training under ``torchrun``: process group, DDP wrapping, and the few collectives we need.

Without ``WORLD_SIZE`` > 1 in the environment everything here is a no-op for a single process.
Backend: NCCL on CUDA, gloo on CPU. Rank 0 alone evaluates and writes files; the others wait for it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistContext:
    """Join the torchrun process group (if any) and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for but CUDA is not available")
    dev = torch.device(f"cuda:{local}" if cuda and world > 1 else device)
    if world > 1:
        if cuda:
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    return DistContext(rank, local, world, dev)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, ctx: DistContext, ignore: list[str]) -> nn.Module:
    """DDP-wrap ``module`` (identity for one process); parameters named in ``ignore`` are not synchronised.

    The entropy-bottleneck quantiles are ignored because the main loss does not touch them in training
    (their gradients come from the separate aux loss; :func:`average_gradients` syncs those).
    """
    if not ctx.enabled:
        return module
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(module, ignore)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)


def average_gradients(params: list[nn.Parameter], ctx: DistContext) -> None:
    """All-reduce (mean) the gradients of ``params`` across processes."""
    if not ctx.enabled:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(ctx.world_size)


def broadcast_value(value: float, ctx: DistContext) -> float:
    """Rank 0's ``value`` on every process."""
    if not ctx.enabled:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=ctx.device)
    dist.broadcast(t, 0)
    return float(t.item())


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def in_sync(module: nn.Module, ctx: DistContext) -> bool:
    """True if every process holds the same parameters (a broken gradient sync makes them drift apart)."""
    if not ctx.enabled:
        return True
    with torch.no_grad():
        sums = torch.stack([p.detach().double().sum() for p in module.parameters()]).to(ctx.device)
    gathered = [torch.empty_like(sums) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, sums)
    return all(torch.equal(g, gathered[0]) for g in gathered)
