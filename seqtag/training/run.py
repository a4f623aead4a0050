"""Run a recipe end to end: read data, build the task, train, save, report."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from seqtag.errors import RecipeError
from seqtag.recipe import Recipe, load_recipe
from seqtag.tasks import TASKS
from seqtag.training.trainer import Trainer, TrainResult, seed_everything

log = logging.getLogger(__name__)


# Settings that may differ between a run and its resumption: they change neither data nor model.
RESUMABLE_CHANGES = {"training.progress", "training.threads", "training.max_epochs", "training.patience",
                     "training.checkpoint_every_steps", "training.checkpoint_every_minutes"}


def run_recipe(
    path: str | Path, overrides: list[str], output: str | Path | None = None, resume: str | Path | None = None
) -> TrainResult:
    """Train the recipe at ``path`` with ``--set`` ``overrides``; results go to ``output``
    (default ``runs/<recipe name>``). With ``resume``, continue the run in that folder."""
    recipe = load_recipe(path, overrides)
    return run(recipe, output, resume)


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_same_recipe(recipe: Recipe, run_dir: Path) -> None:
    stored_path = run_dir / "recipe.yaml"
    if not (run_dir / "checkpoint.zip").exists():
        raise RecipeError(f"{run_dir}: no checkpoint.zip to resume from (is this a seqtag run folder?)")
    stored = _flatten(yaml.safe_load(stored_path.read_text(encoding="utf-8")) or {}) if stored_path.exists() else {}
    current = _flatten(recipe.model_dump(mode="json"))
    differ = sorted(k for k in stored.keys() | current.keys()
                    if k not in RESUMABLE_CHANGES and stored.get(k) != current.get(k))
    if differ:
        lines = [f"  - {k}: run has {stored.get(k)!r}, now {current.get(k)!r}" for k in differ]
        raise RecipeError(f"{run_dir}: cannot resume, the recipe differs from the one the run started with:\n" + "\n".join(lines))


def run(recipe: Recipe, output: str | Path | None = None, resume: str | Path | None = None) -> TrainResult:
    """Train a validated recipe; with ``resume`` (a run folder), continue that run from its checkpoint."""
    if resume is not None:
        run_dir = Path(resume)
        _check_same_recipe(recipe, run_dir)
    else:
        run_dir = Path(output) if output is not None else Path("runs") / (recipe.name or recipe.task)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    seed_everything(recipe.seed)  # model initialisation depends on it
    if recipe.training.threads:
        import torch

        torch.set_num_threads(recipe.training.threads)
    task, splits = TASKS[recipe.task].from_recipe(recipe)
    result = Trainer(task, recipe.training, run_dir, recipe.seed).fit(splits, resume=resume is not None)
    log.info("best epoch %d; model saved to %s (%.0f s)", result.best_epoch, result.model_path, result.seconds)
    return result
