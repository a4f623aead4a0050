"""Devices by name: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``, checked against what this machine has."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from seqtag.errors import SeqtagError

#: The names ``--device`` and ``training.device`` accept (``cuda:N`` for a numbered GPU).
DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")


class _SkipInitOnMeta(TorchFunctionMode):
    """Turns in-place operations on meta tensors (``normal_``, ``uniform_``, ``fill_``... the
    initialisers of modules) into no-ops: meta tensors hold no values to set, and PyTorch's meta
    ``normal_`` alone imports about 800 modules (seconds) on first use."""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        target = args[0] if args else kwargs.get("tensor")
        if name.endswith("_") and not name.startswith("_") and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


@contextlib.contextmanager
def on_meta_device() -> Iterator[None]:
    """Build modules on PyTorch's ``meta`` device: shapes only, no memory, no initialisation."""
    with torch.device("meta"), _SkipInitOnMeta():
        yield


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The device called ``name``: ``auto`` (or None) is the first CUDA GPU when there is one, else
    Apple's ``mps`` when there is one, else the CPU. A device this machine lacks is a SeqtagError
    that says what it has."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise SeqtagError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_NAMES)}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SeqtagError(f"device {name}: this machine has no CUDA GPU ({available()})")
        index = 0 if device.index is None else device.index
        if index >= count:
            raise SeqtagError(f"device {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
        return torch.device("cuda", index)
    if device.type == "mps" and not _mps_available():
        raise SeqtagError(f"device {name}: this machine has no Apple GPU ({available()})")
    if device.type not in ("cpu", "cuda", "mps"):
        raise SeqtagError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_NAMES)}")
    return device


#: Calls on fewer tokens than this run on one thread (see :func:`threads_for`).
SMALL_CALL_TOKENS = 2000


@contextlib.contextmanager
def threads_for(tokens: int) -> Iterator[None]:
    """Run a prediction of ``tokens`` tokens on one thread when it is small, else on the configured
    threads. Waking the other threads costs more than they save on a small call, and on a machine
    whose other cores are busy, OpenMP threads that spin for their share turn a 1 ms call into a
    300 ms one (measured: ``tag()`` of two sentences with one core busy, 1.1 ms on one thread
    against 371 ms on two)."""
    previous = torch.get_num_threads()
    if tokens >= SMALL_CALL_TOKENS or previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads in this process (None: leave PyTorch's choice, all cores)."""
    if threads is not None:
        if threads < 1:
            raise SeqtagError(f"threads is {threads}; it must be at least 1")
        torch.set_num_threads(threads)


def available() -> str:
    """The devices this machine has, in words (for messages)."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return "available: " + ", ".join(names)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
