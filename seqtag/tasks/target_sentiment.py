"""Target-dependent sentiment classification: LSTM, TD-LSTM and TC-LSTM (Tang et al. 2015).

Reads the 3-line format of Dong et al. (2014) (seqtag/data/target.py), builds
the word vocabulary from the training split (words outside it keep their
pretrained vectors in a frozen table), and classifies the polarity towards the
target as negative, neutral or positive. Corpora without a dev file get a
stratified, seeded part of train held out for early stopping.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from seqtag import transfer
from seqtag.data.target import LABEL_NAMES, POLARITIES, TargetExample, holdout_split, label_counts, read_target_file
from seqtag.data.text import TokenizerConfig
from seqtag.data.vocab import Vocabulary
from seqtag.embeddings import PretrainedVectors, recipe_vectors, word_vocabulary
from seqtag.errors import DataError
from seqtag.models.target_lstm import TargetBatch, TargetLSTM
from seqtag.recipe import EmbeddingsConfig, Recipe, Section, TokenizerSection, register_recipe
from seqtag.tasks.base import Task, register_task
from seqtag.tasks.tagging import WordIndex, length_batches

log = logging.getLogger(__name__)


class TargetDataConfig(Section):
    """A target sentiment corpus: 3-line files (sentence with ``$T$``, target, polarity) in ``dir``."""

    dir: str = "data/twitter-td"
    train: str = "train.raw"
    dev: str | None = Field(None, description="dev file; without one, part of train is held out")
    test: str | None = "test.raw"
    dev_fraction: float = Field(
        0.1, ge=0, lt=1, description="share of train held out as dev when there is no dev file; 0: none, train on "
        "all of train for training.max_epochs epochs and keep the last"
    )
    dev_seed: int = Field(1, description="seed of that held-out split (fixed, so every model seed sees the same split)")


class TargetModelConfig(Section):
    """LSTM / TD-LSTM / TC-LSTM (Tang et al. 2015)."""

    architecture: Literal["lstm", "td-lstm", "tc-lstm"] = "td-lstm"
    hidden_size: int = Field(100, ge=1, description="state size of each LSTM")
    dropout: float = Field(0.0, ge=0, lt=1, description="on the word vectors the LSTMs read")
    output_dropout: float = Field(0.0, ge=0, lt=1, description="on the final states before the softmax layer")
    init_range: float | None = Field(
        None, gt=0, description="uniform init U(-r, r) of LSTM and softmax weights (Tang et al.: 0.003); default PyTorch's"
    )
    word_lr_scale: float = Field(1.0, gt=0, description="learning-rate factor of the fine-tuned word vectors")
    word_dropout: float = Field(0.0, ge=0, lt=1, description="probability of reading a word as <unk> during training")
    target_dropout: float = Field(
        0.0, ge=0, lt=1, description="tc-lstm: dropout on the target vector appended to every word, one mask per "
        "example (the vector is the same at every step)"
    )
    class_balance: float = Field(
        0.0, ge=0, le=1, description="exponent a of the loss's class weights (n / (k n_c))^a, n_c the class's training "
        "examples: 0 unweighted, 1 balanced (each class weighs as much in total)"
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the cross-entropy loss")
    word_update: Literal["optimizer", "sgd"] = Field(
        "optimizer", description="how the fine-tuned word vectors learn: by training.optimizer like the other weights, "
        "or by plain SGD (at training.lr times word_lr_scale)"
    )
    init_from: str | None = Field(
        None,
        description="a trained target-sentiment model file to start from (transfer learning, e.g. from another "
        "corpus): word vectors are copied by symbol, every other weight whose name and shape match is copied",
    )


class TargetSentimentRecipe(Recipe):
    task: Literal["target-sentiment"] = "target-sentiment"
    data: TargetDataConfig = TargetDataConfig()
    tokenizer: TokenizerSection = TokenizerSection()
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    model: TargetModelConfig = TargetModelConfig()
    select_by: Literal["accuracy", "macro_f1"] = Field("accuracy", description="dev metric that picks the best epoch")


register_recipe("target-sentiment", TargetSentimentRecipe)


@dataclass
class EncodedTarget:
    """An example as word indices in the order each LSTM reads them."""

    left: list[int]
    right: list[int]
    target: list[int]
    label: int | None

    def __len__(self) -> int:
        return max(len(self.left), len(self.right))


def classification_metrics(gold: Sequence[int], predicted: Sequence[int], num_classes: int = len(POLARITIES)) -> dict[str, Any]:
    """Accuracy, macro-F1 (mean of the per-class F1, classes absent from both sides count 0) and
    per-class precision/recall/F1/support; all in percent."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    pairs = Counter(zip(gold, predicted, strict=True))
    per_class: dict[str, dict[str, float | int]] = {}
    f1s = []
    for c in range(num_classes):
        tp = pairs[(c, c)]
        gold_c = sum(n for (g, _), n in pairs.items() if g == c)
        pred_c = sum(n for (_, p), n in pairs.items() if p == c)
        precision = tp / pred_c if pred_c else 0.0
        recall = tp / gold_c if gold_c else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        per_class[LABEL_NAMES[POLARITIES[c]]] = {"precision": 100 * precision, "recall": 100 * recall, "f1": 100 * f1, "support": gold_c}
    correct = sum(n for (g, p), n in pairs.items() if g == p)
    return {
        "accuracy": 100.0 * correct / max(len(gold), 1),
        "macro_f1": 100.0 * sum(f1s) / num_classes,
        "per_class": per_class,
    }


