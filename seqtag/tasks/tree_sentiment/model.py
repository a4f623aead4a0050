"""Tree-LSTM sentiment classifier: a label for every node of a tree (Tai et al. 2015, section 4.1)."""

from __future__ import annotations

import torch
from torch import nn

from seqtag.data.tree_batching import IGNORE, TreeBatch
from seqtag.modules.embedders import WordEmbedder
from seqtag.modules.tree_lstm import CELLS


class TreeSentimentModel(nn.Module):
    """Word vectors -> Tree-LSTM (binary or Child-Sum) -> softmax over classes at every node.

    Args:
        cell: ``binary`` or ``childsum``.
        memory: Tree-LSTM memory (hidden) size.
        num_trainable_words / num_frozen_words / word_dim: the two word tables (see WordEmbedder).
        num_classes: 5 (fine-grained) or 2 (binary).
        dropout: on node states before the classifier.
        input_dropout: on word vectors.
        fine_tune: whether the trainable word table is updated.
    """

    def __init__(
        self,
        cell: str,
        memory: int,
        num_trainable_words: int,
        num_frozen_words: int,
        word_dim: int,
        num_classes: int,
        dropout: float = 0.5,
        input_dropout: float = 0.0,
        fine_tune: bool = True,
    ) -> None:
        super().__init__()
        self.words = WordEmbedder(
            torch.zeros(num_trainable_words, word_dim), torch.zeros(num_frozen_words, word_dim), fine_tune
        )
        self.input_dropout = nn.Dropout(input_dropout)
        self.tree = CELLS[cell](word_dim, memory)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(memory, num_classes)

    def forward(self, batch: TreeBatch) -> torch.Tensor:
        """Class scores ``(N, num_classes)`` of every node, in node-table order (row r at r - 1)."""
        x = self.input_dropout(self.words(batch.word_ids.unsqueeze(0)).squeeze(0))  # (W, word_dim)
        h, _ = self.tree(batch, x)  # (N + 1, memory)
        return self.output(self.dropout(h[1:]))  # (N, C)

    def loss(self, batch: TreeBatch, reduction: str = "sum") -> torch.Tensor:
        """Cross-entropy summed over all labelled nodes; ``mean`` divides by the number of trees."""
        scores = self(batch)  # (N, C)
        loss = nn.functional.cross_entropy(scores, batch.labels, ignore_index=IGNORE, reduction="sum")
        return loss / batch.num_trees if reduction == "mean" else loss
