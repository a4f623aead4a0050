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
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from pydantic import Field

from seqtag.data.trees import Tree, read_trees
from seqtag.data.vocab import Vocabulary
from seqtag.embeddings import PretrainedVectors, recipe_vectors, word_vocabulary
from seqtag.errors import DataError
from seqtag.models.tree_sentiment import TreeSentimentModel
from seqtag.modules.tree_lstm import IGNORE, TreeBatch, TreeStructure
from seqtag.recipe import EmbeddingsConfig, Recipe, Section, TrainingConfig, register_recipe
from seqtag.tasks.base import Task, register_task
from seqtag.tasks.tagging import WordIndex, length_batches

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


class TreeDataConfig(Section):
    """Bracketed trees with a sentiment label (0-4) on every node, one tree per line."""

    dir: str = "data/sst"
    train: str = "train.txt"
    dev: str | None = "dev.txt"
    test: str | None = "test.txt"
    classes: Literal["fine", "binary"] = Field(
        "fine", description="fine: 5 classes; binary: neutral sentences dropped, 0-1 negative, 3-4 positive"
    )
    neutral_phrases: bool = Field(
        True, description="binary: train neutral phrases as a third class (else they get no loss); "
        "predictions and scores are negative/positive either way"
    )


class TreeEmbeddingsConfig(EmbeddingsConfig):
    """Word vectors, fine-tuned with their own learning-rate factor and L2."""

    lr_scale: float = Field(0.1, gt=0, description="the word table's learning rate is training.lr times this")
    update: Literal["optimizer", "sgd"] = Field(
        "optimizer", description="how the word table learns: by training.optimizer like the other weights, or by "
        "plain SGD (Tai et al.'s code: AdaGrad for the network, SGD for the word vectors)"
    )
    weight_decay: float = Field(0.0, ge=0, description="L2 on the word table (the paper: none)")


class TreeLSTMModelConfig(Section):
    """Tree-LSTM classifier (Tai et al. 2015)."""

    cell: Literal["binary", "childsum"] = Field("binary", description="binary (N-ary, N=2) or Child-Sum Tree-LSTM")
    memory: int | None = Field(
        None, ge=1, description="memory size; default the paper's: 150 for binary, 168 for Child-Sum"
    )
    dropout: float = Field(0.5, ge=0, lt=1, description="on node states before the classifier")
    input_dropout: float = Field(0.0, ge=0, lt=1, description="on word vectors")

    @property
    def memory_size(self) -> int:
        return self.memory if self.memory is not None else (150 if self.cell == "binary" else 168)


