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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from seqtag.data.batching import length_batches, pad
from seqtag.data.target import (
    LABEL_NAMES,
    POLARITIES,
    TargetExample,
    check_target,
    holdout_split,
    label_counts,
    read_target_file,
)
from seqtag.data.text import TokenizerConfig
from seqtag.data.vocab import WordIndex
from seqtag.embeddings import PretrainedVectors
from seqtag.errors import DataError
from seqtag.evaluation import classification_metrics
from seqtag.tasks.base import Task
from seqtag.tasks.target_sentiment.model import TargetBatch, TargetLSTM
from seqtag.tasks.target_sentiment.recipe import TargetSentimentRecipe

log = logging.getLogger(__name__)


@dataclass
class EncodedTarget:
    """An example as word indices in the order each LSTM reads them."""

    left: list[int]
    right: list[int]
    target: list[int]
    label: int | None

    def __len__(self) -> int:
        return max(len(self.left), len(self.right))


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


class TargetSentimentTask(Task):
    """Polarity towards a target in a sentence; accuracy and macro-F1."""

    name = "target-sentiment"
    recipe_class = TargetSentimentRecipe
    transfer_core = "left"

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
        self.tokenizer_config = tokenizer_config or TokenizerConfig.from_recipe(recipe.tokenizer)
        if model is None:
            config = recipe.model
            model = TargetLSTM(
                config.architecture,
                self.word_embedder(),
                hidden_size=config.hidden_size,
                cell=config.cell,
                num_classes=len(self.labels),
                dropout=config.dropout,
                output_dropout=config.output_dropout,
                init_range=config.init_range,
                word_dropout=config.word_dropout,
                target_dropout=config.target_dropout,
                label_smoothing=config.label_smoothing,
            )
        self.model = model

    @property
    def class_weights(self) -> torch.Tensor | None:
        """``(C,)`` loss weights of the classes (``model.class_balance``, set by :meth:`build`); None: unweighted."""
        return self.model.class_weights

    @property
    def main_metric(self) -> str:  # type: ignore[override]
        """``accuracy`` or ``macro_f1``, as the recipe's ``select_by`` says."""
        return self.recipe.select_by

    # ----------------------------------------------------------------- building

    @classmethod
    def read_file(cls, recipe: TargetSentimentRecipe, path: Path) -> list[TargetExample]:
        """The labelled examples of one 3-line file."""
        examples = read_target_file(path, labelled=True)
        counts = label_counts(examples)
        log.info("read %s: %d examples (%s)", path, len(examples), ", ".join(f"{LABEL_NAMES[p]} {n}" for p, n in counts.items()))
        return examples

    @classmethod
    def from_recipe(cls, recipe: TargetSentimentRecipe) -> tuple["TargetSentimentTask", dict[str, list[TargetExample]]]:  # type: ignore[override]
        """The task and its splits (a dev part held out of train when there is no dev file).

        Raises:
            RecipeError: tokenizer settings that a model file could not hold (checked before any data is read).
        """
        TokenizerConfig.from_recipe(recipe.tokenizer)
        splits = cls.read_splits(recipe)
        if "dev" not in splits and recipe.data.dev_fraction > 0:
            train, dev = holdout_split(splits["train"], recipe.data.dev_fraction, recipe.data.dev_seed)
            if not dev or not train:
                raise DataError(f"too few examples ({len(splits['train'])}) to hold out a dev part", splits["train"][0].path)
            splits = {"train": train, "dev": dev, **({"test": splits["test"]} if "test" in splits else {})}
            log.info("held out %d of the %d training examples as dev (seed %d)", len(dev), len(train) + len(dev), recipe.data.dev_seed)
        return cls.from_splits(recipe, splits), splits

    @classmethod
    def build(
        cls, recipe: TargetSentimentRecipe, train: Sequence[TargetExample], vectors: PretrainedVectors | None
    ) -> "TargetSentimentTask":
        """Vocabulary from the training examples only, a fresh model, pretrained rows copied in."""
        words, _, word_dim = cls.word_index(recipe, (tok for e in train for tok in e.tokens), vectors)
        task = cls(recipe, words, word_dim)
        missing = cls.copy_pretrained(task.model.words, words, vectors)
        with torch.no_grad():
            task.model.words.embedding.weight[0].zero_()
            task.model.words.embedding.weight[1].zero_()  # <unk>: no information until word dropout trains it
        log.info(
            "vocabulary: %d training words (%d with pretrained vectors), %d pretrained-only words; model %s",
            words.num_trainable - 2, words.num_trainable - 2 - len(missing), words.num_frozen, recipe.model.architecture,
        )
        if recipe.model.class_balance > 0:
            task.model.class_weights = class_weights(train, task.labels, recipe.model.class_balance)
            log.info("class weights: %s", ", ".join(
                f"{LABEL_NAMES[p]} {w:.3f}" for p, w in zip(task.labels, task.class_weights.tolist(), strict=True)))
        return task

    # ------------------------------------------------------------- persistence

    def extra_state(self) -> dict[str, Any]:
        return {"labels": self.labels, "tokenizer": self.tokenizer_config.to_json()}

    @classmethod
    def from_vocab(cls, recipe: TargetSentimentRecipe, vocab: dict[str, Any]) -> "TargetSentimentTask":
        if list(vocab["labels"]) != list(POLARITIES):
            raise ValueError(f"unexpected labels {vocab['labels']}")
        return cls(recipe, WordIndex.from_json(vocab), int(vocab["word_dim"]),
                   tokenizer_config=TokenizerConfig.from_json(vocab["tokenizer"]))

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The rest, then the fine-tuned word table at ``model.word_lr_scale`` times the rate, by plain SGD
        with ``model.word_update: sgd``."""
        config = self.recipe.model
        return self.word_table_groups(lr_scale=config.word_lr_scale, plain_sgd=config.word_update == "sgd")

    # ---------------------------------------------------------------- batching

    def encode(self, example: TargetExample) -> EncodedTarget:  # type: ignore[override]
        """Word indices of what each LSTM reads; the gold class when labelled.

        Each LSTM reads at most :data:`~seqtag.data.target.MAX_CONTEXT` tokens around the target
        (the LSTM baseline twice that), so one huge example costs no more than a long sentence;
        sentences within those bounds are read whole.

        Raises:
            DataError: a target longer than :data:`~seqtag.data.target.MAX_TARGET_TOKENS` tokens.
        """
        check_target(example.target, example.path, example.line)
        index = self.words.index
        if self.recipe.model.architecture == "lstm":
            left, right = [index(t) for t in example.window()], []
        else:
            left = [index(t) for t in example.left_context()]
            right = [index(t) for t in reversed(example.right_context())]
        label = None if example.label is None else self.labels.index(example.label)
        return EncodedTarget(left, right, [index(t) for t in example.target], label)

    def collate(self, items: Sequence[EncodedTarget]) -> TargetBatch:
        """Pad encoded examples into a :class:`TargetBatch`."""

        def padded(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
            return pad(rows), torch.tensor([len(row) for row in rows], dtype=torch.long)  # (B, T), (B,)

        left, left_lengths = padded([item.left for item in items])
        right, right_lengths = padded([item.right for item in items])
        target, target_lengths = padded([item.target for item in items])
        labels = None
        if all(item.label is not None for item in items):
            labels = torch.tensor([item.label for item in items], dtype=torch.long)  # (B,)
        return TargetBatch(left, left_lengths, right, right_lengths, target, target_lengths, labels)

    def trainable(self, encoded: EncodedTarget) -> bool:
        """Only labelled examples are trained on."""
        return encoded.label is not None

    # -------------------------------------------------------------- prediction

    @torch.inference_mode()
    def predict_probabilities(self, examples: Sequence[TargetExample], batch_size: int = 256) -> torch.Tensor:
        """Class probabilities ``(N, 3)`` (negative, neutral, positive), in input order."""
        self.model.eval()
        encoded = [self.encode(e) for e in examples]
        out = torch.zeros(len(encoded), len(self.labels))
        for order in length_batches([len(e) for e in encoded], batch_size):
            out[order] = self.model.probabilities(self.batch([encoded[i] for i in order])).cpu()
        return out

    def evaluate(self, examples: Sequence[TargetExample], batch_size: int = 256) -> dict[str, Any]:
        """Accuracy, macro-F1 and per-class scores (percent) on labelled examples."""
        missing = next((e for e in examples if e.label is None), None)
        if missing is not None:
            raise DataError("evaluation needs the polarity of every example", missing.path, missing.line)
        predicted = self.predict_probabilities(examples, batch_size).argmax(1).tolist()
        gold = [self.labels.index(e.label) for e in examples]  # type: ignore[arg-type]
        return classification_metrics(gold, predicted, [LABEL_NAMES[label] for label in self.labels])

    def describe(self, splits: dict[str, list[Any]]) -> str:
        text = super().describe(splits)
        return f"{text}; {self.recipe.model.architecture}, early stopping on dev {self.main_metric}"
