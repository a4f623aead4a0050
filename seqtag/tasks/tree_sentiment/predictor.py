"""The predictor of tree-sentiment models (what :func:`seqtag.load` returns for them)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import Any, TextIO, Union

from seqtag.data.trees import Tree, iter_trees, parse_tree, read_trees
from seqtag.errors import DataError, shorten
from seqtag.tasks.predictor import Predictor
from seqtag.tasks.tree_sentiment.task import SST_LABELS, TreeSentimentTask

TreeInput = Union[str, Tree, Mapping[str, Any]]


class NodePrediction:
    """One node: its id, the words it spans, its predicted class and the class probabilities.

    ``text`` is joined on first use: a deep tree's nodes span quadratically many words in
    all, so predictions do not build every node's text unless it is asked for.
    """

    __slots__ = ("node", "label", "probabilities", "_text", "_words")

    def __init__(self, node: int, text: str | None, label: str, probabilities: dict[str, float],
                 words: tuple[list[str], int, int] | None = None) -> None:
        """``text`` as given, or (when None) ``" ".join(tokens[start:end])`` of ``words = (tokens, start, end)``."""
        self.node = node
        self.label = label
        self.probabilities = probabilities
        self._text = text
        self._words = words

    @property
    def text(self) -> str:
        """The words under this node, joined by spaces."""
        if self._text is None:
            tokens, start, end = self._words if self._words is not None else ([], 0, 0)
            self._text = " ".join(tokens[start:end])
        return self._text

    @property
    def confidence(self) -> float:
        """Probability of the predicted class."""
        return self.probabilities[self.label]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NodePrediction):
            return NotImplemented
        return (self.node, self.text, self.label, self.probabilities) == (other.node, other.text, other.label, other.probabilities)

    def __repr__(self) -> str:
        return (f"NodePrediction(node={self.node!r}, text={shorten(self.text)!r}, label={self.label!r}, "
                f"probabilities={self.probabilities!r})")




@dataclass
class TreePrediction:
    """A tree's prediction: the root's class and probabilities, and every node's (by node id)."""

    label: str
    probabilities: dict[str, float]
    nodes: list[NodePrediction]
    tree: Tree

    @property
    def node_labels(self) -> list[str]:
        """Predicted class of each node, indexed by node id."""
        return [node.label for node in self.nodes]

    def to_brackets(self) -> str:
        """The tree with each node's predicted class index as its label (SST format in the fine setting)."""
        names = list(self.probabilities)
        return self.tree.to_brackets([str(names.index(label)) for label in self.node_labels])

    def __repr__(self) -> str:
        return f"TreePrediction({self.label!r} {self.probabilities[self.label]:.3f}: {shorten(self.tree.text())!r})"


def _node_id(value: Any, what: str) -> int:
    """``value`` as a node id: an integer, or a whole float or a string that is one (as ``int`` reads
    them); anything else is a :class:`DataError`."""
    number: int | None = None
    if isinstance(value, Integral) and not isinstance(value, bool):
        number = int(value)
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and len(value) <= 40:
        try:
            number = int(value)
        except ValueError:
            number = None
    if number is None:
        raise DataError(f"{what} must be a node id (an integer), got {shorten(repr(value))}")
    return number


