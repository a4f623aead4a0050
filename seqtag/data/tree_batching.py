"""Trees as tensors for the Tree-LSTMs: one tree's validated arrays, and a batch of trees flattened
into one node table ordered by height, so that each level is computed at once for all trees.

A batch of trees is flattened into one node table ordered by *height* (the
length of the longest path down to a leaf): all leaves of all trees first,
then every node whose children are leaves, and so on. A node's children
always have a smaller height, so each height is one *level* that the
Tree-LSTM (seqtag/modules/tree_lstm.py) computes with a few tensor
operations for all its nodes at once, across all trees of the batch.

Row 0 of the node table is a zero state that stands for a missing child, so
padded children lists need no masking.

Trees are given as :class:`TreeStructure` objects (children lists and a word
index per node), so constituency trees (words on leaves) and dependency trees
(a word on every node) are handled alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch

from seqtag.errors import shown

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
                if not isinstance(child, Integral) or isinstance(child, bool):
                    raise ValueError(f"node {node} has a child {shown(child)} that is not a node id (an integer)")
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
        bounds = np.searchsorted(heights[order], np.arange(int(heights.max()) + 2))  # every height occurs
        starts, ends = bounds[:-1], bounds[1:]
        # per level, vectorised (the Python loop below only slices): the widest children list ...
        if width:
            counts = (child_rows > 0).sum(axis=1)
            widths = np.maximum.reduceat(counts, starts) if n else np.zeros(0, dtype=np.int64)
        else:
            widths = np.zeros(len(starts), dtype=np.int64)
        # ... the word-bearing rows, as offsets into the level, and their slots in word_ids
        word_rows = np.nonzero(has_word)[0]
        word_bounds = np.searchsorted(word_rows, bounds)
        levels = []
        for start, end, k, w_start, w_end in zip(
            starts.tolist(), ends.tolist(), widths.tolist(), word_bounds[:-1].tolist(), word_bounds[1:].tolist(), strict=True
        ):
            rows_here = word_rows[w_start:w_end]
            levels.append(
                Level(
                    start + 1,
                    end + 1,
                    torch.from_numpy(np.ascontiguousarray(child_rows[start:end, :k])),
                    torch.from_numpy(rows_here - start),
                    torch.from_numpy(word_slot[rows_here]),
                    w_end - w_start == end - start,
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
