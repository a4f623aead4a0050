"""The network of a language-model run: :class:`~seqtag.modules.language_model.LanguageModel` as the recipe
describes it, and the batches of truncated back-propagation through time it trains on."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seqtag.modules.language_model import LanguageModel
from seqtag.tasks.language_model.recipe import LanguageModelRecipe


@dataclass
class LMWindow:
    """One window of ``B`` parallel streams, read in one direction.

    inputs: ``(B, T)`` symbol ids read.
    targets: ``(B, T)`` the symbol each input is followed by (in the reading direction).
    mask: ``(B, T)`` bool, False on padding (at the ends of streams shorter than the others).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return int(self.mask.sum())


@dataclass
class LMBatch:
    """The ``window``-th window of a pass over a text, in every direction the model reads.

    A window's streams continue the streams of window ``window - 1``: the task hands the
    final states of one window to the next (window 0 starts from zero states).
    """

    window: int
    forward: LMWindow | None = None
    backward: LMWindow | None = None
    #: Which of the pass's streams the rows are (a distributed run's process reads some of them).
    streams: tuple[int, ...] = ()

    def __len__(self) -> int:
        """Symbols predicted in one direction (the tokens of throughput figures)."""
        part = self.forward if self.forward is not None else self.backward
        return 0 if part is None else len(part)

    def part(self, direction: str) -> LMWindow:
        found = self.forward if direction == "forward" else self.backward
        if found is None:
            raise ValueError(f"the batch has no {direction} window")
        return found


def build_model(recipe: LanguageModelRecipe, vocab_size: int) -> LanguageModel:
    """A fresh network for ``vocab_size`` symbols with the recipe's ``model`` settings."""
    config = recipe.model
    return LanguageModel(vocab_size, config.embedding_dim, config.hidden_size, config.num_layers, config.cell,
                         config.direction, config.dropout, config.tie_weights)
