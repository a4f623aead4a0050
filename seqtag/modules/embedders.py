"""Token-level embedders: words (pretrained, split trainable/frozen) and casing features."""

from __future__ import annotations

import functools

import torch
from torch import nn

CASINGS = ("pad", "numeric", "mainly_numeric", "all_lower", "all_upper", "initial_upper", "contains_digit", "other")


@functools.lru_cache(maxsize=1 << 16)  # a pure function of the word, called for every token
def casing(word: str) -> int:
    """Casing class of ``word`` (Reimers & Gurevych 2017), an index into :data:`CASINGS`."""
    if word.isdigit():
        return 1
    digits = sum(map(str.isdigit, word))
    if digits / max(len(word), 1) > 0.5:
        return 2
    if word.islower():
        return 3
    if word.isupper():
        return 4
    if word[:1].isupper():
        return 5
    if digits:
        return 6
    return 7


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
