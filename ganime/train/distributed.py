"""Data-parallel training across processes started by ``torchrun``.

``torchrun --nproc_per_node N -m ganime train ...`` starts N copies of ``ganime train``
with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment; each becomes one
rank of a process group (NCCL on CUDA, gloo on CPU). The generator trains inside
``DistributedDataParallel``. The discriminators average their gradients here, after
each backward: their step calls them several times and takes a gradient of their
output with respect to the input (LaMa's R1 penalty), which is outside what
DDP's hooks support. Every rank samples from its own shard of the training frames
with its own seed; rank 0 alone validates, logs and writes weights and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    """Where this process stands among the ranks of a run (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes logs, weights and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """The world ``torchrun`` describes in the environment, or a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def device_for(world: World, device: torch.device) -> torch.device:
    """One GPU per rank on a machine: rank ``LOCAL_RANK`` takes ``cuda:LOCAL_RANK``."""
    if world.distributed and device.type == "cuda":
        return torch.device("cuda", world.local_rank)
    return device


def start(world: World, device: torch.device) -> None:
    """Join the process group (no-op for a single process or one already joined)."""
    if world.distributed and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=world.rank, world_size=world.size)


def finish(world: World, *, together: bool = True) -> None:
    """Leave the process group; ``together``: wait for every rank first (a normal end).

    Rank 0 hosts the rendezvous store. A rank that tears its group down while
    another is still leaving can find the store gone, and gloo aborts the process
    from a C++ destructor instead of raising. Leaving after a barrier closes that
    window; after an error no barrier is tried, since the other ranks may never
    reach it.
    """
    if world.distributed and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()


def broadcast_module(module: nn.Module, world: World) -> None:
    """Every rank starts from rank 0's parameters and buffers."""
    if not world.distributed:
        return
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def average_gradients(module: nn.Module, world: World) -> None:
    """Replace each parameter's gradient by its mean over the ranks."""
    if not world.distributed:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])  # one collective, not one per tensor
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def any_rank(flag: bool, world: World, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any (all ranks stop at the same step)."""
    if not world.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather(obj: object, world: World) -> list[object]:
    """``obj`` of every rank, in rank order (a list of one for a single process)."""
    if not world.distributed:
        return [obj]
    out: list[object] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out
