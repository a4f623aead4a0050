"""Recipes: YAML files that describe a whole run, validated by pydantic.

A recipe has a ``task`` (which picks the schema of ``data`` and ``model``),
a ``seed`` and a ``training`` section. Keys map one-to-one to constructor
arguments; unknown keys are errors (with a did-you-mean), and every problem
is reported at once before any work starts.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from seqtag.data.schemes import SCHEMES, normalize_scheme
from seqtag.errors import DataError, RecipeError


def split_names(value: str | list[str] | None) -> list[str]:
    """A recipe's ``data.train``/``dev``/``test`` entry as a list of file names."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


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
    average_decay: float | None = Field(
        None, gt=0, lt=1, description="evaluate and keep an exponential moving average of the weights (e.g. 0.999)"
    )
    evaluate_test_each_epoch: bool = True
    refit: bool = Field(
        False, description="after early stopping on dev, train a fresh model (same seed) on train + dev for the "
        "chosen number of epochs and keep that one; the selection run stays in the run folder's selection/"
    )
    progress: bool = True
    checkpoint_every_steps: int | None = Field(None, ge=1, description="also checkpoint every N steps inside an epoch")
    checkpoint_every_minutes: float | None = Field(
        5.0, gt=0, description="also checkpoint inside an epoch when this much time has passed since the last one"
    )


class EmbeddingsConfig(Section):
    """Word vectors: a pretrained table (``glove-6b-50d`` or a file) or random ones."""

    pretrained: str | None = None
    format: Literal["auto", "word2vec", "word2vec-binary", "glove", "fasttext"] = "auto"
    dim: int | None = Field(None, ge=1, description="needed without pretrained vectors")
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


class CharConfig(Section):
    """Character encoder of each word."""

    encoder: Literal["cnn", "lstm", "none"] = "cnn"
    dim: int = Field(30, ge=1)
    filters: int = Field(30, ge=1)
    kernel_size: int = Field(3, ge=1)
    hidden_size: int = Field(25, ge=1)
    dropout: float = Field(0.5, ge=0, lt=1)


class RNNConfig(Section):
    """The sentence encoder: a stacked bidirectional RNN."""

    cell: Literal["lstm", "gru"] = "lstm"
    hidden_size: int = Field(200, ge=1, description="per direction")
    num_layers: int = Field(1, ge=1)
    dropout: float = Field(0.5, ge=0, lt=1, description="between stacked layers")


class CRFConfig(Section):
    backend: Literal["seqtag", "pytorch-crf"] = "seqtag"
    constrained: bool = True


class TaggerModelConfig(Section):
    """BiLSTM-CNN-CRF tagger (Ma & Hovy 2016)."""

    tag_scheme: str = Field("iobes", description="scheme the model is trained in; predictions are converted back")
    char: CharConfig = CharConfig()
    casing_dim: int = Field(0, ge=0, description="size of casing-feature embeddings; 0 turns them off")
    feature_dim: int = Field(20, ge=1, description="size of the embedding of each data.feature_columns column")
    encoder: RNNConfig = RNNConfig()
    dropout: float = Field(0.5, ge=0, lt=1, description="on the word representation and the encoder output")
    word_dropout: float = Field(
        0.0, ge=0, lt=1, description="probability of replacing a singleton word that has no pretrained vector by <unk>"
    )
    decoder: Literal["crf", "softmax"] = "crf"
    crf: CRFConfig = CRFConfig()
    init_from: str | None = Field(
        None,
        description="a trained seqtag tagger (model file) to start from (transfer learning): its word and character "
        "vectors are copied by symbol, every other weight whose name and shape match is copied; the output layer "
        "and CRF start fresh unless both corpora have the same tags",
    )

    @field_validator("tag_scheme")
    @classmethod
    def _scheme(cls, value: str) -> str:
        return normalize_scheme(value)


