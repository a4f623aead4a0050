"""Tree-LSTMs (Tai, Socher & Manning 2015), evaluated level by level.

A batch of trees is flattened into one node table ordered by *height* (the
length of the longest path down to a leaf): all leaves of all trees first,
then every node whose children are leaves, and so on. A node's children
always have a smaller height, so each height is one *level* that is computed
with a few tensor operations for all its nodes at once, across all trees of
the batch. The number of Python steps is the height of the tallest tree, not
the number of nodes.

Row 0 of the node table is a zero state that stands for a missing child, so
padded children lists need no masking: a zero ``c`` contributes nothing to
the memory cell whatever its forget gate.

Batches come from :class:`seqtag.data.tree_batching.TreeBatch`, which builds
the node table and its levels from the trees' structure.
"""

from __future__ import annotations

import torch
from torch import nn

from seqtag.data.tree_batching import TreeBatch


class _TreeLSTM(nn.Module):
    """Shared driver: input projections once, then one step per level."""

    gates: int  # number of H-sized gate blocks the input projection produces

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.W = nn.Linear(input_size, self.gates * hidden_size, bias=False)

    def forward(self, batch: TreeBatch, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """States of every node.

        Args:
            batch: the trees.
            inputs: ``(W, input_size)`` vectors of ``batch.word_ids`` (one per word-bearing node).

        Returns:
            ``h`` and ``c``, each ``(N + 1, hidden_size)`` in node-table order; row 0 is zeros.
        """
        if inputs.size(0) != batch.word_ids.size(0):
            raise ValueError(f"{inputs.size(0)} input vectors for {batch.word_ids.size(0)} word-bearing nodes")
        projected = self.W(inputs)  # (W, gates * H)
        # With autograd, the states grow by concatenation (its backward only takes views of the
        # gradient); without, each level is written into preallocated tables (no copying).
        growing = torch.is_grad_enabled()
        rows = 1 if growing else batch.num_nodes + 1
        h_all = inputs.new_zeros(rows, self.hidden_size)  # (N + 1, H) when complete
        c_all = inputs.new_zeros(rows, self.hidden_size)
        for level in batch.levels:
            size = level.end - level.start
            if level.all_words:
                x = projected.index_select(0, level.word_index)  # (L, gates * H)
            elif level.word_rows.numel():
                x = projected.new_zeros(size, projected.size(1)).index_copy(
                    0, level.word_rows, projected.index_select(0, level.word_index)
                )
            else:
                x = None
            if level.children.size(1) == 0:
                h, c = self.leaf(x, size)
            else:
                h, c = self.node(x, h_all[level.children], c_all[level.children])
            if growing:
                h_all = torch.cat([h_all, h])
                c_all = torch.cat([c_all, c])
            else:
                h_all[level.start : level.end] = h
                c_all[level.start : level.end] = c
        return h_all, c_all

    def leaf(self, x: torch.Tensor | None, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def node(
        self, x: torch.Tensor | None, child_h: torch.Tensor, child_c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class ChildSumTreeLSTM(_TreeLSTM):
    """Child-Sum Tree-LSTM: any number of unordered children, one forget gate per child.

    For node j with input x_j and children k (Tai et al. 2015, eq. 2-8)::

        h~ = sum_k h_k
        i, o, u = sigma(W_i x + U_i h~ + b_i), sigma(W_o x + U_o h~ + b_o), tanh(W_u x + U_u h~ + b_u)
        f_k = sigma(W_f x + U_f h_k + b_f)
        c = i * u + sum_k f_k * c_k ;  h = o * tanh(c)

    Nodes without a word (constituency internal nodes) have x = 0.
    """

    gates = 4  # i, o, u | f

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.U_iou = nn.Linear(hidden_size, 3 * hidden_size)
        self.U_f = nn.Linear(hidden_size, hidden_size)

    def leaf(self, x: torch.Tensor | None, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        assert x is not None, "every leaf reads a word"
        H = self.hidden_size
        i, o, u = (x[:, : 3 * H] + self.U_iou.bias).chunk(3, dim=1)  # (L, H) each
        c = torch.sigmoid(i) * torch.tanh(u)
        return torch.sigmoid(o) * torch.tanh(c), c

    def node(
        self, x: torch.Tensor | None, child_h: torch.Tensor, child_c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # child_h, child_c: (L, K, H); padded children are zero rows
        H = self.hidden_size
        iou = self.U_iou(child_h.sum(dim=1))  # (L, 3H)
        f = self.U_f(child_h)  # (L, K, H)
        if x is not None:
            iou = iou + x[:, : 3 * H]
            f = f + x[:, 3 * H :].unsqueeze(1)
        i, o, u = iou.chunk(3, dim=1)
        c = torch.sigmoid(i) * torch.tanh(u) + (torch.sigmoid(f) * child_c).sum(dim=1)  # (L, H)
        return torch.sigmoid(o) * torch.tanh(c), c


class BinaryTreeLSTM(_TreeLSTM):
    """N-ary Tree-LSTM with N = 2: ordered left/right children, separate weights per position.

    For node j with input x and children h_1 (left), h_2 (right) (Tai et al. 2015, eq. 9-14)::

        i = sigma(W_i x + U_i^1 h_1 + U_i^2 h_2 + b_i)     (o, u likewise; u with tanh)
        f_k = sigma(W_f x + U_f^{k1} h_1 + U_f^{k2} h_2 + b_f)   for k = 1, 2
        c = i * u + f_1 * c_1 + f_2 * c_2 ;  h = o * tanh(c)

    A node with one child uses the left position (the right one is a zero state);
    more than two children is an error.
    """

    gates = 5  # i, o, u, f_1, f_2

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.U = nn.Linear(2 * hidden_size, 5 * hidden_size)  # [h_1; h_2] -> i, o, u, f_1, f_2

    def forward(self, batch: TreeBatch, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for level in batch.levels:
            if level.children.size(1) > 2:
                raise ValueError("the binary Tree-LSTM takes at most two children per node; use ChildSumTreeLSTM")
        return super().forward(batch, inputs)

    def leaf(self, x: torch.Tensor | None, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        assert x is not None, "every leaf reads a word"
        H = self.hidden_size
        i, o, u = (x[:, : 3 * H] + self.U.bias[: 3 * H]).chunk(3, dim=1)  # (L, H) each
        c = torch.sigmoid(i) * torch.tanh(u)
        return torch.sigmoid(o) * torch.tanh(c), c

    def node(
        self, x: torch.Tensor | None, child_h: torch.Tensor, child_c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # child_h, child_c: (L, K, H) with K in {1, 2}
        if child_h.size(1) == 1:
            child_h = torch.cat([child_h, torch.zeros_like(child_h)], dim=1)
            child_c = torch.cat([child_c, torch.zeros_like(child_c)], dim=1)
        gates = self.U(child_h.flatten(1))  # (L, 5H)
        if x is not None:
            gates = gates + x
        i, o, u, f = gates.split([self.hidden_size] * 3 + [2 * self.hidden_size], dim=1)
        f = torch.sigmoid(f).view(-1, 2, self.hidden_size)  # (L, 2, H)
        c = torch.sigmoid(i) * torch.tanh(u) + (f * child_c).sum(dim=1)  # (L, H)
        return torch.sigmoid(o) * torch.tanh(c), c


CELLS: dict[str, type[_TreeLSTM]] = {"binary": BinaryTreeLSTM, "childsum": ChildSumTreeLSTM}
