"""Character-level word encoders: a CNN (Ma & Hovy 2016), a wide funnel CNN (IntNet, Xin et al. 2018)
and a BiLSTM (Lample et al. 2016).

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


def uniform_char_embedding(num_chars: int, char_dim: int) -> nn.Embedding:
    """Character embeddings initialised uniformly in +-sqrt(3 / dim) (Ma & Hovy), padding row 0 zero."""
    embedding = nn.Embedding(num_chars, char_dim, padding_idx=0)
    bound = (3.0 / char_dim) ** 0.5
    nn.init.uniform_(embedding.weight, -bound, bound)
    with torch.no_grad():
        embedding.weight[0].zero_()
    return embedding


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
        self.embedding = uniform_char_embedding(num_chars, char_dim)
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


class CharIntNet(nn.Module):
    """A wide, densely connected character CNN in the manner of IntNet (Xin et al. 2018).

    Character embeddings -> dropout -> a first convolution (``kernel_size``) -> ``blocks`` blocks,
    each a 1x1 "funnel" convolution down to ``filters`` channels followed by convolutions of every
    width in ``widths`` whose outputs are concatenated to the block's input (dense connections) ->
    max-pool over the word of everything. Padding positions are zeroed before every convolution and
    excluded from the pooling, so a word's vector does not depend on the batch's longest word.

    Args:
        num_chars: character vocabulary size (index 0 is padding).
        char_dim: character embedding size.
        filters: channels of the first convolution, of each funnel and of each width's convolution.
        kernel_size: width of the first convolution.
        blocks: funnel blocks.
        widths: convolution widths in each block (odd, so the output keeps the word's length).
        dropout: dropout on the character embeddings.

    The output has ``filters * (1 + blocks * len(widths))`` features.
    """

    def __init__(self, num_chars: int, char_dim: int = 30, filters: int = 30, kernel_size: int = 3, blocks: int = 2,
                 widths: tuple[int, ...] = (3, 5), dropout: float = 0.5) -> None:
        super().__init__()
        if any(width % 2 == 0 for width in (kernel_size, *widths)):
            raise ValueError(f"IntNet convolution widths must be odd, not {(kernel_size, *widths)}")
        self.embedding = uniform_char_embedding(num_chars, char_dim)
        self.dropout = Dropout(dropout)
        self.first = nn.Conv1d(char_dim, filters, kernel_size, padding=kernel_size // 2)
        self.funnels = nn.ModuleList()
        self.convolutions = nn.ModuleList()
        size = filters
        for _ in range(blocks):
            self.funnels.append(nn.Conv1d(size, filters, 1))
            self.convolutions.append(nn.ModuleList(nn.Conv1d(filters, filters, w, padding=w // 2) for w in widths))
            size += filters * len(widths)
        self.output_dim = size

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """``chars`` ``(U, L)`` long -> ``(U, output_dim)``."""
        real = chars.ne(0).unsqueeze(1)  # (U, 1, L)
        embedded = self.dropout(self.embedding(chars)).transpose(1, 2)  # (U, char_dim, L)
        features = torch.relu(self.first(embedded)) * real  # (U, F, L)
        for funnel, convolutions in zip(self.funnels, self.convolutions, strict=True):
            narrow = torch.relu(funnel(features)) * real  # (U, F, L)
            features = torch.cat([features, *(torch.relu(conv(narrow)) * real for conv in convolutions)], dim=1)
        return features.masked_fill(~real, float("-inf")).max(dim=2).values  # (U, output_dim)


class Highway(nn.Module):
    """Highway layers (Srivastava et al. 2015): ``y = g * relu(W x) + (1 - g) * x``, ``g = sigmoid(W_g x)``,
    with the gate biased towards carrying ``x`` at the start (bias -1). Shape-preserving ``(..., D)``."""

    def __init__(self, size: int, layers: int = 1) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(size, 2 * size) for _ in range(layers))
        for layer in self.layers:
            nn.init.constant_(layer.bias[size:], -1.0)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            transform, gate = layer(inputs).chunk(2, dim=-1)
            gate = torch.sigmoid(gate)
            inputs = gate * torch.relu(transform) + (1.0 - gate) * inputs
        return inputs


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
