"""torch.distributed for ``torchrun``: process group setup, the rank's share of videos, a barrier
that cannot hang when one rank fails.

Runs launched with ``torchrun --nproc-per-node N [--nnodes M ...]`` get ``RANK``, ``WORLD_SIZE``
and ``LOCAL_RANK`` in the environment; a plain ``python``/``visrepro`` run is world size 1 and
touches no process group at all. The backend is NCCL for CUDA devices and gloo on CPU.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch

__all__ = ["DistInfo", "agree", "init_distributed", "shard", "shutdown"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """This process's place: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> tuple[DistInfo, str]:
    """Join the process group when launched by torchrun; returns ``(info, device for this rank)``.

    ``device="cuda"`` becomes ``cuda:<LOCAL_RANK>`` under torchrun.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda")
    backend = "nccl" if cuda else "gloo"
    if cuda:
        device = f"cuda:{local}"
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend)
    log.info("rank %d/%d (local %d) on %s, backend %s", rank, world, local, device, backend)
    return DistInfo(rank, world, local, backend), device


def shard(items: Sequence[T], info: DistInfo) -> list[T]:
    """Round-robin share of ``items`` (dataset order) for this rank: ``items[rank::world_size]``."""
    return list(items[info.rank :: info.world_size])


def agree(ok: bool, info: DistInfo) -> bool:
    """A barrier that also tells every rank whether all ranks got here successfully.

    A rank that failed calls it with ``ok=False`` before re-raising, so the others stop waiting
    and learn of the failure instead of hanging in a plain barrier.
    """
    if not info.active:
        return ok
    import torch.distributed as dist

    dev = torch.device("cuda", torch.cuda.current_device()) if info.backend == "nccl" else torch.device("cpu")
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=dev)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def shutdown(info: DistInfo) -> None:
    """Leave the process group (no-op for a single process)."""
    if info.active:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
