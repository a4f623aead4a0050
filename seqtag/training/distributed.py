"""Training in several processes with PyTorch's DistributedDataParallel, started by ``torchrun``.

``torchrun --nproc-per-node N seqtag train RECIPE`` starts N processes (ranks) with
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in their
environment; :func:`from_environment` joins them into one process group (gloo on
the CPU, nccl on CUDA GPUs). The recipe's ``training.batch_size`` is the global
batch: every epoch's length-bucketed batches are the same as in one process (the
batch order is seeded alike on every rank), and each batch is split into one
shard per rank, so a run gives the weights of the one-process run with the same
recipe, up to float rounding (and dropout, whose masks are drawn per rank).
Rank 0 alone evaluates, logs, and writes ``metrics.jsonl``, checkpoints and the
model file, and tells the others what it decided.
"""

from __future__ import annotations

import datetime
import gc
import importlib
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from seqtag.devices import resolve_device
from seqtag.errors import SeqtagError

log = logging.getLogger(__name__)


class DistributedError(SeqtagError):
    """Another process of a distributed run died or stopped answering."""


class Processes:
    """The processes of a run and their roles; one process (``world_size`` 1) when not distributed.

    Args:
        rank: this process's number, 0 .. ``world_size - 1``.
        world_size: how many processes train together.
        device: where this process's model lives.
    """

    def __init__(self, rank: int = 0, world_size: int = 1, device: torch.device | None = None) -> None:
        self.rank = rank
        self.world_size = world_size
        self.device = device or torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and logs (rank 0)."""
        return self.rank == 0

    def shard(self, order: Sequence[int]) -> list[int]:
        """This rank's part of a global batch: every ``world_size``-th example (similar lengths on
        every rank, as the batch is sorted by length). Empty when the batch is smaller than the world."""
        return list(order[self.rank :: self.world_size])

    def wrap(self, module: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """``module`` under DistributedDataParallel (gradients averaged across ranks in backward).

        ``find_unused_parameters``: a step may leave some parameters without a gradient (DDP then
        looks for them after each forward pass, which costs a little)."""
        if not self.distributed:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        # Buffers never change in training (the frozen word table, constraint penalties): no
        # broadcast per step.
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, forward_sync_buffers=False,
                                                   find_unused_parameters=find_unused_parameters)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a JSON-like object)."""
        if not self.distributed:
            return value
        box = [value]
        self._collective(dist.broadcast_object_list, box, src=0)
        return box[0]

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any rank (e.g. a Ctrl-C that reached one process first)."""
        if not self.distributed:
            return flag
        tensor = torch.tensor([1.0 if flag else 0.0], device=self.device)
        self._collective(dist.all_reduce, tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())

    def barrier(self) -> None:
        if self.distributed:
            self._collective(dist.barrier)

    def _collective(self, function: Any, *args: Any, **kwargs: Any) -> None:
        try:
            function(*args, **kwargs)
        except (RuntimeError, dist.DistBackendError) as error:
            raise DistributedError(lost_peer(self.rank, error)) from None

    def close(self) -> None:
        """Leave the process group (when this object made it), once; safe to call again.

        Call it when no DistributedDataParallel module is left: the group's gloo threads stop only
        when nothing holds the group any more (see :func:`from_environment`)."""
        if self.distributed and dist.is_initialized():
            gc.collect()  # a module in a reference cycle may still hold the group
            dist.destroy_process_group()


def lost_peer(rank: int, error: BaseException) -> str:
    """The message of a rank whose collective operation failed."""
    return (f"process {rank} of the distributed run lost contact with the others ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); another process probably died, see its "
            "message above. Continue the run with: torchrun ... -m seqtag.cli train --resume RUN_DIR")


def from_environment(device_name: str, timeout_minutes: float = 10.0) -> Processes:
    """The processes of this run: distributed when ``torchrun`` (or another launcher) set
    ``WORLD_SIZE`` > 1, else one process on ``device_name``.

    On CUDA each process takes the GPU ``LOCAL_RANK`` and the group uses nccl; on the CPU gloo.
    A collective operation waits at most ``timeout_minutes`` for the other processes.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world_size <= 1:
        return Processes(0, 1, device)
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = resolve_device(f"cuda:{local_rank}")
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise SeqtagError(f"distributed training runs on CUDA GPUs or CPUs, not on {device}")
    backend = "nccl" if device.type == "cuda" else "gloo"
    # DistributedDataParallel's constructor imports torch._dynamo. Imported while a process group
    # exists, torch._dynamo keeps references to it that destroy_process_group does not drop (torch
    # 2.13), so gloo's worker threads outlive it and still hold finished collectives at interpreter
    # exit; a worker that frees a tensor of Python's then (its barrier's earlier broadcast) needs the
    # GIL of a finalising interpreter and the thread dies with "terminate called without an active
    # exception" (issue 21, about 1 run in 10). Imported before, the group ends with close().
    importlib.import_module("torch._dynamo")

    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return Processes(rank, world_size, device)
