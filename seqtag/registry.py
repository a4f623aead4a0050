"""Every task seqtag knows, in one explicit table: name -> recipe class, task class, predictor class.

Nothing registers itself when imported: adding a task means adding its package
under seqtag/tasks and one line here. Recipes, model files and the CLI find a
task only through this table, so loading any recipe or model file works
whatever the caller imported before.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqtag.config import Recipe, read_recipe_file, validate_recipe
from seqtag.errors import ArchiveError, RecipeError, shorten
from seqtag.io import read_archive
from seqtag.tasks.base import Task
from seqtag.tasks.language_model.predictor import LanguageModelPredictor
from seqtag.tasks.language_model.recipe import LanguageModelRecipe
from seqtag.tasks.language_model.task import LanguageModelTask
from seqtag.tasks.predictor import Predictor
from seqtag.tasks.tagging.predictor import TaggingPredictor
from seqtag.tasks.tagging.recipe import TaggingRecipe
from seqtag.tasks.tagging.task import TaggingTask
from seqtag.tasks.target_sentiment.predictor import TargetSentimentPredictor
from seqtag.tasks.target_sentiment.recipe import TargetSentimentRecipe
from seqtag.tasks.target_sentiment.task import TargetSentimentTask
from seqtag.tasks.tree_sentiment.predictor import TreeSentimentPredictor
from seqtag.tasks.tree_sentiment.recipe import TreeSentimentRecipe
from seqtag.tasks.tree_sentiment.task import TreeSentimentTask

#: The task a recipe without a ``task`` key has.
DEFAULT_TASK = "tagging"


@dataclass(frozen=True)
class TaskEntry:
    """The three classes that make up a task."""

    recipe: type[Recipe]
    task: type[Task]
    predictor: type[Predictor]


TASKS: dict[str, TaskEntry] = {
    "tagging": TaskEntry(TaggingRecipe, TaggingTask, TaggingPredictor),
    "target-sentiment": TaskEntry(TargetSentimentRecipe, TargetSentimentTask, TargetSentimentPredictor),
    "tree-sentiment": TaskEntry(TreeSentimentRecipe, TreeSentimentTask, TreeSentimentPredictor),
    "language_model": TaskEntry(LanguageModelRecipe, LanguageModelTask, LanguageModelPredictor),
}


def task_entry(name: str) -> TaskEntry:
    """The entry of task ``name``; RecipeError (with a did-you-mean) for an unknown one."""
    entry = TASKS.get(name)
    if entry is None:
        close = difflib.get_close_matches(str(name), list(TASKS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RecipeError(f"unknown task {shorten(repr(name))}{hint}; known tasks: {', '.join(TASKS)}")
    return entry


def recipe_from_dict(data: dict[str, Any], source: str | None = None, check: bool = False) -> Recipe:
    """Validate a raw recipe dictionary into its task's recipe class (``task``, default tagging).

    With ``check``, also look for missing files and impossible combinations
    (:meth:`~seqtag.config.Recipe.problems`). All problems are reported together in
    one :class:`~seqtag.errors.RecipeError`.
    """
    where = source or "recipe"
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: a recipe is a YAML mapping, got {type(data).__name__}")
    task = data.get("task", DEFAULT_TASK)
    if not isinstance(task, str):
        raise RecipeError(f"{where}: task: a task name expected, got {type(task).__name__}; known tasks: {', '.join(TASKS)}")
    try:
        entry = task_entry(task)
    except RecipeError as error:
        raise RecipeError(f"{where}: {error}") from None
    return validate_recipe(data, entry.recipe, source, check)


def load_recipe(path: str | Path, overrides: list[str] | None = None, check: bool = True) -> Recipe:
    """Read a YAML recipe, apply ``--set`` overrides and validate it.

    With ``check`` (the default, as before training) missing files and impossible
    combinations are reported too, together with any schema errors.
    """
    recipe = recipe_from_dict(read_recipe_file(path, overrides), str(path), check=check)
    if recipe.name is None:
        recipe.name = Path(path).stem
    return recipe


def load_task(path: str | Path) -> tuple[Task, dict[str, Any]]:
    """Rebuild the trained task stored in a model file; returns it and the file's metrics."""
    content = read_archive(path)
    name = content["meta"].get("task")
    entry = TASKS.get(name)
    if entry is None:
        raise ArchiveError(f"{path}: unknown task {shorten(repr(name))}; known: {', '.join(TASKS)}")
    return entry.task.from_archive(content, path), content["metrics"]

