"""Helpers for training on several processes (``torchrun``) with DistributedDataParallel.

One process per device. ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; without them everything runs as a single process and
these helpers do nothing. The backend is NCCL on CUDA and Gloo on the CPU. Only rank 0
logs, writes checkpoints and saves the model folder (``is_main``).

Example (two GPUs on one machine)::

    torchrun --nproc-per-node 2 -m training.cli detector --config training/configs/detector.json
"""

from __future__ import annotations

import os
from collections.abc import Sized
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from core.device import choose_device


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands.

    rank: 0..world_size-1 over all machines; local_rank: index on this machine;
    device: the torch device this process trains on.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the one process that logs and saves."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the environment ``torchrun`` sets; (0, 1, 0) alone."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, world, local


def init_distributed(device: str = "auto", *, timeout_s: float = 300.0) -> DistInfo:
    """Start the process group when launched by ``torchrun`` (or any launcher that sets
    the same variables) and choose this process's device.

    ``device`` is as for ``core.device.choose_device``; on CUDA, process ``local_rank``
    takes GPU ``local_rank``. Calling it again in an initialised process returns the
    same answer without re-initialising.
    """
    rank, world, local = env_world()
    chosen = choose_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(chosen)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        dist.init_process_group(
            backend=backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s)
        )
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=chosen)


def cleanup() -> None:
    """Leave the process group (no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def wrap_model(model: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """``model`` on ``info.device``, inside DistributedDataParallel when distributed."""
    model = model.to(info.device)
    if not info.distributed:
        return model
    if info.device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[info.device.index])
    return DistributedDataParallel(model)


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a DDP wrapper (for saving and evaluation)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def make_sampler(
    dataset: Sized, info: DistInfo, *, shuffle: bool, seed: int
) -> DistributedSampler | None:
    """A DistributedSampler that gives each process its own share of ``dataset``
    (``set_epoch`` reshuffles it each epoch), or None when not distributed."""
    if not info.distributed:
        return None
    return DistributedSampler(
        dataset,  # type: ignore[arg-type]
        num_replicas=info.world_size,
        rank=info.rank,
        shuffle=shuffle,
        seed=seed,
        drop_last=True,
    )


def all_reduce_mean(value: torch.Tensor | float, info: DistInfo) -> float:
    """Mean of a scalar over all processes (the value itself when not distributed)."""
    t = torch.as_tensor(value, dtype=torch.float64, device=info.device).detach().clone()
    if info.distributed:
        if info.device.type != "cuda":
            t = t.cpu()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t = t / info.world_size
    return float(t.item())


def broadcast_object(obj: object, info: DistInfo) -> object:
    """``obj`` of rank 0 on every process."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
