"""Recipes: YAML files that describe a whole run, validated by pydantic.

A recipe has a ``task`` (which picks the schema of ``data`` and ``model``: each
task's ``recipe.py`` subclasses :class:`Recipe`), a ``seed`` and a ``training``
section. This module holds what every task shares: the base classes, the
``training``, ``embeddings`` and ``tokenizer`` sections, ``--set`` overrides and
the error report. Keys map one-to-one to constructor arguments; unknown keys
are errors (with a did-you-mean), and every problem is reported at once before
any work starts. :func:`seqtag.registry.load_recipe` picks the task's class.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.json_schema import SkipJsonSchema

from seqtag.data.files import split_names
from seqtag.devices import DEVICE_NAMES
from seqtag.errors import DataError, RecipeError, shorten

#: Bounds of a recipe's sizes, far above any sensible model: a model file cannot make seqtag build a
#: network of absurd size before its weights are checked.
MAX_SIZE = 2**16  # vector and state sizes
MAX_LAYERS = 64  # stacked recurrent layers
MAX_WINDOW = 64  # convolution widths
MAX_RECIPE_BYTES = 2**20  # a recipe file
MAX_RECIPE_VALUES = 100_000  # values in a recipe, aliases expanded


class Section(BaseModel):
    """Base of all recipe sections: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class TrainingConfig(Section):
    """How to optimise: the same for every task."""

    optimizer: Literal["sgd", "adam", "adamw", "adagrad"] = "sgd"
    lr: float = Field(0.015, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    lr_decay: float = Field(0.05, ge=0, description="lr_t = lr / (1 + lr_decay * epoch)")
    weight_decay: float = Field(0.0, ge=0)
    batch_size: int = Field(10, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    max_epochs: int = Field(50, ge=1)
    patience: int | None = Field(10, ge=1, description="stop after this many epochs without a better dev score")
    clip_grad_norm: float | None = Field(5.0, gt=0)
    loss_reduction: Literal["sum", "mean"] = "sum"
    threads: int | None = Field(None, ge=1, description="torch threads; default: all cores")
    device: str = Field("auto", description="auto (a GPU when there is one), cpu, cuda, cuda:N or mps")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="CUDA mixed precision: bf16 or fp16 autocast (fp16 with loss scaling); the CRF stays fp32"
    )
    average_decay: float | None = Field(
        None, gt=0, lt=1, description="evaluate and keep an exponential moving average of the weights (e.g. 0.999)"
    )
    evaluate_test_each_epoch: bool = True
    refit: bool = Field(
        False, description="after early stopping on dev, train a fresh model (same seed) on train + dev for the "
        "chosen number of epochs and keep that one; the selection run stays in the run folder's selection/"
    )
    progress: bool = Field(True, description="a progress bar while an epoch runs (on a terminal only)")
    loggers: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list, description="experiment loggers: tensorboard (RUN_DIR/tensorboard), mlflow"
    )
    checkpoint_every_steps: int | None = Field(None, ge=1, description="also checkpoint every N steps inside an epoch")
    checkpoint_every_minutes: float | None = Field(
        5.0, gt=0, description="also checkpoint inside an epoch when this much time has passed since the last one"
    )


    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        name = value.strip().lower()
        if name not in ("auto", "cpu", "cuda", "mps") and not re.fullmatch(r"cuda:\d+", name):
            raise ValueError(f"unknown device {value!r}; choose one of {', '.join(DEVICE_NAMES)}")
        return name


class EmbeddingsConfig(Section):
    """Word vectors: a pretrained table (``glove-6b-50d`` or a file) or random ones."""

    pretrained: str | None = None
    format: Literal["auto", "word2vec", "word2vec-binary", "glove", "fasttext"] = "auto"
    dim: int | None = Field(None, ge=1, le=MAX_SIZE, description="needed without pretrained vectors")
    lowercase: bool = Field(False, description="look words up in lower case (GloVe 6B is uncased)")
    fine_tune: bool = True
    keep_pretrained: bool = Field(
        True, description="keep vectors of words outside the training vocabulary for prediction"
    )
    limit: int | None = Field(None, ge=1, description="read only the first N pretrained vectors")

    def problems(self, recipe: "Recipe") -> list[str]:
        """Missing vector files and settings that cannot work together."""
        found = []
        if self.pretrained is None:
            if self.dim is None:
                found.append("embeddings.dim: needed when embeddings.pretrained is not set")
            if not self.fine_tune:
                found.append("embeddings.fine_tune: random vectors that are never trained carry no information")
        elif self.pretrained not in ("glove-6b-50d",):
            path = recipe.resolve_path(self.pretrained)
            if path is None or not path.is_file():
                found.append(f"embeddings.pretrained: no file {self.pretrained} (or use glove-6b-50d)")
        return found


