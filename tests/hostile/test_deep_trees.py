"""Hostile trees (issue 22): no recursion and no quadratic work on a tree's depth or size.

A 12,000-leaf chain took 30 s to predict and a 3,000-deep tree raised RecursionError; training on a
6,000-leaf chain took 33 s and 7 GB. Each big case runs in a fresh process under 1 GB of address
space and a 10 s timer (tests/hostile/bounded.py); the cheap ones run here.
"""

from __future__ import annotations

import pytest

import seqtag
from seqtag.data.tree_batching import TreeBatch, TreeStructure
from seqtag.data.trees import Tree, parse_tree
from seqtag.errors import DataError

from .bounded import FIXTURES, assert_clean_error, assert_result, run_bounded

MODEL = FIXTURES / "trees.seqtag"  # a binary Tree-LSTM (memory 10), fine-grained classes

SETUP = f"""
from seqtag.data.trees import parse_tree
from seqtag.data.tree_batching import TreeBatch, TreeStructure
model = seqtag.load({str(MODEL)!r})

def chain(leaves):  # right-branching: (2 (2 w) (2 (2 w) ... (2 w)))
    return "".join("(2 (2 w) " for _ in range(leaves - 1)) + "(2 w)" + ")" * (leaves - 1)

def left_chain(leaves):  # left-branching: (2 (2 ... (2 (2 w) (2 w)) ...) (2 w))
    return "(2 " * (leaves - 1) + "(2 w)" + " (2 w))" * (leaves - 1)

def unary(depth):  # (2 (2 (2 ... w)))
    return "(2 " * depth + "w" + ")" * depth
"""


@pytest.mark.parametrize("shape", ["chain", "left_chain"])
def test_a_12000_leaf_chain_parses_batches_and_predicts_in_bounds(shape: str) -> None:
    outcome = run_bounded(SETUP, f"""
        text = {shape}(12000)
        tree = parse_tree(text)
        prediction = model.predict(text)
        assert prediction.tree.to_brackets() == text  # labels read back as written
        nodes = prediction.nodes
        result = [len(tree), len(nodes), prediction.label in model.labels, nodes[tree.root].text.count("w"),
                  len(repr(prediction)) < 300, prediction.to_brackets().count("(")]
    """)
    assert assert_result(outcome) == [23999, 23999, True, 12000, True, 23999]


def test_a_3000_deep_tree_predicts_without_recursion_error() -> None:
    outcome = run_bounded(SETUP, """
        prediction = model.predict(unary(3000))
        result = [len(prediction.nodes), prediction.nodes[-1].text, prediction.to_brackets().count(")")]
    """)
    assert assert_result(outcome) == [3000, "w", 3000]


def test_a_50000_deep_tree_parses_writes_and_batches_in_bounds() -> None:
    outcome = run_bounded(SETUP, """
        text = unary(50000)
        tree = parse_tree(text)
        assert tree.to_brackets() == text and tree.text() == "w" and tree.spans()[0] == (0, 1)
        structure = model.task.encode(tree, with_labels=False)
        batch = TreeBatch.build([structure, structure])
        result = [len(tree), int(structure.heights.max()), len(batch.levels), batch.num_nodes]
    """)
    assert assert_result(outcome) == [50000, 49999, 50000, 100000]


def test_training_on_a_6000_leaf_chain_is_linear() -> None:
    # the growing state table copied the whole table at every level: 33 s and 6.8 GB before
    outcome = run_bounded(SETUP, """
        task = model.task
        batch = task.batch([task.encode(parse_tree(chain(6000)))])
        task.model.train()
        loss = task.loss(batch)
        loss.backward()
        grad = task.model.tree.W.weight.grad
        result = [bool(torch.isfinite(loss).item()), bool(torch.isfinite(grad).all().item()), len(batch.levels)]
    """)
    assert assert_result(outcome) == [True, True, 6000]


