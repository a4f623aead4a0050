"""Devices by name: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``, checked against what this machine has."""

from __future__ import annotations

import torch

from seqtag.errors import SeqtagError

#: The names ``--device`` and ``training.device`` accept (``cuda:N`` for a numbered GPU).
DEVICE_NAMES = ("auto", "cpu", "cuda", "cuda:N", "mps")


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
