"""Tree-LSTM sentiment classifier: a label for every node of a tree (Tai et al. 2015, section 4.1)."""

from __future__ import annotations

import torch
from torch import nn

from seqtag.data.tree_batching import IGNORE, TreeBatch
from seqtag.modules.embedders import WordEmbedder
from seqtag.modules.tree_lstm import CELLS
from seqtag.tasks.tree_sentiment.recipe import TreeLSTMModelConfig


class TreeSentimentModel(nn.Module):
    """Word vectors -> Tree-LSTM (binary or Child-Sum) -> softmax over classes at every node.

    Args:
        config: the recipe's ``model`` section (cell, memory size, dropouts).
        words: the word tables (training vocabulary, pretrained-only words).
        num_classes: number of outputs (5 fine-grained, 2 or 3 binary).
    """

    def __init__(self, config: TreeLSTMModelConfig, words: WordEmbedder, num_classes: int) -> None:
        super().__init__()
        self.words = words
        self.input_dropout = nn.Dropout(config.input_dropout)
        self.tree = CELLS[config.cell](words.output_dim, config.memory_size)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.memory_size, num_classes)

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
