"""Token-level embedders: words (pretrained, split trainable/frozen) and casing features (the casing
classes, :func:`~seqtag.data.vocab.casing`, are the data layer's: the PyTorch-free prediction path uses them too)."""

from __future__ import annotations

import torch
from torch import nn

from seqtag.data.vocab import CASINGS, casing

__all__ = ["CASINGS", "WordEmbedder", "casing"]


class WordEmbedder(nn.Module):
    """Word vectors in two tables: trainable rows for the training vocabulary,
    frozen rows for words only the pretrained vectors know.

    Indices ``< num_trainable`` select the trainable table, the rest the frozen
    one, so a word never seen in training still gets its pretrained vector
    while the optimiser only touches ``num_trainable`` rows.

    Args:
        trainable: initial ``(num_trainable, dim)`` weights (row 0 padding).
        frozen: ``(num_frozen, dim)`` pretrained rows, possibly empty.
        fine_tune: whether the trainable table is updated at all.
    """

    def __init__(self, trainable: torch.Tensor, frozen: torch.Tensor, fine_tune: bool = True) -> None:
        super().__init__()
        self.num_trainable = trainable.size(0)
        self.embedding = nn.Embedding.from_pretrained(trainable, freeze=not fine_tune, padding_idx=0)
        self.register_buffer("frozen", frozen.contiguous())
        self.output_dim = trainable.size(1)

    @classmethod
    def create(cls, num_trainable: int, num_frozen: int, dim: int, fine_tune: bool = True, random: bool = True) -> "WordEmbedder":
        """Tables of the given sizes before any pretrained vector is copied in: the trainable one
        uniform in ``[-sqrt(3 / dim), sqrt(3 / dim)]`` (unit variance) or, without ``random``, zero;
        the frozen one zero."""
        if random:
            bound = (3.0 / dim) ** 0.5
            trainable = torch.empty(num_trainable, dim).uniform_(-bound, bound)
        else:
            trainable = torch.zeros(num_trainable, dim)
        return cls(trainable, torch.zeros(num_frozen, dim), fine_tune)

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        """``words`` ``(B, T)`` long -> ``(B, T, dim)``."""
        known = words < self.num_trainable
        if self.frozen.size(0) == 0 or bool(known.all()):
            return self.embedding(words)
        trained = self.embedding(words.clamp(max=self.num_trainable - 1))
        frozen = nn.functional.embedding(
            (words - self.num_trainable).clamp(min=0), self.frozen
        ).to(trained.dtype)  # a table loaded from a model file stays in half precision: only the rows looked up widen
        return torch.where(known.unsqueeze(-1), trained, frozen)