class Recipe(Section):
    """Fields every recipe has; tasks subclass it with their ``data`` and ``model``."""

    task: str
    name: str | None = None
    seed: int = 1
    training: TrainingConfig = TrainingConfig()
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    # Where the recipe file lives: relative data paths may resolve against it.
    source: SkipJsonSchema[str | None] = Field(None, exclude=True)

    def problems(self) -> list[str]:
        """What would stop this recipe before any work starts: missing files, impossible
        combinations. Tasks extend it; each entry is ``"key.path: what is wrong"``."""
        found = []
        init_from = getattr(getattr(self, "model", None), "init_from", None)
        if init_from:
            source = self.resolve_path(init_from)
            if source is None or not source.is_file():
                found.append(f"model.init_from: no model file {init_from}; train that model first "
                             "(the recipe's comment says how) or set model.init_from=null")
        return found

    def split_files(self, split: str) -> list[Path]:
        """The existing files of split ``train``/``dev``/``test`` named by ``data.dir`` and
        ``data.<split>`` (one name or a list); empty when the recipe names none.
        Raises DataError when one is missing."""
        data: Any = getattr(self, "data")  # noqa: B009  (each task recipe defines its own data section)
        directory = self.data_dir()
        paths = []
        for name in split_names(getattr(data, split)):
            path = directory / name
            if not path.is_file():
                files = ", ".join(f for s in ("train", "dev", "test") for f in split_names(getattr(data, s)))
                raise DataError(
                    f"the {split} file {name} is missing. Put the corpus files ({files}) in {directory} "
                    "or point the recipe at them with --set data.dir=PATH"
                )
            paths.append(path)
        return paths

    def source_problems(self) -> list[str]:
        """What is wrong with the recipe's ``data`` as a corpus source (a ``datasets`` hub name or disk
        folder, or files in ``data.dir``): both hub and disk, a missing folder or file, lists of files
        with a hub or disk source."""
        data: Any = getattr(self, "data")  # noqa: B009
        found = []
        if data.hub and data.disk:
            found.append("data: name either data.hub or data.disk, not both")
        if data.disk:
            disk = self.resolve_path(data.disk)
            if disk is None or not disk.is_dir():
                found.append(f"data.disk: no folder {data.disk}")
        elif not data.hub:
            folder = self.data_dir()
            for split in ("train", "dev", "test"):
                for name in split_names(getattr(data, split)):
                    if not (folder / name).is_file():
                        found.append(f"data.{split}: {name} not found in {data.dir} (set data.dir=FOLDER)")
        if (data.hub or data.disk) and any(isinstance(getattr(data, split), list) for split in ("train", "dev", "test")):
            found.append("data.train/dev/test: a list of files needs data.dir files, not hub or disk splits")
        return found

    def data_dir(self) -> Path:
        """The corpus folder ``data.dir``, resolved once for every split: a relative one against the
        working directory, else the recipe's folder, whichever holds the (first) training file."""
        data: Any = getattr(self, "data")  # noqa: B009
        train = split_names(data.train)
        return self.resolve_path(data.dir, expect=train[0] if train else None) or Path(".")

    def resolve_path(self, path: str | None, expect: str | None = None) -> Path | None:
        """Resolve a relative path against the working directory, else against the recipe's folder.

        With ``expect``, the first candidate folder that contains a file of that name wins.
        """
        if path is None:
            return None
        candidate = Path(path).expanduser()
        if candidate.is_absolute() or self.source is None:
            return candidate
        candidates = [candidate, Path(self.source).parent / candidate]
        for option in candidates:
            if (option / expect).exists() if expect else option.exists():
                return option
        return candidate


class TokenizerSection(Section):
    """How raw text is split into tokens at prediction time (seqtag.data.text)."""

    split_contractions: bool = Field(True, description="PTB style: don't -> do n't, John's -> John 's")
    split_hyphens: bool = Field(False, description="Anglo-Dutch -> Anglo - Dutch (CoNLL-03 keeps it whole)")
    keep_web_tokens: bool = Field(True, description="URLs, e-mail addresses, @mentions and #hashtags stay whole")
    extra_abbreviations: list[str] = Field(default_factory=list, description="more abbreviations that keep their period")


