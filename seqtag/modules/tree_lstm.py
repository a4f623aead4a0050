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

Trees are given as :class:`TreeStructure` objects (children lists and a word
index per node), so constituency trees (words on leaves) and dependency trees
(a word on every node) are handled alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

IGNORE = -100  # label of nodes without a gold label (cross_entropy's ignore_index)


@dataclass
class TreeStructure:
    """One tree as NumPy arrays, validated; node ids are ``0 .. n-1``.

    ``children`` is ``(n, K)`` int64 padded with ``-1`` (K = the largest number
    of children), ``words`` ``(n,)`` int64 word indices with ``-1`` for nodes
    without a word, ``heights`` ``(n,)`` (0 for leaves), ``labels`` ``(n,)``
    class indices with ``IGNORE`` for unlabelled nodes.
    """

    children: np.ndarray
    words: np.ndarray
    heights: np.ndarray
    root: int
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.words.shape[0])

    @property
    def height(self) -> int:
        return int(self.heights[self.root])

    @classmethod
    def build(
        cls, children: Sequence[Sequence[int]], words: Sequence[int], labels: Sequence[int] | None = None
    ) -> "TreeStructure":
        """Check and convert a tree given as children lists and word indices (``-1``: no word).

        Raises:
            ValueError: ids out of range, a node with two parents, a cycle, not exactly one
                root, nodes unreachable from the root, or a leaf without a word.
        """
        n = len(children)
        if n == 0:
            raise ValueError("a tree needs at least one node")
        if len(words) != n:
            raise ValueError(f"{n} children lists but {len(words)} word entries")
        if labels is not None and len(labels) != n:
            raise ValueError(f"{n} nodes but {len(labels)} labels")
        parent = [-1] * n
        for node, kids in enumerate(children):
            for child in kids:
                if not 0 <= child < n:
                    raise ValueError(f"node {node} has a child {child} outside 0..{n - 1}")
                if child == node:
                    raise ValueError(f"node {node} is its own child")
                if parent[child] != -1:
                    raise ValueError(f"node {child} has two parents ({parent[child]} and {node})")
                parent[child] = node
        roots = [node for node in range(n) if parent[node] == -1]
        if len(roots) != 1:
            raise ValueError(f"a tree has exactly one root (a node that is nobody's child); found {len(roots)}: {roots[:5]}")
        root = roots[0]
        order: list[int] = []  # pre-order, iteratively (no recursion limit)
        stack = [root]
        while stack:
            node = stack.pop()
            order.append(node)
            stack.extend(children[node])
        if len(order) != n:
            raise ValueError(f"{n - len(order)} node(s) are not reachable from the root {root} (a cycle)")
        heights = np.zeros(n, dtype=np.int64)
        for node in reversed(order):
            kids = children[node]
            if kids:
                heights[node] = 1 + max(heights[c] for c in kids)
            elif words[node] < 0:
                raise ValueError(f"leaf {node} has no word")
        width = max((len(kids) for kids in children), default=0)
        table = np.full((n, width), -1, dtype=np.int64)
        for node, kids in enumerate(children):
            table[node, : len(kids)] = kids
        gold = np.asarray(labels if labels is not None else [IGNORE] * n, dtype=np.int64)
        return cls(table, np.asarray(words, dtype=np.int64), heights, root, gold)


@dataclass
class Level:
    """Nodes ``start .. end-1`` of the node table (one height) and their children.

    ``children`` is ``(L, K)`` long, rows of the node table with 0 for "no child";
    ``K`` is 0 for a level of leaves. ``word_rows`` ``(Lw,)`` are the nodes of the level
    that read a word (indices into the level) and ``word_index`` ``(Lw,)`` their rows in
    the batch's word list; ``all_words`` says every node of the level reads one.
    """

    start: int
    end: int
    children: torch.Tensor
    word_rows: torch.Tensor
    word_index: torch.Tensor
    all_words: bool


@dataclass
class TreeBatch:
    """Trees flattened into one node table ordered by height (row 0: the zero state).

    Attributes:
        num_trees: T.
        num_nodes: N (rows ``1 .. N`` of the node table).
        word_ids: ``(W,)`` long, the word of each word-bearing node, in node-table order.
        levels: one :class:`Level` per height, leaves first.
        roots: ``(T,)`` long, node-table row of each tree's root.
        rows: ``(N,)`` long, node-table row of each node in input order (tree 0's
            nodes ``0 .. n0-1``, then tree 1's, ...).
        offsets: ``T + 1`` start indices of the trees in input order.
        labels: ``(N,)`` long gold classes in node-table order (row ``r`` at ``r - 1``),
            ``IGNORE`` for unlabelled nodes.
    """

    num_trees: int
    num_nodes: int
    word_ids: torch.Tensor
    levels: list[Level]
    roots: torch.Tensor
    rows: torch.Tensor
    offsets: list[int]
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.num_trees

    @classmethod
    def build(cls, trees: Sequence[TreeStructure]) -> "TreeBatch":
        """Flatten and level-order ``trees`` (vectorised with NumPy; no per-node Python work)."""
        if not trees:
            raise ValueError("an empty batch of trees")
        sizes = np.array([len(t) for t in trees], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        n = int(offsets[-1])
        width = max(t.children.shape[1] for t in trees)
        children = np.full((n, width), -1, dtype=np.int64)
        for tree, offset in zip(trees, offsets[:-1], strict=False):
            kids = tree.children
            if kids.shape[1]:
                children[offset : offset + len(tree), : kids.shape[1]] = np.where(kids >= 0, kids + offset, -1)
        heights = np.concatenate([t.heights for t in trees])
        words = np.concatenate([t.words for t in trees])
        labels = np.concatenate([t.labels for t in trees])
        order = np.argsort(heights, kind="stable")  # node-table row r holds input node order[r - 1]
        rows = np.empty(n, dtype=np.int64)
        rows[order] = np.arange(1, n + 1)
        child_rows = np.where(children >= 0, rows[np.maximum(children, 0)], 0)[order]  # (N, K) in table order
        words_sorted = words[order]
        has_word = words_sorted >= 0
        word_slot = np.cumsum(has_word) - 1  # index into word_ids of each word-bearing row
        bounds = np.searchsorted(heights[order], np.arange(int(heights.max()) + 2))
        levels = []
        for start, end in zip(bounds[:-1], bounds[1:], strict=True):
            kids = child_rows[start:end]
            k = int((kids > 0).sum(axis=1).max()) if kids.shape[1] else 0
            level_words = np.nonzero(has_word[start:end])[0]
            levels.append(
                Level(
                    int(start) + 1,
                    int(end) + 1,
                    torch.from_numpy(np.ascontiguousarray(kids[:, :k])),
                    torch.from_numpy(level_words),
                    torch.from_numpy(word_slot[start:end][level_words]),
                    len(level_words) == end - start,
                )
            )
        return cls(
            num_trees=len(trees),
            num_nodes=n,
            word_ids=torch.from_numpy(words_sorted[has_word]),
            levels=levels,
            roots=torch.from_numpy(rows[offsets[:-1] + np.array([t.root for t in trees])]),
            rows=torch.from_numpy(rows),
            offsets=offsets.tolist(),
            labels=torch.from_numpy(labels[order]),
        )


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
