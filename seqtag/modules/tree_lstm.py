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

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from seqtag.data.tree_batching import Level, TreeBatch

#: Batches of at most this many levels (heights) keep the training states in one table that grows by
#: concatenation, level by level; taller ones (a deep tree) keep one tensor per level, so that the
#: work stays linear in the number of nodes. Both compute the same values.
GROWING_LEVELS = 256


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
        if growing and len(batch.levels) > GROWING_LEVELS:
            return self._forward_by_level(batch, projected)
        rows = 1 if growing else batch.num_nodes + 1
        h_all = inputs.new_zeros(rows, self.hidden_size)  # (N + 1, H) when complete
        c_all = inputs.new_zeros(rows, self.hidden_size)
        for level in batch.levels:
            size = level.end - level.start
            x = self._inputs(level, projected)
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

    @staticmethod
    def _inputs(level: Level, projected: torch.Tensor) -> torch.Tensor | None:
        """The projected inputs ``(L, gates * H)`` of a level's nodes (zero rows for nodes without a
        word), or None when no node of the level reads a word."""
        size = level.end - level.start
        if level.all_words:
            return projected.index_select(0, level.word_index)  # (L, gates * H)
        if level.word_rows.numel():
            return projected.new_zeros(size, projected.size(1)).index_copy(
                0, level.word_rows, projected.index_select(0, level.word_index)
            )
        return None

    def _forward_by_level(self, batch: TreeBatch, projected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The autograd path of tall batches, linear in the number of nodes.

        A growing table is copied once per level, and an ``index_select`` from a big tensor fills a
        zero gradient of all its rows, so both are quadratic for a deep tree (a 6,000-leaf chain:
        33 s and 6.8 GB). Here each level's states stay a tensor of their own; once computed, they
        are reordered by the level of their parent and split, so every parent level takes exactly
        the rows it needs (:func:`_plan`). Every node's state is read once, by its parent, and the
        values are those of the growing table.
        """
        levels = batch.levels
        plan = _plan(batch, projected.device)
        # a level's word-bearing nodes read consecutive rows of ``projected`` (word_ids are in
        # node-table order): one split, whose backward is one concatenation
        pieces = projected.split([level.word_index.numel() for level in levels])
        zero = projected.new_zeros(1, self.hidden_size)
        sent_h: dict[tuple[int, int], torch.Tensor] = {}  # (source level, parent level) -> states
        sent_c: dict[tuple[int, int], torch.Tensor] = {}
        hs: list[torch.Tensor] = []
        cs: list[torch.Tensor] = []
        for k, (level, piece) in enumerate(zip(levels, pieces, strict=True)):
            size = level.end - level.start
            if level.all_words:
                x: torch.Tensor | None = piece
            elif level.word_rows.numel():
                x = piece.new_zeros(size, piece.size(1)).index_copy(0, level.word_rows, piece)
            else:
                x = None
            width = level.children.size(1)
            if width == 0:
                h, c = self.leaf(x, size)
            else:
                sources, back = plan.receive[k]
                child_h = _arrange([sent_h.pop((s, k)) for s in sources], back, zero)
                child_c = _arrange([sent_c.pop((s, k)) for s in sources], back, zero)
                h, c = self.node(x, child_h.view(size, width, -1), child_c.view(size, width, -1))
            hs.append(h)
            cs.append(c)
            order, parents, counts = plan.send[k]
            if parents:
                sent_h.update(((k, p), part) for p, part in zip(parents, _deal(h, order, counts), strict=True))
                sent_c.update(((k, p), part) for p, part in zip(parents, _deal(c, order, counts), strict=True))
        return torch.cat([zero, *hs]), torch.cat([zero, *cs])

    def leaf(self, x: torch.Tensor | None, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def node(
        self, x: torch.Tensor | None, child_h: torch.Tensor, child_c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def _arrange(parts: list[torch.Tensor], back: torch.Tensor | None, zero: torch.Tensor) -> torch.Tensor:
    """The children states ``(L*K, H)`` from what their levels sent (``parts``, in row order):
    ``back`` picks each entry's row (the last one, a zero state, for a missing child); None when
    the parts are already in order and no child is missing."""
    if back is None:
        return parts[0] if len(parts) == 1 else torch.cat(parts)
    return torch.cat([*parts, zero]).index_select(0, back)


def _deal(states: torch.Tensor, order: torch.Tensor | None, counts: list[int]) -> tuple[torch.Tensor, ...]:
    """A level's states for the levels of their parents: rows ``order`` (None: all, as they are),
    split into ``counts``."""
    if order is not None:
        states = states.index_select(0, order)
    return (states,) if len(counts) == 1 else states.split(counts)


@dataclass
class _Plan:
    """Where the states of each level go, and where each level reads its children's from.

    ``send[k]``: ``(order, parents, counts)``: level ``k``'s rows that have a parent, as indices
    into the level ordered by the parent's level (then by row; None when that is every row in
    order), and the parent levels (ascending) with the number of rows each takes; ``parents`` is
    empty when no node of the level has a parent.
    ``receive[k]``: ``(sources, back)``: the levels the children of level ``k`` are on (ascending),
    and ``back`` ``(L*K,)``: for each children entry, its row in the concatenation of what those
    levels sent (in row order) plus one zero row (a missing child); None when that concatenation
    is already the entries in order (no child missing). Leaves receive ``([], None)``.
    """

    send: list[tuple[torch.Tensor | None, list[int], list[int]]]
    receive: list[tuple[list[int], torch.Tensor | None]]


def _plan(batch: TreeBatch, device: torch.device) -> _Plan:
    """The :class:`_Plan` of ``batch`` (NumPy, a few array operations per level)."""
    levels = batch.levels
    n = batch.num_nodes
    level_of = np.empty(n + 1, dtype=np.int64)  # node-table row -> its level (row 0: -1)
    level_of[0] = -1
    parent_level = np.full(n + 1, -1, dtype=np.int64)  # node-table row -> the level of its parent
    children = [level.children.cpu().numpy() for level in levels]
    for k, level in enumerate(levels):
        level_of[level.start : level.end] = k
        kids = children[k]
        parent_level[kids[kids > 0]] = k
    receive: list[tuple[list[int], torch.Tensor | None]] = []
    for kids in children:
        if kids.shape[1] == 0:
            receive.append(([], None))
            continue
        flat = kids.reshape(-1)
        real = np.sort(flat[flat > 0])  # the concatenation of what the source levels sent, in row order
        back = np.where(flat > 0, np.searchsorted(real, flat), len(real))
        in_order = len(real) == len(flat) and bool((back == np.arange(len(back))).all())
        receive.append((np.unique(level_of[real]).tolist(), None if in_order else torch.from_numpy(back).to(device)))
    send: list[tuple[torch.Tensor | None, list[int], list[int]]] = []
    for level in levels:
        parents = parent_level[level.start : level.end]
        has_parent = np.nonzero(parents >= 0)[0]
        if not len(has_parent):
            send.append((None, [], []))
            continue
        order = has_parent[np.argsort(parents[has_parent], kind="stable")]
        targets, counts = np.unique(parents[order], return_counts=True)
        in_order = len(order) == len(parents) and bool((order == np.arange(len(order))).all())
        send.append((None if in_order else torch.from_numpy(order).to(device), targets.tolist(), counts.tolist()))
    return _Plan(send, receive)


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
