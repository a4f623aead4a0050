"""Character-level word encoders: a CNN (Ma & Hovy 2016) and a BiLSTM (Lample et al. 2016).

Both take the distinct words of a batch as a padded character matrix
``(U, L)`` (``U`` distinct words, ``L`` longest word; index 0 is padding) and
return one vector per word ``(U, output_dim)``. Running them on distinct
words instead of every token saves most of their cost.
"""

from __future__ import annotations

import torch
from torch import nn

from seqtag.modules.dropout import Dropout
from seqtag.modules.recurrent import cell as recurrent_cell


class CharCNN(nn.Module):
    """Character embeddings -> dropout -> 1-D convolution -> max-pool over the word.

    Args:
        num_chars: character vocabulary size (index 0 is padding).
        char_dim: character embedding size (Ma & Hovy: 30).
        filters: number of convolution filters, the output size (30).
        kernel_size: filter width in characters (3).
        dropout: dropout on the character embeddings (0.5).
    """

    def __init__(self, num_chars: int, char_dim: int = 30, filters: int = 30, kernel_size: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=0)
        bound = (3.0 / char_dim) ** 0.5
        nn.init.uniform_(self.embedding.weight, -bound, bound)
        with torch.no_grad():
            self.embedding.weight[0].zero_()
        self.dropout = Dropout(dropout)
        self.conv = nn.Conv1d(char_dim, filters, kernel_size, padding=kernel_size // 2)
        self.output_dim = filters

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """``chars`` ``(U, L)`` long -> ``(U, filters)``.

        The convolution runs as one matrix product over all character windows
        (im2col), with the ``nn.Conv1d``'s own weights: for these small inputs
        that is several times faster on a CPU than the convolution kernel.
        """
        length = chars.size(1)
        width = self.conv.kernel_size[0]
        left = self.conv.padding[0]
        embedded = self.dropout(self.embedding(chars))  # (U, L, char_dim)
        padded = nn.functional.pad(embedded, (0, 0, left, left))  # (U, L + 2 * left, char_dim)
        windows = padded.unfold(1, width, 1)[:, :length]  # (U, L, char_dim, width)
        weight = self.conv.weight.reshape(self.conv.out_channels, -1)  # (filters, char_dim * width)
        features = nn.functional.linear(windows.reshape(chars.size(0), length, -1), weight, self.conv.bias)  # (U, L, filters)
        return features.masked_fill(chars.eq(0).unsqueeze(2), float("-inf")).max(dim=1).values


class CharLSTM(nn.Module):
    """Character embeddings -> BiLSTM (or another recurrent cell); the word vector is the last
    forward and backward states.

    Args:
        num_chars: character vocabulary size (index 0 is padding).
        char_dim: character embedding size (Lample et al.: 25).
        hidden_size: RNN size per direction (25); the output has twice this.
        dropout: dropout on the character embeddings.
        cell: the recurrent cell's name (seqtag.modules.recurrent), ``lstm`` by default.
    """

    def __init__(self, num_chars: int, char_dim: int = 25, hidden_size: int = 25, dropout: float = 0.0,
                 cell: str = "lstm") -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, char_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.cell = recurrent_cell(cell)
        self.lstm = self.cell.build(char_dim, hidden_size, bidirectional=True)  # the name model files use
        self.output_dim = 2 * hidden_size

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """``chars`` ``(U, L)`` long -> ``(U, 2 * hidden_size)``."""
        lengths = chars.ne(0).sum(1).clamp(min=1)  # (U,)
        return self.cell.final_states(self.lstm, self.dropout(self.embedding(chars)), lengths)
