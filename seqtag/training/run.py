"""Run a recipe end to end: read data, build the task, train, save, report."""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml
from filelock import FileLock, Timeout

from seqtag.config import Recipe, apply_overrides, flatten, read_recipe_file
from seqtag.errors import RecipeError
from seqtag.io import atomic_write_text, remove_temporaries
from seqtag.registry import load_recipe, recipe_from_dict, task_entry
from seqtag.tasks.base import Task
from seqtag.training.checkpoint import CHECKPOINT_NAME
from seqtag.training.distributed import Processes, from_environment
from seqtag.training.loggers import check_available
from seqtag.training.trainer import Trainer, TrainResult, seed_everything

log = logging.getLogger(__name__)

#: Sub-folder of a ``training.refit`` run holding the run that chose the number of epochs on dev.
SELECTION = "selection"
#: What a run writes into its folder; a folder holding any of them holds a run.
RUN_FILES = ("recipe.yaml", "run.json", "metrics.jsonl", CHECKPOINT_NAME, "model.seqtag", SELECTION,
             "training-curves.png", "tensorboard")
#: The advisory lock a live run holds on its folder.
LOCK_NAME = ".seqtag.lock"
#: Where the run's recipe came from (``--resume`` without a recipe reads relative paths from there).
RUN_INFO = "run.json"


# Settings that may differ between a run and its resumption: they change neither data nor model.
RESUMABLE_CHANGES = {"training.progress", "training.threads", "training.device", "training.loggers",
                     "training.max_epochs", "training.patience",
                     "training.checkpoint_every_steps", "training.checkpoint_every_minutes"}


def run_recipe(
    recipe: str | Path | dict[str, Any] | Recipe | None,
    overrides: list[str],
    output: str | Path | None = None,
    resume: str | Path | None = None,
    force: bool = False,
) -> TrainResult:
    """Train ``recipe`` (a YAML file, a recipe dictionary or a :class:`Recipe`) with ``--set``
    ``overrides``; results go to ``output`` (default ``runs/<recipe name>``). With ``resume``,
    continue the run in that folder (``recipe`` may then be None: the run's own recipe is used);
    with ``force``, replace the run an ``output`` folder holds."""
    return run(resolve_recipe(recipe, overrides, resume), output, resume, force)


def resolve_recipe(
    recipe: str | Path | dict[str, Any] | Recipe | None, overrides: list[str], resume: str | Path | None = None
) -> Recipe:
    """A validated recipe from a file, a dictionary or a Recipe, with ``overrides`` applied; None
    with ``resume``: the recipe the run in that folder started with (its ``recipe.yaml``, read
    relative to the recipe file it came from, see ``run.json``)."""
    if isinstance(recipe, Recipe):
        if not overrides:
            return recipe
        return recipe_from_dict(apply_overrides(recipe.model_dump(mode="json"), overrides), recipe.source, check=True)
    if isinstance(recipe, dict):
        return recipe_from_dict(apply_overrides(copy.deepcopy(recipe), overrides), check=True)
    if recipe is not None:
        return load_recipe(recipe, overrides)
    if resume is None:
        raise RecipeError("give a recipe, or --resume RUN_DIR to continue a run with its own recipe")
    run_dir = Path(resume)
    stored = run_dir / "recipe.yaml"
    if not stored.is_file():
        raise RecipeError(f"{run_dir}: no recipe.yaml: not a seqtag run folder; give the recipe too")
    source = None
    info = run_dir / RUN_INFO
    if info.is_file():
        try:
            source = json.loads(info.read_text(encoding="utf-8")).get("recipe_file")
        except ValueError:
            raise RecipeError(f"{info}: corrupted; give the recipe too") from None
    data = read_recipe_file(stored, overrides)
    return recipe_from_dict(data, str(source) if source else str(stored), check=True)


