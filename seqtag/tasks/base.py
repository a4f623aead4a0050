"""The task interface the trainer drives.

A task knows its data, vocabularies and model: it reads the recipe's
corpora, turns examples into batches, computes a loss on a batch, predicts
and evaluates. The trainer only sees this interface, so a new task (target
sentiment, tree sentiment) is a new subclass, not a branch in the trainer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from seqtag.recipe import Recipe


class Task(ABC):
    """One kind of problem (tagging, target sentiment, ...) with its model.

    Subclasses set ``name`` (the recipe's ``task`` value) and ``main_metric``
    (the key of :meth:`evaluate`'s result that early stopping maximises).
    """

    name: ClassVar[str]
    main_metric: str
    recipe: Recipe
    model: nn.Module

    @classmethod
    @abstractmethod
    def from_recipe(cls, recipe: Recipe) -> tuple["Task", dict[str, list[Any]]]:
        """Read the recipe's corpora, build vocabularies and a fresh model.

        Returns the task and its data splits (``train`` and, when present,
        ``dev`` and ``test``).
        """

    @classmethod
    @abstractmethod
    def from_splits(cls, recipe: Recipe, splits: dict[str, list[Any]]) -> "Task":
        """A fresh task for data already read: vocabularies from ``splits["train"]``, a new
        model with the pretrained vectors copied in (and ``model.init_from`` applied).

        ``training.refit`` uses it to build the model it trains on train + dev.
        """

    @classmethod
    @abstractmethod
    def from_state(cls, recipe: Recipe, vocab: dict[str, Any], tensors: dict[str, torch.Tensor]) -> "Task":
        """Rebuild a trained task from a model file's contents."""

    @abstractmethod
    def vocab_state(self) -> dict[str, Any]:
        """Everything besides the recipe and weights needed to rebuild the task, as JSON."""

    @abstractmethod
    def batches(
        self, examples: Sequence[Any], batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Any]:
        """Batches of encoded examples; with ``shuffle`` in random order (similar lengths together)."""

    @abstractmethod
    def loss(self, batch: Any, reduction: str = "sum") -> torch.Tensor:
        """Scalar training loss of one batch."""

    @abstractmethod
    def evaluate(self, examples: Sequence[Any], batch_size: int = 256) -> dict[str, Any]:
        """Metrics on labelled examples; must include ``main_metric``."""

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups. A group may carry ``lr_scale`` (its learning rate is
        the schedule's times this factor, e.g. a lower rate for fine-tuned embeddings)."""
        return [{"params": [p for p in self.model.parameters() if p.requires_grad]}]

    def make_predictor(self, metrics: dict[str, Any] | None = None) -> Any:
        """The user-facing predictor of this task (what :func:`seqtag.load` returns).

        A predictor offers at least ``evaluate_file(path, batch_size) -> metrics`` and
        ``predict_file(path, out, batch_size)`` for ``seqtag evaluate`` / ``seqtag predict``.
        """
        raise TypeError(f"no predictor for task {self.name!r}")

    def batch_size_of(self, batch: Any) -> int:
        """Number of examples in ``batch`` (for throughput figures)."""
        return len(batch)

    def describe(self, splits: dict[str, list[Any]]) -> str:
        """One or two lines summarising data and model for the training log."""
        sizes = ", ".join(f"{name} {len(data)}" for name, data in splits.items())
        parameters = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return f"task {self.name}: {sizes} examples; {parameters:,} trainable parameters"


TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``task: NAME`` in recipes and model files resolve to ``cls``."""
    TASKS[cls.name] = cls
    return cls
