"""Batching shared by every task: length-bucketed batch order and padding of index lists."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

import torch


def length_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator | None = None) -> list[list[int]]:
    """Group indices into batches of similar length.

    Without ``generator``: sorted by length (for prediction). With it: sorted
    by length plus random jitter, cut into batches, and the batches shuffled,
    so epochs differ but each batch pads little.
    """
    if generator is None:
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    else:
        noise = torch.rand(len(lengths), generator=generator).tolist()
        order = sorted(range(len(lengths)), key=lambda i: lengths[i] + 4.0 * noise[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if generator is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def pad(rows: Sequence[Sequence[int]], width: int | None = None) -> torch.Tensor:
    """``(len(rows), width)`` long tensor of the rows, left-aligned, zeros after each row's end.

    ``width`` defaults to the longest row (at least 1); one tensor constructor for all values.
    """
    sizes = torch.tensor([len(row) for row in rows], dtype=torch.long)  # (B,)
    if width is None:
        width = max(1, int(sizes.max())) if len(rows) else 1
    out = torch.zeros(len(rows), width, dtype=torch.long)
    out[torch.arange(width).unsqueeze(0) < sizes.unsqueeze(1)] = torch.tensor(list(chain.from_iterable(rows)), dtype=torch.long)
    return out
