"""Tagging corpora through the Hugging Face ``datasets`` library.

Three kinds of source, all giving :class:`~seqtag.data.conll.Sentence` objects:

* a hub dataset: ``data: {hub: conll2003, config: ..., revision: ...}``;
* a dataset saved with ``save_to_disk``: ``data: {disk: path/to/folder}``;
* local json / csv / parquet files: ``data: {format: json, dir: ..., train: train.json, ...}``.

Each example holds a list of tokens (``tokens_field``) and a list of tags
(``tags_field``); integer tags are turned into names through the dataset's
``ClassLabel`` feature or the recipe's ``tag_names``. In csv files both fields
may be strings of space-separated items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from seqtag.data.conll import Sentence
from seqtag.data.files import split_names
from seqtag.errors import DataError, shorten


class ConllDataConfig(Protocol):
    """What this module reads of a tagging recipe's ``data`` section."""

    format: str
    hub: str | None
    config: str | None
    revision: str | None
    disk: str | None
    tokens_field: str
    tags_field: str
    tag_names: list[str] | None
    dir: str
    train: str | list[str]
    dev: str | list[str] | None
    test: str | list[str] | None


class Recipe(Protocol):
    """What this module needs of a recipe: relative paths resolved as the recipe resolves them."""

    def resolve_path(self, path: str | None, expect: str | None = None) -> Path | None: ...

# Recipe split -> usual dataset split names, tried when the recipe's name is not a split.
DEFAULT_SPLITS = {"train": ("train",), "dev": ("validation", "valid", "dev"), "test": ("test",)}


def uses_datasets(data: ConllDataConfig) -> bool:
    """Whether the recipe's corpus is read through ``datasets`` rather than the CoNLL reader."""
    return bool(data.hub or data.disk or data.format != "conll")


def _load(recipe: Recipe, data: ConllDataConfig) -> tuple[Any, str]:
    try:
        import datasets
    except ImportError:
        raise DataError("this recipe reads data through the datasets library: pip install datasets") from None
    if data.disk:
        folder = recipe.resolve_path(data.disk)
        try:
            return datasets.load_from_disk(str(folder)), str(folder)
        except FileNotFoundError as error:
            raise DataError(f"no dataset saved with save_to_disk here ({shorten(str(error))})", folder) from None
        except Exception as error:  # datasets and pyarrow raise many kinds for a damaged folder
            raise DataError(f"cannot read the dataset saved here ({type(error).__name__}: {shorten(str(error))})",
                            folder) from None
    if data.hub:
        try:
            return datasets.load_dataset(data.hub, data.config, revision=data.revision), f"hub:{data.hub}"
        except Exception as error:  # datasets raises many kinds: connection, offline mode, not found
            raise DataError(
                f"could not load {data.hub!r} from the Hugging Face hub ({type(error).__name__}: {error}). "
                "Without network access, download the files elsewhere and point the recipe at them: "
                "data.format: json|csv|parquet with data.dir and data.train/dev/test, or data.disk for a "
                "dataset saved with save_to_disk"
            ) from None
    directory = recipe.resolve_path(data.dir, expect=split_names(data.train)[0])
    files = {}
    for split in ("train", "dev", "test"):
        paths = [(directory or Path(".")) / name for name in split_names(getattr(data, split))]
        for path in paths:
            if not path.is_file():
                raise DataError(f"the {split} file is missing; point the recipe at it with --set data.dir=PATH", path)
        if paths:
            files[split] = [str(path) for path in paths]
    try:
        return datasets.load_dataset(data.format, data_files=files), str(directory)
    except Exception as error:
        raise DataError(f"cannot read the {data.format} files ({type(error).__name__}: {error})", directory) from None


def dataset_splits(recipe: Recipe, data: Any) -> dict[str, tuple[Any, str]]:
    """The recipe's splits (``train`` and, when named, ``dev`` and ``test``) of a ``datasets``
    source as ``(table, where)`` pairs, ``where`` naming the source and split for messages.
    ``data`` is the recipe's data section (hub, disk or local json/csv/parquet files)."""
    dataset, where = _load(recipe, data)
    if not hasattr(dataset, "keys"):  # a single Dataset rather than a DatasetDict: it is the training split
        dataset = {"train": dataset}
    available = list(dataset.keys())
    local_files = not (data.hub or data.disk)
    splits: dict[str, tuple[Any, str]] = {}
    for split in ("train", "dev", "test"):
        wanted = getattr(data, split)
        if wanted is None:
            continue
        name = split if local_files else _split_name(wanted, split, available)
        if name is None:
            if split == "train":
                raise DataError(f"no training split among {available}; set data.train to one of them", where)
            continue
        splits[split] = (dataset[name], f"{where}[{name}]")
    return splits


def read_dataset_splits(recipe: Recipe, data: ConllDataConfig) -> dict[str, list[Sentence]]:
    """All recipe splits (``train`` and, when present, ``dev`` and ``test``) as sentences."""
    return {split: _sentences(table, data, where) for split, (table, where) in dataset_splits(recipe, data).items()}


def _split_name(wanted: str, split: str, available: list[str]) -> str | None:
    if wanted in available:
        return wanted
    return next((name for name in DEFAULT_SPLITS[split] if name in available), None)


def _sentences(table: Any, data: ConllDataConfig, where: str) -> list[Sentence]:
    for field in (data.tokens_field, data.tags_field):
        if field not in table.column_names:
            raise DataError(f"no field {field!r}; the dataset has {table.column_names} (set data.tokens_field / data.tags_field)", where)
    names = data.tag_names or _class_names(table.features[data.tags_field])
    sentences = []
    for row, example in enumerate(table, start=1):
        tokens, tags = _items(example[data.tokens_field]), _items(example[data.tags_field])
        if not tokens:
            continue
        if len(tokens) != len(tags):
            raise DataError(f"{len(tokens)} tokens but {len(tags)} tags", where, row)
        if any(isinstance(tag, int) for tag in tags):
            if names is None:
                raise DataError("tags are integers but the dataset has no ClassLabel names; set data.tag_names", where, row)
            try:
                tags = [names[tag] for tag in tags]
            except (IndexError, TypeError):
                raise DataError(f"tag index out of range of the {len(names)} tag names", where, row) from None
        if any(not str(token).strip() for token in tokens):
            raise DataError("empty token", where, row)
        tokens = [str(token) for token in tokens]
        sentences.append(Sentence(tokens=tokens, labels=[str(t) for t in tags], rows=[[t] for t in tokens], path=where, line=row))
    if not sentences:
        raise DataError("no sentences", where)
    return sentences


def _items(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [int(v) if v.isdigit() else v for v in value.split()]
    return list(value)


def _class_names(feature: Any) -> list[str] | None:
    inner = getattr(feature, "feature", None)  # Sequence(ClassLabel) or List(ClassLabel)
    names = getattr(inner, "names", None) or getattr(feature, "names", None)
    return list(names) if names else None
