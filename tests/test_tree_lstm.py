"""Tree-LSTM modules: numerical gradients, and level batching against a per-node recursion."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from seqtag.data.tree_batching import TreeBatch, TreeStructure
from seqtag.modules.tree_lstm import BinaryTreeLSTM, ChildSumTreeLSTM


def random_binary_tree(rng: random.Random, leaves: int) -> tuple[list[list[int]], list[int]]:
    """A random binarised constituency tree: words (ids) on leaves only, node ids shuffled."""
    nodes: list[list[int]] = [[] for _ in range(leaves)]
    words = [rng.randrange(20) for _ in range(leaves)]
    pending = list(range(leaves))
    while len(pending) > 1:
        k = rng.randrange(len(pending) - 1)
        nodes.append([pending[k], pending[k + 1]])
        words.append(-1)
        pending[k : k + 2] = [len(nodes) - 1]
    if rng.random() < 0.3:  # a unary node on top
        nodes.append([len(nodes) - 1])
        words.append(-1)
    return _shuffle(rng, nodes, words)


def random_dependency_tree(rng: random.Random, size: int) -> tuple[list[list[int]], list[int]]:
    """A random tree with a word on every node and any number of children."""
    nodes: list[list[int]] = [[] for _ in range(size)]
    for node in range(1, size):
        nodes[rng.randrange(node)].append(node)
    return _shuffle(rng, nodes, [rng.randrange(20) for _ in range(size)])


def with_some_internal_words(rng: random.Random, tree: tuple[list[list[int]], list[int]]) -> tuple[list[list[int]], list[int]]:
    """The same tree with a word on some internal nodes: levels that mix nodes with and without input."""
    children, words = tree
    return children, [rng.randrange(20) if kids and rng.random() < 0.5 else w for kids, w in zip(children, words, strict=True)]


def _shuffle(rng: random.Random, nodes: list[list[int]], words: list[int]) -> tuple[list[list[int]], list[int]]:
    ids = list(range(len(nodes)))
    rng.shuffle(ids)  # node ids need not follow any order
    children: list[list[int]] = [[] for _ in nodes]
    new_words = [0] * len(nodes)
    for old, kids in enumerate(nodes):
        children[ids[old]] = [ids[k] for k in kids]
        new_words[ids[old]] = words[old]
    return children, new_words


def recursive_states(module: torch.nn.Module, children: list[list[int]], words: list[int], vectors: torch.Tensor) -> torch.Tensor:
    """Tai et al.'s equations node by node, written out from the module's weights: ``(n, H)``."""
    H = module.hidden_size
    parents = {c for kids in children for c in kids}
    root = next(i for i in range(len(children)) if i not in parents)
    h: dict[int, torch.Tensor] = {}
    c: dict[int, torch.Tensor] = {}

    def visit(node: int) -> None:
        for child in children[node]:
            visit(child)
        x = vectors[words[node]] if words[node] >= 0 else torch.zeros(module.input_size, dtype=vectors.dtype)
        wx = module.W.weight @ x
        kids = children[node]
        if isinstance(module, ChildSumTreeLSTM):
            h_sum = sum((h[k] for k in kids), torch.zeros(H, dtype=vectors.dtype))
            iou = wx[: 3 * H] + module.U_iou.weight @ h_sum + module.U_iou.bias
            i, o, u = torch.sigmoid(iou[:H]), torch.sigmoid(iou[H : 2 * H]), torch.tanh(iou[2 * H :])
            cell = i * u
            for k in kids:
                f = torch.sigmoid(wx[3 * H :] + module.U_f.weight @ h[k] + module.U_f.bias)
                cell = cell + f * c[k]
        else:
            hs = [h[k] for k in kids] + [torch.zeros(H, dtype=vectors.dtype)] * (2 - len(kids))
            cs = [c[k] for k in kids] + [torch.zeros(H, dtype=vectors.dtype)] * (2 - len(kids))
            U, b = module.U.weight, module.U.bias
            pre = wx + U[:, :H] @ hs[0] + U[:, H:] @ hs[1] + b
            i, o, u = torch.sigmoid(pre[:H]), torch.sigmoid(pre[H : 2 * H]), torch.tanh(pre[2 * H : 3 * H])
            f1, f2 = torch.sigmoid(pre[3 * H : 4 * H]), torch.sigmoid(pre[4 * H :])
            cell = i * u + f1 * cs[0] + f2 * cs[1]
        c[node] = cell
        h[node] = o * torch.tanh(cell)

    visit(root)
    return torch.stack([h[i] for i in range(len(children))])


def batched_states(module: torch.nn.Module, trees: list[tuple[list[list[int]], list[int]]], vectors: torch.Tensor) -> list[torch.Tensor]:
    structures = [TreeStructure.build(children, words) for children, words in trees]
    batch = TreeBatch.build(structures)
    h, _ = module(batch, vectors[batch.word_ids])
    per_node = h[batch.rows]  # input order
    return [per_node[batch.offsets[t] : batch.offsets[t + 1]] for t in range(len(trees))]


@pytest.mark.parametrize("cell", [BinaryTreeLSTM, ChildSumTreeLSTM])
def test_level_batching_equals_recursion_on_random_trees(cell: type) -> None:
    torch.manual_seed(0)
    rng = random.Random(7)
    module = cell(6, 5).double()
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-0.8, 0.8)  # large weights so that mistakes show
    vectors = torch.randn(20, 6, dtype=torch.float64)
    trees = [random_binary_tree(rng, rng.randint(1, 12)) for _ in range(12)]
    trees += [with_some_internal_words(rng, random_binary_tree(rng, rng.randint(2, 12))) for _ in range(12)]
    if cell is ChildSumTreeLSTM:
        trees += [random_dependency_tree(rng, rng.randint(1, 15)) for _ in range(12)]
    batched = batched_states(module, trees, vectors)
    with torch.inference_mode():  # the prediction path writes levels in place instead
        predicted = batched_states(module, trees, vectors)
    for (children, words), got, inferred in zip(trees, batched, predicted, strict=True):
        expected = recursive_states(module, children, words, vectors)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(inferred, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", [BinaryTreeLSTM, ChildSumTreeLSTM])
def test_gradients_match_finite_differences(cell: type) -> None:
    torch.manual_seed(1)
    module = cell(3, 4).double()
    # ((w0 w1) w2) with a unary node above; one word-bearing internal node for Child-Sum
    children = [[1], [2, 5], [3, 4], [], [], []]
    words = [-1, -1, -1, 0, 1, 2] if cell is BinaryTreeLSTM else [1, -1, 2, 0, 1, 2]
    batch = TreeBatch.build([TreeStructure.build(children, words)])
    inputs = torch.randn(batch.word_ids.size(0), 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(batch.num_nodes + 1, 4, dtype=torch.float64)
    params = [p for p in module.parameters()]

    def f(x: torch.Tensor, *flat: torch.Tensor) -> torch.Tensor:
        h, c = torch.func.functional_call(module, dict(zip((n for n, _ in module.named_parameters()), flat, strict=True)), (batch, x))
        return (h * weight).sum() + (c * weight).sum()

    assert torch.autograd.gradcheck(f, (inputs, *[p.detach().requires_grad_() for p in params]))


def test_binary_cell_rejects_three_children() -> None:
    batch = TreeBatch.build([TreeStructure.build([[1, 2, 3], [], [], []], [-1, 0, 1, 2])])
    with pytest.raises(ValueError, match="at most two children"):
        BinaryTreeLSTM(2, 3)(batch, torch.zeros(3, 2))


@pytest.mark.parametrize(
    ("children", "words", "message"),
    [
        ([[1], [0]], [0, 0], "exactly one root"),
        ([[1, 2], [], [1]], [-1, 0, 0], "two parents"),
        ([[1], [2], [1], []], [-1, -1, -1, 0], "two parents"),
        ([[5]], [0], "outside"),
        ([[1], []], [-1, -1], "leaf 1 has no word"),
        ([[], []], [0, 0], "exactly one root"),
    ],
)
def test_structure_errors(children: list[list[int]], words: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TreeStructure.build(children, words)


def test_batch_levels_and_rows() -> None:
    a = TreeStructure.build([[1, 2], [], []], [-1, 4, 5], [1, 2, 3])  # height 1
    b = TreeStructure.build([[]], [7], [0])  # a single leaf
    batch = TreeBatch.build([a, b])
    assert batch.num_nodes == 4 and len(batch.levels) == 2
    leaves, top = batch.levels
    assert (leaves.start, leaves.end, top.start, top.end) == (1, 4, 4, 5)
    assert batch.rows.tolist() == [4, 1, 2, 3]
    assert batch.roots.tolist() == [4, 3]
    assert top.children.tolist() == [[1, 2]]
    assert batch.word_ids.tolist() == [4, 5, 7]
    assert batch.labels.tolist() == [2, 3, 0, 1]
    assert np.array_equal(a.heights, [1, 0, 0])


@pytest.mark.parametrize("cell", [BinaryTreeLSTM, ChildSumTreeLSTM])
def test_tall_batches_path_equals_the_growing_table(cell: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """Training on batches taller than GROWING_LEVELS keeps one tensor per level (linear in the
    nodes); states and every gradient are those of the growing table, value for value."""
    from seqtag.modules import tree_lstm

    torch.manual_seed(2)
    rng = random.Random(11)
    module = cell(6, 5).double()
    vectors = torch.randn(20, 6, dtype=torch.float64)
    trees = [random_binary_tree(rng, rng.randint(1, 12)) for _ in range(10)]
    trees += [with_some_internal_words(rng, random_binary_tree(rng, rng.randint(2, 12))) for _ in range(10)]
    if cell is ChildSumTreeLSTM:
        trees += [random_dependency_tree(rng, rng.randint(1, 15)) for _ in range(10)]
    batch = TreeBatch.build([TreeStructure.build(children, words) for children, words in trees])
    weight = torch.randn(batch.num_nodes + 1, 5, dtype=torch.float64)
    results = []
    for limit in (len(batch.levels), 0):  # the growing table, then one tensor per level
        monkeypatch.setattr(tree_lstm, "GROWING_LEVELS", limit)
        module.zero_grad()
        inputs = vectors[batch.word_ids].clone().requires_grad_()
        h, c = module(batch, inputs)
        ((h * weight).sum() + (c * weight).sum()).backward()
        results.append([h.detach(), c.detach(), inputs.grad, *(p.grad.clone() for p in module.parameters())])
    for growing, by_level in zip(*results, strict=True):
        assert torch.equal(growing, by_level)
    monkeypatch.setattr(tree_lstm, "GROWING_LEVELS", 0)
    for (children, words), got in zip(trees, batched_states(module, trees, vectors), strict=True):
        torch.testing.assert_close(got, recursive_states(module, children, words, vectors), rtol=1e-10, atol=1e-12)


def test_tall_batches_path_gradients_match_finite_differences(monkeypatch: pytest.MonkeyPatch) -> None:
    from seqtag.modules import tree_lstm

    monkeypatch.setattr(tree_lstm, "GROWING_LEVELS", 0)
    torch.manual_seed(3)
    module = ChildSumTreeLSTM(3, 4).double()
    children = [[1], [2, 5], [3, 4], [], [], []]
    batch = TreeBatch.build([TreeStructure.build(children, [1, -1, 2, 0, 1, 2])])
    inputs = torch.randn(batch.word_ids.size(0), 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(batch.num_nodes + 1, 4, dtype=torch.float64)
    names = [n for n, _ in module.named_parameters()]

    def f(x: torch.Tensor, *flat: torch.Tensor) -> torch.Tensor:
        h, c = torch.func.functional_call(module, dict(zip(names, flat, strict=True)), (batch, x))
        return (h * weight).sum() + (c * weight).sum()

    assert torch.autograd.gradcheck(f, (inputs, *[p.detach().requires_grad_() for p in module.parameters()]))
