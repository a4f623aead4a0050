"""The contract of what :func:`seqtag.load` returns: one predictor class per task, on these bases."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from seqtag.data.text import Tokenizer
from seqtag.errors import SeqtagError
from seqtag.evaluation import headline


class Predictor(ABC):
    """What :func:`seqtag.load` returns: a trained task behind the task's own API.

    Every predictor offers :meth:`predict` (one input, in the task's terms),
    :meth:`evaluate` (labelled examples) and the two file commands of the CLI,
    :meth:`evaluate_file` and :meth:`predict_file`, which take the task's
    file-format options as keywords (an option a task does not know is an error).
    """

    def __init__(self, task: Any, metrics: dict[str, Any] | None = None) -> None:
        self.task = task
        self.metrics = metrics or {}

    @property
    @abstractmethod
    def labels(self) -> list[str]:
        """What the model predicts (entity types, tags, classes)."""

    @abstractmethod
    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """The prediction for one input (raw text, a sentence and target, a tree)."""

    def evaluate(self, examples: Sequence[Any], batch_size: int = 256) -> dict[str, Any]:
        """Metrics on labelled examples of the task's own type."""
        return self.task.evaluate(examples, batch_size)

    @abstractmethod
    def evaluate_file(self, path: str | Path, batch_size: int = 256, **options: Any) -> dict[str, Any]:
        """Metrics on a labelled file in the task's format (``seqtag evaluate``)."""

    @abstractmethod
    def predict_file(self, path: str | Path, out: TextIO, batch_size: int = 256, **options: Any) -> int:
        """Predict a file in the task's format and write the results to ``out`` (``seqtag predict``);
        returns how many examples were written."""

    def report(self, path: str | Path, metrics: dict[str, Any]) -> str:
        """:meth:`evaluate_file`'s metrics as ``seqtag evaluate`` prints them."""
        return f"{path}: {headline(metrics)}"

    def use_onnx(self, path: str | Path | None, threads: int | None = None) -> None:
        """Compute the network with ONNX Runtime from ``path`` (tasks that support it override this)."""
        raise SeqtagError(f"the onnx runtime is for tagging models, this one is a {self.task.name} model")

    def export_onnx(self, path: str | Path) -> Path:
        """Write the network as an ONNX graph (tasks that support it override this)."""
        raise SeqtagError("ONNX export is for tagging models")

    @staticmethod
    def summary(content: dict[str, Any]) -> list[str]:
        """Task-specific lines ``seqtag info`` prints for a model file's parsed ``content``."""
        return []

    def reject(self, options: dict[str, Any]) -> None:
        """SeqtagError when ``options`` holds a file option this task does not know."""
        if options:
            names = ", ".join("--" + name.replace("_", "-") for name in options)
            raise SeqtagError(f"{names}: not an option for {self.task.name} models")


class TextPredictor(Predictor):
    """A predictor that takes raw text: ``tokenizer`` splits it as the model's recipe said
    (the task's ``tokenizer_config``, stored in the model file)."""

    def __init__(self, task: Any, metrics: dict[str, Any] | None = None) -> None:
        super().__init__(task, metrics)
        self.tokenizer = Tokenizer(task.tokenizer_config)
