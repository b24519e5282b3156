"""Data-parallel training across processes (``torchrun --nproc_per_node=N dancenet train ...``).

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them everything runs as a
single process and none of this costs anything. Backend: gloo on CPU, nccl on CUDA. Only rank 0
writes files; every rank takes its own share of each batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a (possibly one-process) training job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Only the main process writes checkpoints, metrics and models."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: torch.device) -> tuple[DistributedContext, torch.device]:
    """Join the process group torchrun describes in the environment (if any).

    Returns the context and the device this rank should use (``cuda:LOCAL_RANK`` on CUDA).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext(), device
    import torch.distributed as dist

    context = DistributedContext(rank=int(os.environ["RANK"]), world_size=world_size,
                                 local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", context.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return context, device


def all_reduce_max(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Element-wise maximum over ranks (a no-op for one process)."""
    if context.enabled:
        import torch.distributed as dist

        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


def barrier(context: DistributedContext) -> None:
    if context.enabled:
        import torch.distributed as dist

        dist.barrier()


def teardown(context: DistributedContext) -> None:
    """Leave the process group (only when :func:`setup` joined one)."""
    if context.enabled:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
