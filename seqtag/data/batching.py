"""Batching shared by every task: length-bucketed batch order, padding of index lists, and moving a
batch to a device.

PyTorch is imported by the functions that need it: the batch order of prediction and
:func:`pad_array` serve the PyTorch-free prediction path (:mod:`seqtag.tasks.tagging.lite`) too."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

B = TypeVar("B")


def length_batches(
    lengths: Sequence[int], batch_size: int, generator: torch.Generator | None = None, max_tokens: int | None = None
) -> list[list[int]]:
    """Group indices into batches of similar length.

    Without ``generator``: sorted by length (for prediction). With it: sorted
    by length plus random jitter, cut into batches, and the batches shuffled,
    so epochs differ but each batch pads little. ``max_tokens`` (prediction) also
    ends a sorted batch before its padded size, rows times the longest length,
    passes that many tokens, so long sentences come in smaller batches and memory
    stays bounded whatever ``batch_size`` is.
    """
    if generator is None:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    else:
        import torch

        noise = torch.rand(len(lengths), generator=generator).tolist()
        order = sorted(range(len(lengths)), key=lambda i: lengths[i] + 4.0 * noise[i])
    if max_tokens is None or generator is not None:
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    else:
        batches, current = [], []
        for i in order:  # ascending lengths: the newest index is the longest of its batch
            if current and (len(current) >= batch_size or (len(current) + 1) * lengths[i] > max_tokens):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
    if generator is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def pad_array(rows: Sequence[Sequence[int]], width: int | None = None) -> np.ndarray:
    """``(len(rows), width)`` int64 array of the rows, left-aligned, zeros after each row's end.

    ``width`` defaults to the longest row (at least 1); one array constructor for all values.
    """
    sizes = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))  # (B,)
    if width is None:
        width = max(1, int(sizes.max())) if len(rows) else 1
    out = np.zeros((len(rows), width), dtype=np.int64)
    out[np.arange(width)[None, :] < sizes[:, None]] = np.fromiter(chain.from_iterable(rows), dtype=np.int64)
    return out


def pad(rows: Sequence[Sequence[int]], width: int | None = None) -> torch.Tensor:
    """``(len(rows), width)`` long tensor of the rows, left-aligned, zeros after each row's end
    (:func:`pad_array`, whose memory the tensor shares).

    ``width`` defaults to the longest row (at least 1).
    """
    import torch

    return torch.from_numpy(pad_array(rows, width))


def to_device(batch: B, device: torch.device) -> B:
    """``batch`` (a dataclass of tensors, lists of such dataclasses, and plain values) with every
    tensor on ``device``; the batch itself when it is there already. Copies to a GPU are
    asynchronous from pinned memory."""
    if device.type == "cpu":
        return batch
    return _moved(batch, device)


def _moved(value: Any, device: torch.device) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _moved(getattr(value, f.name), device)
                                             for f in dataclasses.fields(value) if f.init})
    if isinstance(value, list):
        return [_moved(item, device) for item in value]
    return value
