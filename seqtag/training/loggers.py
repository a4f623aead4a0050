"""Experiment loggers a recipe can name in ``training.loggers``: TensorBoard and MLflow.

Each gets the run's settings once and one record per epoch (the ``metrics.jsonl``
record: loss, learning rate, throughput, dev and test figures); rank 0 of a
distributed run alone logs. The packages are optional: a recipe that names a
logger whose package is missing stops before training, saying what to install.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from seqtag.config import flatten
from seqtag.errors import RecipeError

#: logger name -> the package it needs
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


def check_available(names: list[str]) -> None:
    """RecipeError when a named logger's package is not installed."""
    for name in names:
        package = PACKAGES[name]
        if importlib.util.find_spec(package) is None:
            raise RecipeError(f"training.loggers: {name} needs the {package} package: pip install {package}")


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The numbers of an epoch record worth a curve: ``loss``, ``lr``, ``sentences_per_second`` and
    every float of the dev and test figures (``dev/f1``, ``test/accuracy``, per type as ``dev/PER/f1``)."""
    values = {key: float(record[key]) for key in ("loss", "lr", "sentences_per_second") if key in record}
    for split in ("dev", "test"):
        figures = record.get(split)
        if isinstance(figures, dict):
            for key, value in flatten(figures).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    values[f"{split}/{key.replace('per_type.', '').replace('per_class.', '').replace('.', '/')}"] = float(value)
    return values


class TensorBoardLogger:
    """Event files in ``RUN_DIR/tensorboard`` (``tensorboard --logdir runs``)."""

    def __init__(self, run_dir: Path, recipe: dict[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter  # the optional tensorboard package

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        settings = "\n".join(f"    {k}: {v}" for k, v in flatten(recipe).items())
        self.writer.add_text("recipe", settings)

    def log_epoch(self, record: dict[str, Any]) -> None:
        for key, value in scalars(record).items():
            self.writer.add_scalar(key, value, record["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowLogger:
    """An MLflow run with the recipe as parameters and the epoch figures as metrics; it tracks to
    ``MLFLOW_TRACKING_URI`` when set, else to ``RUN_DIR/mlruns``."""

    def __init__(self, run_dir: Path, recipe: dict[str, Any]) -> None:
        import mlflow  # the optional mlflow package

        self.mlflow = mlflow
        if not os.environ.get("MLFLOW_TRACKING_URI"):  # offline: a local file store in the run folder
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
            mlflow.set_tracking_uri((run_dir / "mlruns").resolve().as_uri())
        self.run = mlflow.start_run(run_name=str(recipe.get("name") or run_dir.name))
        mlflow.log_params({k: str(v)[:250] for k, v in flatten(recipe).items()})

    def log_epoch(self, record: dict[str, Any]) -> None:
        self.mlflow.log_metrics({key.replace("/", "."): value for key, value in scalars(record).items()},
                                step=record["epoch"])

    def close(self) -> None:
        self.mlflow.end_run()


LOGGERS = {"tensorboard": TensorBoardLogger, "mlflow": MLflowLogger}


def make_loggers(names: list[str], run_dir: Path, recipe: dict[str, Any]) -> list[Any]:
    """The loggers a recipe names, started for ``run_dir``."""
    check_available(names)
    return [LOGGERS[name](run_dir, recipe) for name in names]
