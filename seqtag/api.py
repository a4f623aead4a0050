"""The library's two entry points: :func:`load` a trained model, :func:`train` from a recipe."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from seqtag.config import Recipe
from seqtag.devices import resolve_device, set_threads
from seqtag.errors import SeqtagError
from seqtag.hub import download, is_hub_name
from seqtag.registry import load_task, task_entry
from seqtag.tasks.predictor import Predictor

if TYPE_CHECKING:
    from seqtag.training.trainer import TrainResult


def load(
    path: str | Path,
    runtime: str = "torch",
    onnx: str | Path | None = None,
    device: str | torch.device | None = "auto",
    threads: int | None = None,
) -> Predictor:
    """Load a model file and return a ready predictor for its task.

    Args:
        path: the model file (``model.seqtag``), or ``hf://OWNER/NAME[@REVISION]`` for a model
            shared on the Hugging Face Hub (downloaded once into the hub cache).
        runtime: ``"torch"``, or ``"onnx"`` to compute a tagger's network with ONNX
            Runtime from the file ``seqtag export`` writes (1.2-1.3x the tokens/s of
            PyTorch on this project's CPU, same tags).
        onnx: the ONNX file for ``runtime="onnx"`` (default: ``path`` with suffix ``.onnx``).
        device: ``auto`` (a GPU when there is one), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``;
            the ONNX runtime runs on the CPU.
        threads: CPU threads for this process's PyTorch (and ONNX Runtime) work; default all
            cores. Small calls (a few sentences) run on one thread whatever the setting.

    Returns:
        The task's predictor: :class:`~seqtag.tasks.tagging.predictor.TaggingPredictor`,
        :class:`~seqtag.tasks.target_sentiment.predictor.TargetSentimentPredictor` or
        :class:`~seqtag.tasks.tree_sentiment.predictor.TreeSentimentPredictor`.
    """
    if runtime not in ("torch", "onnx"):
        raise SeqtagError(f"unknown runtime {runtime!r}; choose torch or onnx")
    if runtime == "onnx":
        if device not in (None, "auto", "cpu") and resolve_device(device).type != "cpu":
            raise SeqtagError(f"the onnx runtime runs on the CPU, not on {device}")
        device = "cpu"
    if is_hub_name(path):  # hf://OWNER/NAME: the model file from the hub (or its cache)
        path = download(str(path))
    set_threads(threads)
    target = resolve_device(device)
    task, metrics = load_task(path)
    task.to(target)
    predictor = task_entry(task.name).predictor(task, metrics)
    if runtime == "onnx":
        predictor.use_onnx(Path(path).with_suffix(".onnx") if onnx is None else onnx, threads)
    return predictor


def train(
    recipe: str | Path | dict[str, Any] | Recipe | None = None,
    overrides: list[str] | None = None,
    output: str | Path | None = None,
    resume: str | Path | None = None,
    force: bool = False,
) -> TrainResult:
    """Train as ``seqtag train`` does; returns the :class:`~seqtag.training.trainer.TrainResult`.

    ``recipe`` is a YAML file, a recipe dictionary (``{"task": "tagging", "data": {...}}``)
    or a :class:`~seqtag.config.Recipe`; ``overrides`` are ``--set`` values
    (``key.path=value``); ``output`` is the run folder (default ``runs/<recipe name>``),
    which must not hold a run already unless ``force`` (which replaces it); ``resume``
    names a run folder whose checkpoint the training continues from (then ``recipe`` may
    be left out: the run's own is used).
    """
    from seqtag.training.run import run_recipe  # training code loads only for training

    return run_recipe(recipe, overrides or [], output, resume, force)
