"""Sentiment of every node of a tree with Tree-LSTMs: the Stanford Sentiment Treebank task.

Tai, Socher & Manning (2015), section 4.1: every node of a binarised
constituency tree carries a sentiment label; the loss is the cross-entropy
summed over all nodes, the metric the accuracy at the root. ``fine`` uses the
five SST classes; ``binary`` drops the sentences whose root is neutral and
maps 0-1 to negative and 3-4 to positive. Neutral phrases inside the remaining
trees are either a third training class (``data.neutral_phrases: true``,
the better choice on dev; predictions still choose between negative and
positive) or get no loss.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from seqtag.data.batching import length_batches
from seqtag.data.tree_batching import IGNORE, TreeBatch, TreeStructure
from seqtag.data.trees import Tree, read_trees
from seqtag.data.vocab import WordIndex
from seqtag.embeddings import PretrainedVectors
from seqtag.errors import DataError, shown
from seqtag.evaluation import tree_accuracies
from seqtag.tasks.base import Task
from seqtag.tasks.tree_sentiment.model import TreeSentimentModel
from seqtag.tasks.tree_sentiment.recipe import TreeSentimentRecipe

log = logging.getLogger(__name__)

SST_LABELS = ("0", "1", "2", "3", "4")
FINE = ["very negative", "negative", "neutral", "positive", "very positive"]
BINARY = ["negative", "positive"]
BINARY_WITH_NEUTRAL = ["negative", "neutral", "positive"]
# SST label -> model output index of each setting (IGNORE: no loss)
OUTPUT_OF = {
    "fine": {"0": 0, "1": 1, "2": 2, "3": 3, "4": 4},
    "binary": {"0": 0, "1": 0, "2": IGNORE, "3": 1, "4": 1},
    "binary+neutral": {"0": 0, "1": 0, "2": 1, "3": 2, "4": 2},
}


class TreeSentimentTask(Task):
    """Tree-LSTM sentiment on every node; root accuracy is the main metric."""

    name = "tree-sentiment"
    recipe_class = TreeSentimentRecipe
    example_noun = "trees"
    may_skip_parameters = True  # a batch of one-word trees never reaches the composition weights
    main_metric = "root_accuracy"

    def __init__(self, recipe: TreeSentimentRecipe, words: WordIndex, word_dim: int, model: TreeSentimentModel | None = None) -> None:
        self.recipe = recipe
        self.words = words
        self.word_dim = word_dim
        self.classes = recipe.data.classes
        setting = self.classes
        if setting == "binary" and recipe.data.neutral_phrases:
            setting = "binary+neutral"
        self.output_names = {"fine": FINE, "binary": BINARY, "binary+neutral": BINARY_WITH_NEUTRAL}[setting]
        self.output_of = OUTPUT_OF[setting]
        # the classes predictions choose from, and the model outputs they are
        self.class_names = FINE if self.classes == "fine" else BINARY
        self.decision_columns = [self.output_names.index(name) for name in self.class_names]
        if model is None:
            model = TreeSentimentModel(recipe.model, self.word_embedder(random=False), len(self.output_names))
        self.model = model

    # ----------------------------------------------------------------- building

    def keep(self, tree: Tree) -> bool:
        """Whether ``tree`` belongs to the data of this setting (binary: not a neutral root)."""
        return self.classes == "fine" or tree.labels[tree.root] != "2"

    @classmethod
    def read_file(cls, recipe: TreeSentimentRecipe, path: Path) -> list[Tree]:
        """The trees of one file, every node's label checked."""
        return read_trees(path, labels=SST_LABELS)

    @classmethod
    def from_recipe(cls, recipe: TreeSentimentRecipe) -> tuple["TreeSentimentTask", dict[str, list[Tree]]]:  # type: ignore[override]
        splits = cls.read_splits(recipe)
        task = cls.from_splits(recipe, splits)
        for split, trees in splits.items():
            kept = [t for t in trees if task.keep(t)]
            nodes = sum(len(t) for t in kept)
            log.info("%s: %d trees (%d with a neutral root dropped), %d nodes", split, len(kept), len(trees) - len(kept), nodes)
            if not kept:
                raise DataError(f"no {split} trees left in the {task.classes} setting", trees[0].path)
            splits[split] = kept
        return task, splits

    @classmethod
    def build(cls, recipe: TreeSentimentRecipe, train: Sequence[Tree], vectors: PretrainedVectors | None) -> "TreeSentimentTask":
        """Vocabulary from the training trees, a fresh model, pretrained rows copied in.

        Training words without a pretrained vector start uniform in [-0.05, 0.05] (as in the paper).
        """
        words, _, word_dim = cls.word_index(recipe, (w for t in train for w in t.words if w is not None), vectors)
        task = cls(recipe, words, word_dim)
        with torch.no_grad():
            task.model.words.embedding.weight.uniform_(-0.05, 0.05)
            task.model.words.embedding.weight[0].zero_()
        missing = cls.copy_pretrained(task.model.words, words, vectors)
        log.info(
            "vocabulary: %d training words (%d with pretrained vectors), %d pretrained-only words; %s Tree-LSTM, memory %d",
            words.num_trainable - 2, words.num_trainable - 2 - len(missing), words.num_frozen, recipe.model.cell,
            recipe.model.memory_size,
        )
        return task

    # ------------------------------------------------------------- persistence

    def extra_state(self) -> dict[str, Any]:
        return {"classes": self.class_names, "outputs": self.output_names}

    @classmethod
    def from_vocab(cls, recipe: TreeSentimentRecipe, vocab: dict[str, Any]) -> "TreeSentimentTask":
        task = cls(recipe, WordIndex.from_json(vocab), int(vocab["word_dim"]))
        outputs = list(vocab.get("outputs", vocab["classes"]))  # files without "outputs": one output per class
        if list(vocab["classes"]) != task.class_names or outputs != task.output_names:
            raise ValueError(f"classes {outputs} do not match the recipe's {task.output_names}")
        return task

    # ---------------------------------------------------------------- encoding

    def encode(self, tree: Tree, with_labels: bool = True) -> TreeStructure:  # type: ignore[override]
        """Word indices and class indices of a tree; checks it fits the cell (binary: <= 2 children).

        Raises:
            DataError: a malformed structure, a ``root`` that is not the tree's real root (a node
                with a parent) or an unknown label, naming the tree's file and line.
        """
        if self.recipe.model.cell == "binary":
            for node, kids in enumerate(tree.children):
                if len(kids) > 2:
                    raise DataError(
                        f"node {node} has {len(kids)} children; the binary Tree-LSTM takes at most 2 "
                        "(binarise the tree or use model.cell: childsum)", tree.path, tree.line,
                    )
        index = self.words.index
        word_ids = [-1 if w is None else index(w) for w in tree.words]
        labels = None
        if with_labels:
            labels = []
            for node, label in enumerate(tree.labels):
                if label is None:
                    labels.append(IGNORE)
                elif label in self.output_of:
                    labels.append(self.output_of[label])
                else:
                    raise DataError(f"node {node} has label {shown(label)}, not one of {', '.join(SST_LABELS)}", tree.path, tree.line)
        try:
            structure = TreeStructure.build(tree.children, word_ids, labels)
        except ValueError as error:
            raise DataError(f"malformed tree: {error}", tree.path, tree.line) from None
        if tree.root != structure.root:
            raise DataError(
                f"malformed tree: the root is given as node {tree.root}, but the tree's root (the one node that is "
                f"nobody's child) is node {structure.root}; leave the root out or give that node",
                tree.path, tree.line,
            )
        return structure

    def collate(self, items: Sequence[TreeStructure]) -> TreeBatch:
        """Trees of similar size batched into one node table (fewer levels per batch)."""
        return TreeBatch.build(items)

    def batch_size_of(self, batch: TreeBatch) -> int:
        return batch.num_trees

    # -------------------------------------------------------------- prediction

    @torch.inference_mode()
    def predict_probabilities(self, structures: Sequence[TreeStructure], batch_size: int = 256) -> list[torch.Tensor]:
        """Probabilities ``(n_i, C)`` of the classes in ``class_names`` for every node of each tree,
        nodes in the tree's own order (a neutral training class is left out and the rest renormalised)."""
        self.model.eval()
        results: list[torch.Tensor] = [None] * len(structures)  # type: ignore[list-item]
        for order in length_batches([len(s) for s in structures], batch_size):
            batch = self.batch([structures[i] for i in order])
            probabilities = self.model(batch).softmax(dim=-1).cpu()  # (N, outputs), node-table order
            if len(self.decision_columns) != probabilities.size(1):
                probabilities = probabilities[:, self.decision_columns]  # (N, C)
                probabilities = probabilities / probabilities.sum(dim=-1, keepdim=True)
            per_node = probabilities[batch.rows.cpu() - 1]  # (N, C), input order
            for k, i in enumerate(order):
                results[i] = per_node[batch.offsets[k] : batch.offsets[k + 1]]
        return results

    def evaluate(self, examples: Sequence[Tree], batch_size: int = 256) -> dict[str, Any]:
        """Root accuracy (main metric) and all-node accuracy over labelled nodes, in percent."""
        structures = [self.encode(t) for t in examples if self.keep(t)]
        if not structures:
            raise DataError("no trees to evaluate in this setting")
        probabilities = self.predict_probabilities(structures, batch_size)
        # model output index -> class index (a neutral training class is not scored)
        to_class = torch.full((len(self.output_names) + 1,), IGNORE, dtype=torch.long)  # last entry: IGNORE
        to_class[self.decision_columns] = torch.arange(len(self.class_names))
        gold = []
        for structure in structures:
            outputs = torch.from_numpy(structure.labels)
            gold.append(to_class[torch.where(outputs == IGNORE, len(self.output_names), outputs)])
        predicted = [probs.argmax(dim=-1) for probs in probabilities]
        return tree_accuracies(predicted, gold, [structure.root for structure in structures])

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The rest, then the word table with its own lr factor, L2 and update rule (``embeddings.lr_scale`` /
        ``weight_decay`` / ``update``)."""
        emb = self.recipe.embeddings
        return self.word_table_groups(lr_scale=emb.lr_scale, weight_decay=emb.weight_decay, plain_sgd=emb.update == "sgd")

    def describe(self, splits: dict[str, list[Any]]) -> str:
        text = super().describe(splits)
        return f"{text}; {self.recipe.model.cell} Tree-LSTM, {self.classes} classes"
