"""Dropout that draws its mask with ``torch.rand`` (about twice as fast on CPU as ``bernoulli_``), per element
or locked over time steps."""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Dropout):
    """Inverted dropout, a drop-in replacement for :class:`torch.nn.Dropout` (same state dict)."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return inputs
        keep = torch.rand_like(inputs) >= self.p
        return inputs * keep * (1.0 / (1.0 - self.p))


class LockedDropout(nn.Module):
    """Variational ("locked") dropout (Gal & Ghahramani 2016; Merity et al. 2018): one mask per
    sequence and feature, the same at every time step. Inputs ``(B, T, D)``; no parameters."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return inputs
        keep = torch.rand(inputs.size(0), 1, inputs.size(2), device=inputs.device, dtype=inputs.dtype) >= self.p  # (B, 1, D)
        return inputs * keep * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"