class ConllDataConfig(Section):
    """A tagging corpus: CoNLL-style files in ``dir``, or a ``datasets`` source (hub, disk, json/csv/parquet)."""

    format: Literal["conll", "json", "csv", "parquet"] = "conll"
    hub: str | None = Field(None, description="Hugging Face hub dataset name (needs network access)")
    config: str | None = Field(None, description="hub dataset configuration")
    revision: str | None = Field(None, description="hub revision, e.g. refs/convert/parquet")
    disk: str | None = Field(None, description="folder of a dataset saved with save_to_disk")
    tokens_field: str = "tokens"
    tags_field: str = "ner_tags"
    tag_names: list[str] | None = Field(None, description="names of integer tags when the dataset has no ClassLabel")
    dir: str = "."
    train: str | list[str] = Field("train.txt", description="training file, or a list of files read one after another "
                                   "(e.g. [train.conll, dev.conll] to train on both; then set dev: null)")
    dev: str | list[str] | None = "valid.txt"
    test: str | list[str] | None = "test.txt"
    word_column: int = 0
    label_column: int = -1
    feature_columns: list[int] = Field(
        default_factory=list,
        description="more input columns (e.g. the POS column for chunking), each embedded with model.feature_dim; "
        "the model then needs them at prediction time too (CoNLL input, not raw text)",
    )
    scheme: str = Field("auto", description=f"scheme of the corpus tags: auto or one of {', '.join(SCHEMES)}")

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, value: str) -> str:
        return value if value == "auto" else normalize_scheme(value)

    @field_validator("train", "dev", "test")
    @classmethod
    def _files(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not value:
            raise ValueError("an empty list of files")
        return value


class Recipe(Section):
    """Fields every recipe has; tasks subclass it with their ``data`` and ``model``."""

    task: str
    name: str | None = None
    seed: int = 1
    training: TrainingConfig = TrainingConfig()
    # Where the recipe file lives: relative data paths may resolve against it.
    source: str | None = Field(None, exclude=True)

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
        paths = []
        for name in split_names(getattr(data, split)):
            directory = self.resolve_path(data.dir, expect=name)
            path = directory / name if directory is not None else None
            if path is None or not path.is_file():
                files = ", ".join(f for s in ("train", "dev", "test") for f in split_names(getattr(data, s)))
                raise DataError(
                    f"the {split} file {name} is missing. Put the corpus files ({files}) in {directory} "
                    "or point the recipe at them with --set data.dir=PATH"
                )
            paths.append(path)
        return paths

    def split_file(self, split: str) -> Path | None:
        """The one file of split ``split`` (see :meth:`split_files`), or None when the recipe names none."""
        paths = self.split_files(split)
        if len(paths) > 1:
            raise RecipeError(f"data.{split}: this task reads one file, not a list")
        return paths[0] if paths else None

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


class TaggingRecipe(Recipe):
    task: Literal["tagging"] = "tagging"
    data: ConllDataConfig = ConllDataConfig()
    tokenizer: TokenizerSection = TokenizerSection()
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    model: TaggerModelConfig = TaggerModelConfig()

    def problems(self) -> list[str]:
        found = super().problems()
        data = self.data
        if data.hub and data.disk:
            found.append("data: name either data.hub or data.disk, not both")
        if data.disk:
            disk = self.resolve_path(data.disk)
            if disk is None or not disk.is_dir():
                found.append(f"data.disk: no folder {data.disk}")
        elif not data.hub:
            for split in ("train", "dev", "test"):
                for name in split_names(getattr(data, split)):
                    folder = self.resolve_path(data.dir, expect=name)
                    if folder is None or not (folder / name).is_file():
                        found.append(f"data.{split}: {name} not found in {data.dir} (set data.dir=FOLDER)")
            if data.format == "conll" and data.word_column == data.label_column:
                found.append("data.label_column: the same column as data.word_column")
            for column in data.feature_columns:
                if column in (data.word_column, data.label_column):
                    found.append(f"data.feature_columns: column {column} is the word or label column")
        if (data.hub or data.disk) and any(isinstance(getattr(data, split), list) for split in ("train", "dev", "test")):
            found.append("data.train/dev/test: a list of files needs data.dir files, not hub or disk splits")
        if data.feature_columns and (data.hub or data.disk or data.format != "conll"):
            found.append("data.feature_columns: only CoNLL files have feature columns")
        found.extend(self.embeddings.problems(self))
        return found


RECIPES: dict[str, type[Recipe]] = {"tagging": TaggingRecipe}


def register_recipe(task: str, cls: type[Recipe]) -> None:
    """Make ``task: NAME`` in a recipe validate against ``cls``."""
    RECIPES[task] = cls


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
            shown = f" (got {value!r})" if not isinstance(value, dict) else ""
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


def recipe_from_dict(data: dict[str, Any], source: str | None = None, check: bool = False) -> Recipe:
    """Validate a raw recipe dictionary into the task's recipe class.

    With ``check``, also look for missing files and impossible combinations
    (:meth:`Recipe.problems`). All problems are reported together in one
    :class:`RecipeError`.
    """
    where = source or "recipe"
    if not isinstance(data, dict):
        raise RecipeError(f"{where}: a recipe is a YAML mapping, got {type(data).__name__}")
    task = data.get("task", "tagging")
    cls = RECIPES.get(task)
    if cls is None:
        close = difflib.get_close_matches(str(task), list(RECIPES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise RecipeError(f"{where}: unknown task {task!r}{hint}; known tasks: {', '.join(RECIPES)}")
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


def load_recipe(path: str | Path, overrides: list[str] | None = None, check: bool = True) -> Recipe:
    """Read a YAML recipe, apply ``--set`` overrides and validate it.

    With ``check`` (the default, as before training) missing files and impossible
    combinations are reported too, together with any schema errors.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe not found") from None
    except yaml.YAMLError as error:
        raise RecipeError(f"{path}: not valid YAML: {error}") from None
    data = apply_overrides(data or {}, overrides or [])
    recipe = recipe_from_dict(data, str(path), check=check)
    if recipe.name is None:
        recipe.name = path.stem
    return recipe