class TextRecipe(Recipe):
    """A recipe whose models read raw text at prediction: it says how the text is tokenised."""

    tokenizer: TokenizerSection = TokenizerSection()


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested recipe dictionary with dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value parsed as YAML)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set expects key.path=value, got {text!r}")
    return key.strip().split("."), yaml.safe_load(value) if value.strip() else None


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to the raw recipe dictionary."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise RecipeError(f"--set {text}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return data


def _known_keys(cls: type[BaseModel], path: tuple[str | int, ...]) -> list[str]:
    model: Any = cls
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _format_errors(error: ValidationError, cls: type[BaseModel]) -> list[str]:
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            known = _known_keys(cls, item["loc"][:-1])
            close = difflib.get_close_matches(str(item["loc"][-1]), known, n=1)
            hint = f" (did you mean {'.'.join([*map(str, item['loc'][:-1]), close[0]])!r}?)" if close else ""
            lines.append(f"  - {location}: unknown key{hint}")
        else:
            value = item.get("input")
            shown = f" (got {shorten(repr(value))})" if not isinstance(value, dict) else ""
            lines.append(f"  - {location}: {item['msg']}{shown}")
    return lines


def _without_invalid(data: dict[str, Any], error: ValidationError) -> dict[str, Any]:
    """``data`` less every key that failed validation (to check the rest of the recipe too)."""
    import copy

    data = copy.deepcopy(data)
    for item in error.errors():
        node: Any = data
        for part in item["loc"][:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(item["loc"][-1], None)
    return data


def validate_recipe(data: dict[str, Any], cls: type[Recipe], source: str | None = None, check: bool = False) -> Recipe:
    """Validate a raw recipe dictionary into the recipe class ``cls`` (a task's).

    With ``check``, also look for missing files and impossible combinations
    (:meth:`Recipe.problems`). All problems are reported together in one
    :class:`RecipeError`.
    """
    where = source or "recipe"
    lines: list[str] = []
    recipe: Recipe | None
    try:
        recipe = cls.model_validate({**data, "source": source})
    except ValidationError as error:
        lines = _format_errors(error, cls)
        try:  # check the valid rest too, so that one run of the command shows every problem
            recipe = cls.model_validate({**_without_invalid(data, error), "source": source})
        except ValidationError:
            recipe = None
    if check and recipe is not None:
        lines += [f"  - {problem}" for problem in recipe.problems()]
    if lines:
        raise RecipeError(f"{where}: {len(lines)} problem(s) in the recipe:\n" + "\n".join(lines))
    assert recipe is not None
    return recipe


def read_recipe_file(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """The raw recipe dictionary of a YAML file with ``--set`` ``overrides`` applied (not validated)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe not found") from None
    except IsADirectoryError:
        raise RecipeError(f"{path}: a folder, not a recipe file") from None
    except OSError as error:
        raise RecipeError(f"{path}: cannot read the recipe ({error.strerror})") from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{path}: {len(raw):,} bytes is not a recipe (at most {MAX_RECIPE_BYTES:,})")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RecipeError(f"{path}: not UTF-8 text (byte {error.start}); save the recipe as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: not valid YAML: {shorten(str(error), 400)}") from None
    except RecursionError:
        raise RecipeError(f"{path}: nested too deeply to be a recipe") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a YAML mapping, got {type(data).__name__}")
    values = expanded_size(data)
    if values > MAX_RECIPE_VALUES:
        raise RecipeError(f"{path}: the recipe expands to more than {MAX_RECIPE_VALUES:,} values (YAML anchors and "
                          "aliases repeat their content); write it out instead")
    return apply_overrides(data, overrides or [])


def expanded_size(data: Any) -> int:
    """How many values ``data`` holds once every shared part (a YAML alias) is counted as often as it
    appears, computed without expanding anything (memoised on identity, iterative)."""
    sizes: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else []
        if children_done or not children:
            sizes[id(node)] = 1 + sum(sizes.get(id(child), 1) for child in children)
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in children if isinstance(child, (dict, list)) and id(child) not in sizes)
    return sizes[id(data)]