def test_a_huge_atom_in_a_malformed_tree_gives_a_short_message() -> None:
    outcome = run_bounded("", """
        from seqtag.data.trees import parse_tree
        parse_tree("(2 (2 " + "x" * 2_000_000 + " y))")
        result = None
    """)
    assert_clean_error(outcome, "DataError", r"found a second one: 'y' after 'xxx.*\.\.\..*\(2000000 characters\)")


# ---------------------------------------------------------------------------------------- cheap cases


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return seqtag.load(MODEL)


BASE = {"children": [[], [], [4, 0], [1, 2], []], "words": ["great", "the", None, None, "film"]}  # root: node 3


def test_a_mapping_whose_root_is_a_leaf_is_an_error(model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=r"the root is given as node 0, but the tree's root .* is node 3"):
        model.predict({**BASE, "root": 0})
    with pytest.raises(DataError, match=r"the root is given as node 2, .* is node 3"):
        model.predict({**BASE, "root": 2})  # an inner node with a parent


def test_a_mapping_without_root_uses_the_real_root(model) -> None:  # type: ignore[no-untyped-def]
    plain = model.predict("((the) ((film) (great)))")
    for given in (BASE, {**BASE, "root": 3}, {**BASE, "root": None}):
        prediction = model.predict(given)
        assert prediction.tree.root == 3 and prediction.label == plain.label
        assert prediction.probabilities == pytest.approx(plain.probabilities, abs=1e-6)
        assert prediction.nodes[3].text == "the film great"


@pytest.mark.parametrize(("mapping", "message"), [
    ({**BASE, "root": "x"}, "the root must be a node id"),
    ({**BASE, "root": 1.5}, "the root must be a node id"),
    ({**BASE, "root": True}, "the root must be a node id"),
    ({**BASE, "root": 99}, r"the root 99 is not a node of the tree \(0..4\)"),
    ({"children": 5, "words": []}, "'children' is a list of lists of node ids"),
    ({"children": [["a"]], "words": ["x"]}, "a child must be a node id"),
    ({"children": [[]], "words": 7}, "'words' is a list"),
    ({"children": [[1], [0]], "words": ["a", "b"]}, "exactly one root"),
    ({"x" * 10_000: 1}, r"got \[x+\.\.\..*characters\)\]$"),
])
def test_malformed_mappings_are_data_errors(model, mapping: dict, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=message) as caught:
        model.predict(mapping)
    assert len(str(caught.value)) < 400


def test_a_tree_object_with_the_wrong_root_is_an_error(model) -> None:  # type: ignore[no-untyped-def]
    dependency = Tree([[], [0, 2], []], ["very", "good", "film"])  # root left at 0, but node 1 is the root
    with pytest.raises(DataError, match="the root is given as node 0"):
        model.predict(dependency)


@pytest.mark.parametrize("children", [[[1], [0]], [[1, 2], [2], []], [[7]]])
def test_walking_a_malformed_hand_built_tree_ends_in_a_data_error(children: list[list[int]]) -> None:
    tree = Tree(children, ["a"] * len(children))
    for walk in (tree.text, tree.leaves, tree.to_brackets, tree.spans):
        with pytest.raises(DataError, match="malformed tree"):
            walk()


def test_structure_rejects_non_integer_children() -> None:
    with pytest.raises(ValueError, match="not a node id"):
        TreeStructure.build([["1"], []], [-1, 0])


def test_spans_and_iterative_brackets_match_the_definitions() -> None:
    tree = parse_tree("(3 (2 It) (4 (2 's) (4 (1 not) (3 great))))")
    tokens = tree.tokens
    for node, (start, end) in enumerate(tree.spans()):
        assert " ".join(tokens[start:end]) == tree.text(node)
    dependency = Tree([[], [0, 2], []], ["very", "good", "film"], root=1)
    assert [" ".join(dependency.tokens[s:e]) for s, e in dependency.spans()] == ["very", "good very film", "film"]
    assert dependency.to_brackets(["a", "b", "c"]) == "(b good (a very) (c film))"
    batch = TreeBatch.build([TreeStructure.build(dependency.children, [0, 1, 2])])
    assert len(batch.levels) == 2