class TreeTrainingConfig(TrainingConfig):
    """The trainer's settings with Tai et al.'s defaults: AdaGrad, lr 0.05, L2 1e-4, batch 25,
    loss per tree, no clipping (they apply to keys a recipe's ``training`` section leaves out)."""

    optimizer: Literal["sgd", "adam", "adamw", "adagrad"] = "adagrad"
    lr: float = Field(0.05, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(25, ge=1)
    loss_reduction: Literal["sum", "mean"] = "mean"
    clip_grad_norm: float | None = Field(None, gt=0)


class TreeSentimentRecipe(Recipe):
    task: Literal["tree-sentiment"] = "tree-sentiment"
    data: TreeDataConfig = TreeDataConfig()
    embeddings: TreeEmbeddingsConfig = TreeEmbeddingsConfig()
    model: TreeLSTMModelConfig = TreeLSTMModelConfig()
    training: TreeTrainingConfig = TreeTrainingConfig()


register_recipe("tree-sentiment", TreeSentimentRecipe)


@register_task
class TreeSentimentTask(Task):
    """Tree-LSTM sentiment on every node; root accuracy is the main metric."""

    name = "tree-sentiment"
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
            m = recipe.model
            model = TreeSentimentModel(
                m.cell,
                m.memory_size,
                words.num_trainable,
                len(words.vocab) - words.num_trainable,
                word_dim,
                len(self.output_names),
                m.dropout,
                m.input_dropout,
                recipe.embeddings.fine_tune,
            )
        self.model = model
        self._cache: tuple[Sequence[Tree], list[TreeStructure]] | None = None

    # ----------------------------------------------------------------- building

    def keep(self, tree: Tree) -> bool:
        """Whether ``tree`` belongs to the data of this setting (binary: not a neutral root)."""
        return self.classes == "fine" or tree.labels[tree.root] != "2"

    @classmethod
    def read_split(cls, recipe: TreeSentimentRecipe, split: str) -> list[Tree] | None:
        """Read the ``train``/``dev``/``test`` file of the recipe (None when unset); all labels checked."""
        path = recipe.split_file(split)
        if path is None:
            return None
        trees = read_trees(path, labels=SST_LABELS)
        if not trees:
            raise DataError("no trees in this file", path)
        return trees

    @classmethod
    def from_recipe(cls, recipe: TreeSentimentRecipe) -> tuple["TreeSentimentTask", dict[str, list[Tree]]]:  # type: ignore[override]
        splits: dict[str, list[Tree]] = {}
        for split in ("train", "dev", "test"):
            trees = cls.read_split(recipe, split)
            if trees is not None:
                splits[split] = trees
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
    def from_splits(cls, recipe: TreeSentimentRecipe, splits: dict[str, list[Tree]]) -> "TreeSentimentTask":  # type: ignore[override]
        vectors = recipe_vectors(recipe.embeddings)
        return cls.build(recipe, splits["train"], vectors)

    @classmethod
    def build(cls, recipe: TreeSentimentRecipe, train: Sequence[Tree], vectors: PretrainedVectors | None) -> "TreeSentimentTask":
        """Vocabulary from the training trees, a fresh model, pretrained rows copied in.

        Training words without a pretrained vector start uniform in [-0.05, 0.05] (as in the paper).
        """
        emb = recipe.embeddings
        vocab, num_trainable, counts, word_dim = word_vocabulary((w for t in train for w in t.words if w is not None), emb, vectors)
        task = cls(recipe, WordIndex(vocab, num_trainable, emb.lowercase), word_dim)
        embedder = task.model.words
        found = 0
        with torch.no_grad():
            embedder.embedding.weight.uniform_(-0.05, 0.05)
            embedder.embedding.weight[0].zero_()
            if vectors is not None:
                for index in range(2, num_trainable):
                    row = vectors.find(vocab.itos[index])
                    if row is not None:
                        embedder.embedding.weight[index] = torch.from_numpy(vectors.vectors[row])
                        found += 1
                if embedder.frozen.size(0):
                    rows = [vectors.index[w] for w in vocab.itos[num_trainable:]]
                    embedder.frozen.copy_(torch.from_numpy(vectors.vectors[rows]))
        log.info(
            "vocabulary: %d training words (%d with pretrained vectors), %d pretrained-only words; %s Tree-LSTM, memory %d",
            num_trainable - 2, found, len(vocab) - num_trainable, recipe.model.cell, recipe.model.memory_size,
        )
        return task

    # ------------------------------------------------------------- persistence

    def vocab_state(self) -> dict[str, Any]:
        return {
            "words": self.words.vocab.to_json(),
            "num_trainable_words": self.words.num_trainable,
            "lowercase": self.words.lowercase,
            "word_dim": self.word_dim,
            "classes": self.class_names,
            "outputs": self.output_names,
        }

    @classmethod
    def from_state(cls, recipe: TreeSentimentRecipe, vocab: dict[str, Any], tensors: dict[str, torch.Tensor]) -> "TreeSentimentTask":  # type: ignore[override]
        words = WordIndex(Vocabulary.from_json(vocab["words"]), int(vocab["num_trainable_words"]), bool(vocab["lowercase"]))
        task = cls(recipe, words, int(vocab["word_dim"]))
        outputs = list(vocab.get("outputs", vocab["classes"]))  # files without "outputs": one output per class
        if list(vocab["classes"]) != task.class_names or outputs != task.output_names:
            raise ValueError(f"classes {outputs} do not match the recipe's {task.output_names}")
        task.model.load_state_dict(tensors, strict=True)
        task.model.eval()
        return task

    # ---------------------------------------------------------------- encoding

    def encode(self, tree: Tree, with_labels: bool = True) -> TreeStructure:
        """Word indices and class indices of a tree; checks it fits the cell (binary: <= 2 children).

        Raises:
            DataError: a malformed structure or an unknown label, naming the tree's file and line.
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
                    raise DataError(f"node {node} has label {label!r}, not one of {', '.join(SST_LABELS)}", tree.path, tree.line)
        try:
            return TreeStructure.build(tree.children, word_ids, labels)
        except ValueError as error:
            raise DataError(f"malformed tree: {error}", tree.path, tree.line) from None

    def _encoded(self, trees: Sequence[Tree]) -> list[TreeStructure]:
        # Training encodes the same split every epoch: cache on the list object's identity.
        if self._cache is not None and self._cache[0] is trees:
            return self._cache[1]
        encoded = [self.encode(t) for t in trees]
        self._cache = (trees, encoded)
        return encoded

    def batches(
        self, examples: Sequence[Tree], batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[TreeBatch]:
        """Batches of trees of similar size (fewer levels per batch); shuffled with ``generator``."""
        encoded = self._encoded(examples)
        for order in length_batches([len(e) for e in encoded], batch_size, generator if shuffle else None):
            yield TreeBatch.build([encoded[i] for i in order])

    def loss(self, batch: TreeBatch, reduction: str = "sum") -> torch.Tensor:
        """Cross-entropy summed over all labelled nodes; ``mean`` divides by the number of trees."""
        scores = self.model(batch)  # (N, C)
        loss = torch.nn.functional.cross_entropy(scores, batch.labels, ignore_index=IGNORE, reduction="sum")
        return loss / batch.num_trees if reduction == "mean" else loss

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
            batch = TreeBatch.build([structures[i] for i in order])
            probabilities = self.model(batch).softmax(dim=-1)  # (N, outputs), node-table order
            if len(self.decision_columns) != probabilities.size(1):
                probabilities = probabilities[:, self.decision_columns]  # (N, C)
                probabilities = probabilities / probabilities.sum(dim=-1, keepdim=True)
            per_node = probabilities[batch.rows - 1]  # (N, C), input order
            for k, i in enumerate(order):
                results[i] = per_node[batch.offsets[k] : batch.offsets[k + 1]]
        return results

    def evaluate(self, examples: Sequence[Tree], batch_size: int = 256) -> dict[str, Any]:
        """Root accuracy (main metric) and all-node accuracy over labelled nodes, in percent."""
        structures = [self.encode(t) for t in examples if self.keep(t)]
        if not structures:
            raise DataError("no trees to evaluate in this setting")
        probabilities = self.predict_probabilities(structures, batch_size)
        root_right = node_right = nodes = 0
        # model output index -> class index (a neutral training class is not scored)
        to_class = torch.full((len(self.output_names) + 1,), IGNORE, dtype=torch.long)  # last entry: IGNORE
        to_class[self.decision_columns] = torch.arange(len(self.class_names))
        for structure, probs in zip(structures, probabilities, strict=True):
            predicted = probs.argmax(dim=-1)
            outputs = torch.from_numpy(structure.labels)
            gold = to_class[torch.where(outputs == IGNORE, len(self.output_names), outputs)]
            labelled = gold != IGNORE
            node_right += int((predicted[labelled] == gold[labelled]).sum())
            nodes += int(labelled.sum())
            root_right += int(predicted[structure.root] == gold[structure.root])
        return {
            "root_accuracy": 100.0 * root_right / len(structures),
            "all_accuracy": 100.0 * node_right / max(nodes, 1),
            "trees": len(structures),
            "nodes": nodes,
        }

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The rest, then the word table with its own lr factor, L2 and update rule (``embeddings.lr_scale`` /
        ``weight_decay`` / ``update``)."""
        words = [p for p in self.model.words.parameters() if p.requires_grad]
        ids = {id(p) for p in words}
        rest = [p for p in self.model.parameters() if p.requires_grad and id(p) not in ids]
        groups: list[dict[str, Any]] = [{"params": rest}]
        if words:
            emb = self.recipe.embeddings
            groups.append({"params": words, "lr_scale": emb.lr_scale, "weight_decay": emb.weight_decay,
                           "plain_sgd": emb.update == "sgd"})
        return groups

    def make_predictor(self, metrics: dict[str, Any] | None = None) -> Any:
        from seqtag.tree_predictor import TreeSentimentPredictor

        return TreeSentimentPredictor(self, metrics)

    def describe(self, splits: dict[str, list[Any]]) -> str:
        text = super().describe(splits)
        return f"{text}; {self.recipe.model.cell} Tree-LSTM, {self.classes} classes"
