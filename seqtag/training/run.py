"""Run a recipe end to end: read data, build the task, train, save, report."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from seqtag.recipe import Recipe, load_recipe
from seqtag.tasks import TASKS
from seqtag.training.trainer import Trainer, TrainResult, seed_everything

log = logging.getLogger(__name__)


def run_recipe(path: str | Path, overrides: list[str], output: str | Path | None = None) -> TrainResult:
    """Train the recipe at ``path`` with ``--set`` ``overrides``; results go to ``output``
    (default ``runs/<recipe name>``)."""
    recipe = load_recipe(path, overrides)
    return run(recipe, output)


def run(recipe: Recipe, output: str | Path | None = None) -> TrainResult:
    """Train a validated recipe."""
    run_dir = Path(output) if output is not None else Path("runs") / (recipe.name or recipe.task)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    seed_everything(recipe.seed)  # model initialisation depends on it
    if recipe.training.threads:
        import torch

        torch.set_num_threads(recipe.training.threads)
    task, splits = TASKS[recipe.task].from_recipe(recipe)
    result = Trainer(task, recipe.training, run_dir, recipe.seed).fit(splits)
    log.info("best epoch %d; model saved to %s (%.0f s)", result.best_epoch, result.model_path, result.seconds)
    return result