class TreeSentimentPredictor(Predictor):
    """Sentiment of every node of a tree with a trained Tree-LSTM.

    >>> model = seqtag.load("runs/sst-treelstm/model.seqtag")
    >>> model.predict("(3 (2 It) (4 (2 's) (4 great)))").label
    'positive'

    Trees are bracketed strings (labels are ignored and may be absent or any
    symbol, e.g. ``(S (NP It) (VP (VBZ 's) (JJ great)))``), :class:`~seqtag.data.trees.Tree`
    objects, or mappings ``{"children": [[1, 2], [], []], "words": [None, "good", "fun"]}``
    (node ids are list positions; ``words[i]`` is ``None`` for nodes without a word;
    dependency trees put a word on every node and need ``model.cell: childsum``).
    """

    task: TreeSentimentTask

    @property
    def labels(self) -> list[str]:
        """The classes, in the order of the model's outputs."""
        return list(self.task.class_names)

    def predict(self, tree: TreeInput) -> TreePrediction:  # type: ignore[override]
        """Classify every node of one tree."""
        return self.predict_batch([tree])[0]

    def predict_batch(self, trees: Sequence[TreeInput], batch_size: int = 256) -> list[TreePrediction]:
        """Classify many trees at once (batched level by level internally), in input order."""
        parsed = [self._tree(tree) for tree in trees]
        structures = [self.task.encode(tree, with_labels=False) for tree in parsed]
        probabilities = self.task.predict_probabilities(structures, batch_size)
        return [self._result(tree, probs.tolist()) for tree, probs in zip(parsed, probabilities, strict=True)]

    def _tree(self, tree: TreeInput) -> Tree:
        """A :class:`Tree` from any accepted input; malformed input is a :class:`DataError`."""
        if isinstance(tree, Tree):
            return tree
        if isinstance(tree, str):
            return parse_tree(tree.strip(), require_labels=False)
        if isinstance(tree, Mapping):
            return self._mapping_tree(tree)
        raise DataError(f"cannot read a tree from a {type(tree).__name__}; give a bracketed string, a Tree or a mapping")

    @staticmethod
    def _mapping_tree(tree: Mapping[str, Any]) -> Tree:
        """``{"children": ..., "words": ..., "labels"?: ..., "root"?: ...}`` as a :class:`Tree`.

        Without ``root`` the root is the one node that is nobody's child (what
        :meth:`TreeStructure.build <seqtag.data.tree_batching.TreeStructure.build>` finds);
        a ``root`` that is given must be that node (checked when the tree is encoded).
        """
        unknown = set(tree) - {"children", "words", "labels", "root"}
        if unknown or "children" not in tree or "words" not in tree:
            keys = sorted(map(str, tree))
            shown = ", ".join(shorten(k, 40) for k in keys[:10]) + (f", ... ({len(keys)} keys)" if len(keys) > 10 else "")
            raise DataError(
                "a tree mapping has keys 'children' and 'words' (and optionally 'labels', 'root'); "
                f"got [{shown}]"
            )
        try:
            children = [[_node_id(child, "a child") for child in kids] for kids in tree["children"]]
        except TypeError:
            raise DataError("a tree mapping's 'children' is a list of lists of node ids, e.g. [[1, 2], [], []]") from None
        try:
            words = [None if w is None else str(w) for w in tree["words"]]
        except TypeError:
            raise DataError("a tree mapping's 'words' is a list with a word or None per node") from None
        try:
            labels = list(tree.get("labels") or [None] * len(children))
        except TypeError:
            raise DataError("a tree mapping's 'labels' is a list with a label or None per node") from None
        if "root" in tree and tree["root"] is not None:
            root = _node_id(tree["root"], "the root")
        else:
            has_parent = bytearray(len(children))
            for kids in children:
                for child in kids:
                    if 0 <= child < len(children):
                        has_parent[child] = 1
            roots = [i for i, flag in enumerate(has_parent) if not flag]
            # not exactly one root: TreeStructure.build reports it when the tree is encoded
            root = roots[0] if len(roots) == 1 else 0
        if children and not 0 <= root < len(children):
            raise DataError(f"the root {root} is not a node of the tree (0..{len(children) - 1})")
        return Tree(children, words, labels, root)

    def _result(self, tree: Tree, probabilities: list[list[float]]) -> TreePrediction:
        names = self.task.class_names
        tokens = tree.tokens
        nodes = []
        for (node, row), (start, end) in zip(enumerate(probabilities), tree.spans(), strict=True):
            distribution = dict(zip(names, row, strict=True))
            best = names[max(range(len(row)), key=row.__getitem__)]
            nodes.append(NodePrediction(node, None, best, distribution, (tokens, start, end)))
        root = nodes[tree.root]
        return TreePrediction(root.label, root.probabilities, nodes, tree)

    def evaluate(self, trees: Sequence[Tree], batch_size: int = 256) -> dict[str, Any]:  # type: ignore[override]
        """Root and all-node accuracy (percent) on labelled trees."""
        return self.task.evaluate(trees, batch_size)

    def evaluate_file(self, path: str | Path, batch_size: int = 256, **options: Any) -> dict[str, Any]:
        """Root and all-node accuracy on a file of labelled bracketed trees (SST format)."""
        self.reject(options)
        return self.task.evaluate(read_trees(path, labels=SST_LABELS), batch_size)

    def predict_file(self, path: str | Path, out: TextIO, batch_size: int = 256, **options: Any) -> int:
        """Write one line per input tree: root class, its probability, and the tree with
        every node's predicted class index as its label (tab-separated). Returns the number of trees."""
        self.reject(options)
        chunk: list[Tree] = []
        written = 0

        def flush() -> None:
            nonlocal written
            written += len(chunk)
            for prediction in self.predict_batch(chunk, batch_size):
                out.write(f"{prediction.label}\t{prediction.probabilities[prediction.label]:.4f}\t{prediction.to_brackets()}\n")
            chunk.clear()

        for tree in iter_trees(path, require_labels=False):
            chunk.append(tree)
            if len(chunk) >= 8 * batch_size:
                flush()
        flush()
        return written

    def __repr__(self) -> str:
        recipe = self.task.recipe
        return f"TreeSentimentPredictor({recipe.model.cell} Tree-LSTM, classes {json.dumps(self.labels)})"
