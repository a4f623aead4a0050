"""The predictor of tree-sentiment models (what :func:`seqtag.load` returns for them)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, Union

from seqtag.data.trees import Tree, iter_trees, parse_tree, read_trees
from seqtag.errors import DataError
from seqtag.tasks.predictor import Predictor
from seqtag.tasks.tree_sentiment.task import SST_LABELS, TreeSentimentTask

TreeInput = Union[str, Tree, Mapping[str, Any]]


@dataclass
class NodePrediction:
    """One node: its id, the words it spans, its predicted class and the class probabilities."""

    node: int
    text: str
    label: str
    probabilities: dict[str, float]

    @property
    def confidence(self) -> float:
        """Probability of the predicted class."""
        return self.probabilities[self.label]


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
        return f"TreePrediction({self.label!r} {self.probabilities[self.label]:.3f}: {self.tree.text()!r})"


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
        if isinstance(tree, Tree):
            return tree
        if isinstance(tree, str):
            return parse_tree(tree.strip(), require_labels=False)
        if isinstance(tree, Mapping):
            unknown = set(tree) - {"children", "words", "labels", "root"}
            if unknown or "children" not in tree or "words" not in tree:
                raise DataError(
                    "a tree mapping has keys 'children' and 'words' (and optionally 'labels', 'root'); "
                    f"got {sorted(tree)}"
                )
            children = [list(map(int, kids)) for kids in tree["children"]]
            words = [None if w is None else str(w) for w in tree["words"]]
            labels = list(tree.get("labels") or [None] * len(children))
            # the root is found by TreeStructure.build; Tree.root matters for text and brackets
            parents = {c for kids in children for c in kids}
            roots = [i for i in range(len(children)) if i not in parents]
            root = int(tree.get("root", roots[0] if len(roots) == 1 else 0))
            return Tree(children, words, labels, root)
        raise DataError(f"cannot read a tree from a {type(tree).__name__}; give a bracketed string, a Tree or a mapping")

    def _result(self, tree: Tree, probabilities: list[list[float]]) -> TreePrediction:
        names = self.task.class_names
        nodes = []
        for node, row in enumerate(probabilities):
            distribution = dict(zip(names, row, strict=True))
            best = names[max(range(len(row)), key=row.__getitem__)]
            nodes.append(NodePrediction(node, tree.text(node), best, distribution))
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