def _check_same_recipe(recipe: Recipe, run_dir: Path) -> None:
    stored_path = run_dir / "recipe.yaml"
    progress_files = (run_dir / CHECKPOINT_NAME, run_dir / SELECTION / CHECKPOINT_NAME, run_dir / SELECTION / "selection.json")
    if not any(path.exists() for path in progress_files):
        raise RecipeError(f"{run_dir}: no checkpoint.zip to resume from (is this a seqtag run folder?)")
    stored: dict[str, object] = {}
    if stored_path.exists():
        # validated again, so that keys added since with their defaults do not count as changes
        data = yaml.safe_load(stored_path.read_text(encoding="utf-8")) or {}
        stored = flatten(recipe_from_dict(data, str(stored_path)).model_dump(mode="json"))
    current = flatten(recipe.model_dump(mode="json"))
    differ = sorted(k for k in stored.keys() | current.keys()
                    if k not in RESUMABLE_CHANGES and stored.get(k) != current.get(k))
    if differ:
        lines = [f"  - {k}: run has {stored.get(k)!r}, now {current.get(k)!r}" for k in differ]
        raise RecipeError(f"{run_dir}: cannot resume, the recipe differs from the one the run started with:\n" + "\n".join(lines))


def claim_run_folder(run_dir: Path, resume: bool, force: bool) -> FileLock:
    """Lock ``run_dir`` for this run (an advisory lock the operating system drops when the process
    ends) and make sure it may write there: a new run refuses a folder that holds a run unless
    ``force`` (which deletes that run's files), a resumed run needs one. Temporary files of a
    killed save are removed. Returns the held lock; release it when the run ends."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(run_dir / LOCK_NAME)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RecipeError(f"{run_dir}: another seqtag run is using this folder; wait for it to end or choose "
                          "another --output") from None
    try:
        existing = sorted(name for name in RUN_FILES if (run_dir / name).exists())
        if existing and not resume:
            if not force:
                raise RecipeError(
                    f"{run_dir}: holds a run already ({', '.join(existing)}). Continue it with --resume {run_dir}, "
                    f"write elsewhere with --output DIR, or replace it with --force")
            for name in existing:
                target = run_dir / name
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            log.warning("--force: deleted the earlier run in %s (%s)", run_dir, ", ".join(existing))
        for folder in (run_dir, run_dir / SELECTION):
            if folder.is_dir():
                for path in remove_temporaries(folder):
                    log.info("removed %s, left by a save that was killed", path)
    except BaseException:
        lock.release()
        raise
    return lock


def run(
    recipe: Recipe, output: str | Path | None = None, resume: str | Path | None = None, force: bool = False
) -> TrainResult:
    """Train a validated recipe; with ``resume`` (a run folder), continue that run from its checkpoint.

    The run folder (``output``, default ``runs/<recipe name>``) belongs to one run: it is
    locked while the run lasts, and a new run refuses a folder that holds one unless
    ``force`` (see :func:`claim_run_folder`).

    With ``training.refit`` (and a dev split) training takes two stages: early stopping on dev
    chooses the number of epochs, then a fresh model trains on train + dev for that many.
    Started by ``torchrun`` with several processes, the processes train together
    (seqtag.training.distributed); the result's ``model_path`` is None on all but rank 0.
    """
    run_dir = Path(resume) if resume is not None else Path(output) if output is not None else \
        Path("runs") / (recipe.name or recipe.task)
    processes = from_environment(recipe.training.device)
    # rank 0 owns the folder; the others follow it
    lock = claim_run_folder(run_dir, resume is not None, force) if processes.is_main else None
    try:
        result = _run(recipe, run_dir, resume is not None, processes)
        # every process leaves together: none may tear the group down while rank 0 still tests and saves
        processes.barrier()
        return result
    finally:
        if lock is not None:
            lock.release()
        processes.close()


def _run(recipe: Recipe, run_dir: Path, resume: bool, processes: Processes) -> TrainResult:
    if not processes.is_main:
        logging.getLogger("seqtag").setLevel(logging.WARNING)  # rank 0 tells the story
    check_available(recipe.training.loggers)  # before any data is read
    if resume:
        _check_same_recipe(recipe, run_dir)
    elif processes.is_main:  # written once: --resume checks against it and can start from it
        atomic_write_text(run_dir / "recipe.yaml", yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
        source = str(Path(recipe.source).resolve()) if recipe.source else None
        atomic_write_text(run_dir / RUN_INFO, json.dumps({"recipe_file": source, "working_directory": str(Path.cwd())},
                                                         indent=2))
    seed_everything(recipe.seed)  # model initialisation depends on it
    if recipe.training.threads:
        torch.set_num_threads(recipe.training.threads)
    task, splits = task_entry(recipe.task).task.from_recipe(recipe)
    task.to(processes.device)
    log.info("training on %s", processes.device)
    if recipe.training.refit and "dev" in splits:
        selection = _selection_run(recipe, task, splits, run_dir, resume, processes)
        del task  # free the selection model before the refit builds its own
        return _refit(recipe, splits, selection, run_dir, resume, processes)
    if recipe.training.refit:
        log.warning("training.refit: there is no dev split to choose the number of epochs on; "
                    "training %d epochs on train and keeping the last", recipe.training.max_epochs)
    result = Trainer(task, recipe.training, run_dir, recipe.seed, processes).fit(splits, resume=resume)
    log.info("best epoch %d; model saved to %s (%.0f s)", result.best_epoch, result.model_path, result.seconds)
    return result


def _selection_run(
    recipe: Recipe, task: Task, splits: dict[str, list[Any]], run_dir: Path, resume: bool, processes: Processes
) -> TrainResult:
    """First stage of ``training.refit``: early stopping on dev in ``run_dir/selection``.

    Its outcome is kept in ``selection.json`` there; a resumed run that finds it skips the stage.
    """
    selection_dir = run_dir / SELECTION
    summary_path = selection_dir / "selection.json"
    if resume and summary_path.exists():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        log.info("resuming: the selection run chose %d epochs", summary["best_epoch"])
        return TrainResult(summary["best_epoch"], summary["dev"], summary["test"], summary["history"],
                           selection_dir / "model.seqtag", summary["seconds"])
    resume_selection = resume and (selection_dir / CHECKPOINT_NAME).exists()
    selection = Trainer(task, recipe.training, selection_dir, recipe.seed, processes).fit(splits, resume=resume_selection)
    summary = {"best_epoch": selection.best_epoch, "dev": selection.best_dev, "test": selection.test,
               "history": selection.history, "seconds": selection.seconds}
    processes.barrier()  # every process is past the selection run's checkpoint before it goes
    if processes.is_main:
        atomic_write_text(summary_path, json.dumps(summary, indent=2))
        (selection_dir / CHECKPOINT_NAME).unlink(missing_ok=True)
    log.info("dev chose epoch %d (%.0f s)", selection.best_epoch, selection.seconds)
    return selection


def _refit(
    recipe: Recipe, splits: dict[str, list[Any]], selection: TrainResult, run_dir: Path, resume: bool, processes: Processes
) -> TrainResult:
    """Second stage of ``training.refit``: a fresh model (same seed) trained on train + dev for
    the epochs ``selection`` chose, in ``run_dir``; it is the run's model."""
    merged = {"train": [*splits["train"], *splits["dev"]], **({"test": splits["test"]} if "test" in splits else {})}
    log.info("refit: a fresh model on train + dev (%d + %d examples) for %d epochs", len(splits["train"]),
             len(splits["dev"]), selection.best_epoch)
    seed_everything(recipe.seed)  # the same initialisation as a fresh run
    refit_task = task_entry(recipe.task).task.from_splits(recipe, merged).to(processes.device)
    config = recipe.training.model_copy(update={"max_epochs": selection.best_epoch})
    resume_refit = resume and (run_dir / CHECKPOINT_NAME).exists()
    notes = {"refit": {"epochs": selection.best_epoch, "dev": selection.best_dev, "early_stopped_test": selection.test}}
    result = Trainer(refit_task, config, run_dir, recipe.seed, processes).fit(merged, resume=resume_refit, notes=notes)
    result.best_epoch, result.best_dev, result.selection = selection.best_epoch, selection.best_dev, selection
    result.seconds += selection.seconds
    log.info("refit on train + dev for %d epochs; model saved to %s (%.0f s in all)", result.best_epoch,
             result.model_path, result.seconds)
    return result