def class_weights(examples: Sequence[TargetExample], labels: Sequence[str], exponent: float) -> torch.Tensor:
    """Loss weights ``(n / (k n_c)) ** exponent`` of the ``k`` classes ``labels``, ``n_c`` the
    examples of class ``c`` among the ``n`` labelled ``examples``; ``(k,)``. Exponent 1 gives
    every class the same total weight, 0 leaves the loss unweighted."""
    counts = Counter(e.label for e in examples if e.label is not None)
    missing = [LABEL_NAMES[label] for label in labels if not counts[label]]
    if missing:
        raise DataError(f"model.class_balance: no training example is {' or '.join(missing)}", examples[0].path)
    total = sum(counts[label] for label in labels)
    return torch.tensor([(total / (len(labels) * counts[label])) ** exponent for label in labels])


@register_task
class TargetSentimentTask(Task):
    """Polarity towards a target in a sentence; accuracy and macro-F1."""

    name = "target-sentiment"

    def __init__(
        self,
        recipe: TargetSentimentRecipe,
        words: WordIndex,
        word_dim: int,
        model: TargetLSTM | None = None,
        tokenizer_config: TokenizerConfig | None = None,
    ) -> None:
        self.recipe = recipe
        self.words = words
        self.word_dim = word_dim
        self.labels = list(POLARITIES)
        self.tokenizer_config = tokenizer_config or TokenizerConfig.from_json(recipe.tokenizer.model_dump())
        if model is None:
            config = recipe.model
            model = TargetLSTM(
                config.architecture,
                num_trainable_words=words.num_trainable,
                num_frozen_words=len(words.vocab) - words.num_trainable,
                word_dim=word_dim,
                hidden_size=config.hidden_size,
                num_classes=len(self.labels),
                dropout=config.dropout,
                output_dropout=config.output_dropout,
                init_range=config.init_range,
                fine_tune=recipe.embeddings.fine_tune,
                word_dropout=config.word_dropout,
                target_dropout=config.target_dropout,
            )
        self.model = model
        #: ``(C,)`` loss weights of the classes (``model.class_balance``), set by :meth:`build`; None: unweighted.
        self.class_weights: torch.Tensor | None = None

    @property
    def main_metric(self) -> str:  # type: ignore[override]
        """``accuracy`` or ``macro_f1``, as the recipe's ``select_by`` says."""
        return self.recipe.select_by

    # ----------------------------------------------------------------- building

    @classmethod
    def read_split(cls, recipe: TargetSentimentRecipe, split: str) -> list[TargetExample] | None:
        """Read the ``train``/``dev``/``test`` file named in the recipe (None when unset)."""
        path = recipe.split_file(split)
        if path is None:
            return None
        examples = read_target_file(path, labelled=True)
        if not examples:
            raise DataError("no examples in this file", path)
        counts = label_counts(examples)
        log.info("read %s: %d examples (%s)", path, len(examples), ", ".join(f"{LABEL_NAMES[p]} {n}" for p, n in counts.items()))
        return examples

    @classmethod
    def from_recipe(cls, recipe: TargetSentimentRecipe) -> tuple["TargetSentimentTask", dict[str, list[TargetExample]]]:  # type: ignore[override]
        splits: dict[str, list[TargetExample]] = {}
        for split in ("train", "dev", "test"):
            examples = cls.read_split(recipe, split)
            if examples is not None:
                splits[split] = examples
        if "dev" not in splits and recipe.data.dev_fraction > 0:
            train, dev = holdout_split(splits["train"], recipe.data.dev_fraction, recipe.data.dev_seed)
            if not dev or not train:
                raise DataError(f"too few examples ({len(splits['train'])}) to hold out a dev part", splits["train"][0].path)
            splits = {"train": train, "dev": dev, **({"test": splits["test"]} if "test" in splits else {})}
            log.info("held out %d of the %d training examples as dev (seed %d)", len(dev), len(train) + len(dev), recipe.data.dev_seed)
        return cls.from_splits(recipe, splits), splits

    @classmethod
    def from_splits(cls, recipe: TargetSentimentRecipe, splits: dict[str, list[TargetExample]]) -> "TargetSentimentTask":  # type: ignore[override]
        vectors = recipe_vectors(recipe.embeddings)
        task = cls.build(recipe, splits["train"], vectors)
        if recipe.model.init_from:
            path = recipe.resolve_path(recipe.model.init_from)
            assert path is not None
            task.warm_start(path)
        return task

    def warm_start(self, path: Path) -> None:
        """Start from the weights of the trained model in ``path`` (``model.init_from``): word
        rows by symbol, every other weight whose name and shape agree (e.g. a TD-LSTM's two
        LSTMs and its softmax layer, from a TD-LSTM trained on another corpus)."""
        source = transfer.load_source(path, TargetSentimentTask, self.word_dim)
        counts = {"word vectors": transfer.copy_word_rows(self.model.words, self.words.vocab, source.model.words,
                                                          source.words.vocab)}
        copied = transfer.copy_matching(self.model, source.model, skip=["words."])
        transfer.report(path, counts, copied, needed="left")

    @classmethod
    def build(
        cls, recipe: TargetSentimentRecipe, train: Sequence[TargetExample], vectors: PretrainedVectors | None
    ) -> "TargetSentimentTask":
        """Vocabulary from the training examples only, a fresh model, pretrained rows copied in."""
        emb = recipe.embeddings
        lowercase = emb.lowercase
        vocab, num_trainable, counts, word_dim = word_vocabulary((tok for e in train for tok in e.tokens), emb, vectors)
        task = cls(recipe, WordIndex(vocab, num_trainable, lowercase), word_dim)
        embedder = task.model.words
        found = 0
        with torch.no_grad():
            if vectors is not None:
                for index in range(2, num_trainable):
                    row = vectors.find(vocab.itos[index])
                    if row is not None:
                        embedder.embedding.weight[index] = torch.from_numpy(vectors.vectors[row])
                        found += 1
                if embedder.frozen.size(0):
                    rows = [vectors.index[w] for w in vocab.itos[num_trainable:]]
                    embedder.frozen.copy_(torch.from_numpy(vectors.vectors[rows]))
            embedder.embedding.weight[0].zero_()
            embedder.embedding.weight[1].zero_()  # <unk>: no information until word dropout trains it
        log.info(
            "vocabulary: %d training words (%d with pretrained vectors), %d pretrained-only words; model %s",
            num_trainable - 2, found, len(vocab) - num_trainable, recipe.model.architecture,
        )
        if recipe.model.class_balance > 0:
            task.class_weights = class_weights(train, task.labels, recipe.model.class_balance)
            log.info("class weights: %s", ", ".join(
                f"{LABEL_NAMES[p]} {w:.3f}" for p, w in zip(task.labels, task.class_weights.tolist(), strict=True)))
        return task

    # ------------------------------------------------------------- persistence

    def vocab_state(self) -> dict[str, Any]:
        return {
            "words": self.words.vocab.to_json(),
            "num_trainable_words": self.words.num_trainable,
            "lowercase": self.words.lowercase,
            "word_dim": self.word_dim,
            "labels": self.labels,
            "tokenizer": self.tokenizer_config.to_json(),
        }

    @classmethod
    def from_state(cls, recipe: TargetSentimentRecipe, vocab: dict[str, Any], tensors: dict[str, torch.Tensor]) -> "TargetSentimentTask":  # type: ignore[override]
        if list(vocab["labels"]) != list(POLARITIES):
            raise ValueError(f"unexpected labels {vocab['labels']}")
        words = WordIndex(Vocabulary.from_json(vocab["words"]), int(vocab["num_trainable_words"]), bool(vocab["lowercase"]))
        task = cls(recipe, words, int(vocab["word_dim"]), tokenizer_config=TokenizerConfig.from_json(vocab["tokenizer"]))
        task.model.load_state_dict(tensors, strict=True)
        task.model.eval()
        return task

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The rest, then the fine-tuned word table at ``model.word_lr_scale`` times the rate, by plain SGD
        with ``model.word_update: sgd``."""
        table = self.model.words.embedding.weight
        rest = [p for name, p in self.model.named_parameters() if p.requires_grad and p is not table]
        groups: list[dict[str, Any]] = [{"params": rest}]
        if table.requires_grad:
            groups.append({"params": [table], "lr_scale": self.recipe.model.word_lr_scale,
                           "plain_sgd": self.recipe.model.word_update == "sgd"})
        return groups

    # ---------------------------------------------------------------- batching

    def encode(self, example: TargetExample) -> EncodedTarget:
        """Word indices of what each LSTM reads; the gold class when labelled."""
        index = self.words.index
        if self.recipe.model.architecture == "lstm":
            left, right = [index(t) for t in example.tokens], []
        else:
            left = [index(t) for t in example.left]
            right = [index(t) for t in reversed(example.right)]
        label = None if example.label is None else self.labels.index(example.label)
        return EncodedTarget(left, right, [index(t) for t in example.target], label)

    def collate(self, items: Sequence[EncodedTarget]) -> TargetBatch:
        """Pad encoded examples into a :class:`TargetBatch`."""

        def padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
            lengths = torch.tensor([len(row) for row in rows], dtype=torch.long)
            out = torch.zeros(len(rows), max(1, int(lengths.max())), dtype=torch.long)  # (B, T)
            for i, row in enumerate(rows):
                out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            return out, lengths

        left, left_lengths = padded([item.left for item in items])
        right, right_lengths = padded([item.right for item in items])
        target, target_lengths = padded([item.target for item in items])
        labels = None
        if all(item.label is not None for item in items):
            labels = torch.tensor([item.label for item in items], dtype=torch.long)  # (B,)
        return TargetBatch(left, left_lengths, right, right_lengths, target, target_lengths, labels)

    def _encoded(self, examples: Sequence[TargetExample]) -> list[EncodedTarget]:
        # Training encodes the same split every epoch: cache on the list object's identity.
        cache = getattr(self, "_encode_cache", None)
        if cache is not None and cache[0] is examples:
            return cache[1]
        encoded = [self.encode(e) for e in examples]
        self._encode_cache = (examples, encoded)
        return encoded

    def batches(
        self,
        examples: Sequence[TargetExample],
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> Iterator[TargetBatch]:
        """Length-bucketed batches; training (``shuffle``) batches skip unlabelled examples."""
        encoded = self._encoded(examples)
        usable = [i for i, e in enumerate(encoded) if e.label is not None] if shuffle else list(range(len(encoded)))
        for order in length_batches([len(encoded[i]) for i in usable], batch_size, generator if shuffle else None):
            yield self.collate([encoded[usable[i]] for i in order])

    def loss(self, batch: TargetBatch, reduction: str = "sum") -> torch.Tensor:
        return self.model.loss(batch, reduction, self.class_weights, self.recipe.model.label_smoothing)

    # -------------------------------------------------------------- prediction

    @torch.inference_mode()
    def predict_probabilities(self, examples: Sequence[TargetExample], batch_size: int = 256) -> torch.Tensor:
        """Class probabilities ``(N, 3)`` (negative, neutral, positive), in input order."""
        self.model.eval()
        encoded = [self.encode(e) for e in examples]
        out = torch.zeros(len(encoded), len(self.labels))
        for order in length_batches([len(e) for e in encoded], batch_size):
            out[order] = self.model.probabilities(self.collate([encoded[i] for i in order]))
        return out

    def evaluate(self, examples: Sequence[TargetExample], batch_size: int = 256) -> dict[str, Any]:
        """Accuracy, macro-F1 and per-class scores (percent) on labelled examples."""
        missing = next((e for e in examples if e.label is None), None)
        if missing is not None:
            raise DataError("evaluation needs the polarity of every example", missing.path, missing.line)
        predicted = self.predict_probabilities(examples, batch_size).argmax(1).tolist()
        return classification_metrics([self.labels.index(e.label) for e in examples], predicted, len(self.labels))  # type: ignore[arg-type]

    def make_predictor(self, metrics: dict[str, Any] | None = None) -> Any:
        from seqtag.target_predictor import TargetSentimentClassifier

        return TargetSentimentClassifier(self, metrics)

    def describe(self, splits: dict[str, list[Any]]) -> str:
        text = super().describe(splits)
        return f"{text}; {self.recipe.model.architecture}, early stopping on dev {self.main_metric}"
