"""The task interface the trainer drives, and the skeleton every task shares.

A task knows its data, vocabularies and model: it reads the recipe's corpora,
turns examples into batches, computes a loss on a batch, predicts and
evaluates. The trainer only sees this interface, so a new task is a new
subclass (and one line in seqtag/registry.py), not a branch in the trainer.

What every task does the same way lives here once: reading the splits,
building the word vocabulary and copying pretrained vectors in, the model
file's word entries, rebuilding from a model file, caching encoded examples,
length-bucketed batches, the word table's optimiser group and transfer from
a trained model. A task keeps only what differs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from seqtag.config import Recipe, validate_recipe
from seqtag.data.batching import length_batches, to_device
from seqtag.data.vocab import WordIndex
from seqtag.devices import on_meta_device
from seqtag.embeddings import PretrainedVectors, recipe_vectors, word_vocabulary
from seqtag.errors import ArchiveError, DataError, RecipeError, SeqtagError, shorten
from seqtag.io import HALF_PRECISION_SUFFIXES, read_archive, write_model_file
from seqtag.modules.embedders import WordEmbedder
from seqtag.tasks import transfer

SPLITS = ("train", "dev", "test")
T = TypeVar("T", bound="Task")


def check_tensors(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
    """ValueError unless ``found`` has exactly the names, shapes and dtypes of ``expected`` (a model's
    state dict; tables a model file stores in half precision may be float16 where the model has
    float32); the message lists a few of each kind of difference, never all of them."""

    def some(names: list[str]) -> str:
        return ", ".join(shorten(name, 60) for name in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    problems = []
    missing = [name for name in expected if name not in found]
    unexpected = [name for name in found if name not in expected]
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing ({some(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s) ({some(unexpected)})")
    def fits(name: str, tensor: torch.Tensor) -> bool:
        dtype = found[name].dtype
        stored_half = dtype == torch.float16 and tensor.dtype == torch.float32 and name.endswith(HALF_PRECISION_SUFFIXES)
        return found[name].shape == tensor.shape and (dtype == tensor.dtype or stored_half)

    wrong = [name for name, tensor in expected.items() if name in found and not fits(name, tensor)]
    if wrong:
        name = wrong[0]
        problems.append(f"{shorten(name, 60)} is {found[name].dtype} {tuple(found[name].shape)}, the model's recipe "
                        f"and vocabularies need {expected[name].dtype} {tuple(expected[name].shape)}"
                        + (f" ({len(wrong) - 1} more tensor(s) differ)" if len(wrong) > 1 else ""))
    if problems:
        raise ValueError("; ".join(problems))


class Task(ABC):
    """One kind of problem (tagging, target sentiment, ...) with its model.

    Subclasses set ``name`` (the recipe's ``task`` value), ``recipe_class`` (its recipe
    schema), ``example_noun`` (what a corpus file holds, for messages) and ``main_metric``
    (the key of :meth:`evaluate`'s result that early stopping maximises, or minimises with
    ``metric_goal = "min"``), and implement
    reading, building, encoding and evaluation. Every task has a word table: ``words``
    (the :class:`~seqtag.data.vocab.WordIndex`), ``word_dim`` and ``model.words`` (a
    :class:`~seqtag.modules.embedders.WordEmbedder`).
    """

    name: ClassVar[str]
    recipe_class: ClassVar[type[Recipe]]
    example_noun: ClassVar[str] = "examples"
    #: Module whose weights :meth:`warm_start` expects to copy (a warning names it otherwise).
    transfer_core: ClassVar[str] = ""
    #: Whether a training batch may leave some parameters unused (distributed training must look for them).
    may_skip_parameters: ClassVar[bool] = False
    #: Whether a higher ``main_metric`` is better (``max``: F1, accuracy) or a lower one (``min``: perplexity):
    #: the trainer keeps the best dev epoch and counts patience by it.
    metric_goal: ClassVar[str] = "max"
    main_metric: str
    recipe: Any
    model: nn.Module
    words: WordIndex
    word_dim: int
    #: Where the model and its batches live (:meth:`to`).
    device: torch.device = torch.device("cpu")
    _encode_cache: tuple[Sequence[Any], list[Any]] | None = None

    def to(self: T, device: torch.device | str) -> T:
        """Move the model to ``device``; batches follow it there. Returns the task."""
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    # ------------------------------------------------------------------ reading

    @classmethod
    @abstractmethod
    def read_file(cls, recipe: Any, path: Path) -> list[Any]:
        """The labelled examples of one corpus file (logging what was read)."""

    @classmethod
    def read_splits(cls, recipe: Any) -> dict[str, list[Any]]:
        """Every split the recipe names (``train`` and, when present, ``dev`` and ``test``);
        a split may be several files, read one after another."""
        splits: dict[str, list[Any]] = {}
        for split in SPLITS:
            paths = recipe.split_files(split)
            if not paths:
                continue
            examples: list[Any] = []
            for path in paths:
                read = cls.read_file(recipe, path)
                if not read:
                    raise DataError(f"no {cls.example_noun} in this file", path)
                examples.extend(read)
            splits[split] = examples
        return splits

    # ----------------------------------------------------------------- building

    @classmethod
    def from_recipe(cls: type[T], recipe: Any) -> tuple[T, dict[str, list[Any]]]:
        """Read the recipe's corpora, build vocabularies and a fresh model.

        Returns the task and its data splits (``train`` and, when present, ``dev`` and ``test``).
        """
        splits = cls.read_splits(recipe)
        return cls.from_splits(recipe, splits), splits

    @classmethod
    def from_splits(cls: type[T], recipe: Any, splits: dict[str, list[Any]]) -> T:
        """A fresh task for data already read: vocabularies from ``splits["train"]``, a new
        model with the pretrained vectors copied in, and ``model.init_from`` applied.

        ``training.refit`` uses it to build the model it trains on train + dev.
        """
        task = cls.build(recipe, splits["train"], recipe_vectors(recipe.embeddings))
        init_from = getattr(recipe.model, "init_from", None)
        if init_from:
            path = recipe.resolve_path(init_from)
            assert path is not None
            task.warm_start(path)
        return task

    @classmethod
    @abstractmethod
    def build(cls: type[T], recipe: Any, train: Sequence[Any], vectors: PretrainedVectors | None) -> T:
        """Vocabularies from the training examples only, a fresh model, pretrained rows copied in."""

    @staticmethod
    def word_index(
        recipe: Any, tokens: Iterable[str], vectors: PretrainedVectors | None
    ) -> tuple[WordIndex, Counter[str], int]:
        """The word index of the training ``tokens`` (and the pretrained-only words), the training
        word counts and the word vector size."""
        vocab, num_trainable, counts, word_dim = word_vocabulary(tokens, recipe.embeddings, vectors)
        return WordIndex(vocab, num_trainable, recipe.embeddings.lowercase), counts, word_dim

    def word_embedder(self, random: bool = True) -> WordEmbedder:
        """Fresh word tables for the task's word index (random or zero; see :meth:`WordEmbedder.create`)."""
        return WordEmbedder.create(self.words.num_trainable, self.words.num_frozen, self.word_dim,
                                   self.recipe.embeddings.fine_tune, random)

    @staticmethod
    @torch.no_grad()
    def copy_pretrained(embedder: WordEmbedder, words: WordIndex, vectors: PretrainedVectors | None) -> list[int]:
        """Copy the pretrained vectors of the training words into the trainable table and those
        of the pretrained-only words into the frozen one; returns the trainable rows (past
        ``<pad>`` and ``<unk>``) that got no vector."""
        itos = words.vocab.itos
        if vectors is None:
            return list(range(2, words.num_trainable))
        missing = []
        for index in range(2, words.num_trainable):
            row = vectors.find(itos[index])
            if row is None:
                missing.append(index)
            else:
                embedder.embedding.weight[index] = torch.from_numpy(vectors.vectors[row])
        if embedder.frozen.size(0):
            rows = [vectors.index[w] for w in itos[words.num_trainable :]]
            embedder.frozen.copy_(torch.from_numpy(vectors.vectors[rows]))
        return missing

    def warm_start(self, path: Path) -> None:
        """Start from the weights of the trained model of this task in ``path`` (``model.init_from``).

        Word rows (trainable and pretrained-only) are copied by symbol, so the two corpora
        may have different vocabularies, and so are the task's other vocabularies
        (:meth:`copy_vocabulary_rows`); every other weight is copied when its name and shape
        agree, except :meth:`transfer_skip`. What could not be copied keeps its fresh
        initialisation.
        """
        try:
            source, _ = type(self).load(path)
        except ArchiveError as error:
            raise RecipeError(f"model.init_from: {error}; train that model first, or set model.init_from=null") from None
        if source.word_dim != self.word_dim:
            raise RecipeError(f"model.init_from: {path}: its word vectors have {source.word_dim} dimensions, "
                              f"this recipe's {self.word_dim}")
        counts = {"word vectors": transfer.copy_word_rows(self.model.words, self.words.vocab, source.model.words,
                                                          source.words.vocab)}
        counts.update(self.copy_vocabulary_rows(source))
        copied = transfer.copy_matching(self.model, source.model, ["words.", *self.transfer_skip(source)])
        transfer.report(path, counts, copied, needed=self.transfer_core)

    def copy_vocabulary_rows(self, source: Any) -> dict[str, int]:
        """Copy rows of the task's own symbol tables (e.g. characters) from ``source`` by symbol;
        returns how many per table."""
        return {}

    def transfer_skip(self, source: Any) -> list[str]:
        """Name prefixes of weights :meth:`warm_start` must not copy from ``source`` (besides ``words.``)."""
        return []

    # -------------------------------------------------------------- model files

    def vocab_state(self) -> dict[str, Any]:
        """Everything besides the recipe and weights needed to rebuild the task, as JSON."""
        return {**self.words.to_json(), "word_dim": self.word_dim, **self.extra_state()}

    @abstractmethod
    def extra_state(self) -> dict[str, Any]:
        """The task's own entries of :meth:`vocab_state` (besides the word index)."""

    @classmethod
    @abstractmethod
    def from_vocab(cls: type[T], recipe: Any, vocab: dict[str, Any]) -> T:
        """A task with an untrained model for a model file's recipe and vocabularies."""

    @classmethod
    def from_state(cls: type[T], recipe: Any, vocab: dict[str, Any], tensors: dict[str, torch.Tensor]) -> T:
        """Rebuild a trained task from a model file's contents.

        The model is first built on PyTorch's ``meta`` device (shapes only, no memory), so the
        sizes the file's recipe and vocabularies declare are checked against its tensors before
        anything is allocated; ValueError names what does not match.
        """
        with on_meta_device():
            task = cls.from_vocab(recipe, vocab)
        check_tensors(task.model.state_dict(), tensors)
        task.model.load_state_dict(tensors, strict=True, assign=True)  # the file's tensors become the weights: no copy
        left = [name for name, t in [*task.model.named_parameters(), *task.model.named_buffers()] if t.is_meta]
        if left:
            raise ValueError(f"not in the model file: {', '.join(left)}")
        task.model.eval()
        return task

    def save(self, path: str | Path, metrics: dict[str, Any] | None = None) -> Path:
        """Write the task (recipe, vocabularies, weights) and ``metrics`` to one model file."""
        return write_model_file(path, self.name, self.recipe.model_dump(mode="json"), self.vocab_state(),
                                self.model.state_dict(), metrics)

    @classmethod
    def from_archive(cls: type[T], content: dict[str, Any], path: str | Path) -> T:
        """The task stored in a model file's parsed ``content`` (see :func:`seqtag.io.read_archive`);
        ArchiveError naming ``path`` when it is inconsistent."""
        declared = content["recipe"].get("task", "tagging")
        if declared != cls.name:
            raise ArchiveError(f"{path}: inconsistent model file (meta.json says task {shorten(repr(cls.name))}, "
                               f"recipe.json is a {shorten(repr(declared))} recipe)")
        try:
            recipe = validate_recipe(content["recipe"], cls.recipe_class)
            return cls.from_state(recipe, content["vocab"], content["tensors"])
        except SeqtagError as error:  # one line: the recipe's list of problems joined
            raise ArchiveError(f"{path}: " + str(error).replace(":\n  - ", ": ").replace("\n  - ", "; ")) from None
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise ArchiveError(f"{path}: inconsistent model file ({type(error).__name__}: {error})") from None

    @classmethod
    def load(cls: type[T], path: str | Path) -> tuple[T, dict[str, Any]]:
        """The trained task in the model file ``path``, which must be of this task, and its metrics."""
        content = read_archive(path)
        found = content["meta"].get("task")
        if found != cls.name:
            raise ArchiveError(f"{path} is a {found!r} model, not a {cls.name!r} model")
        return cls.from_archive(content, path), content["metrics"]

    # ---------------------------------------------------------------- batching

    @abstractmethod
    def encode(self, example: Any) -> Any:
        """An example as indices (with its gold labels when it has them); ``len()`` is its length."""

    @abstractmethod
    def collate(self, items: Sequence[Any]) -> Any:
        """A batch of encoded examples as padded tensors."""

    def batch(self, items: Sequence[Any]) -> Any:
        """:meth:`collate` the encoded ``items`` and put the batch on the task's device."""
        return to_device(self.collate(items), self.device)

    def trainable(self, encoded: Any) -> bool:
        """Whether an encoded example can be trained on (e.g. its labels were all seen in training)."""
        return True

    def encoded(self, examples: Sequence[Any]) -> list[Any]:
        """:meth:`encode` of every example; training encodes the same split every epoch, so the
        last result is cached on the list object's identity."""
        cache = self._encode_cache
        if cache is not None and cache[0] is examples:
            return cache[1]
        encoded = [self.encode(e) for e in examples]
        self._encode_cache = (examples, encoded)
        return encoded

    def batches(
        self, examples: Sequence[Any], batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Any]:
        """Length-bucketed batches; with ``shuffle`` in random order (similar lengths together),
        skipping examples that cannot be trained on."""
        for batch, _ in self.shards(examples, batch_size, shuffle, generator):
            yield batch

    def shards(
        self,
        examples: Sequence[Any],
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> Iterator[tuple[Any, float]]:
        """Process ``rank``'s shard of each of :meth:`batches`' batches (every ``world_size``-th
        example), with its share of the batch's examples. A shard that would be empty (a batch
        smaller than the world) is the batch's first example with share 0, so that every
        process takes part in every step."""
        encoded = self.encoded(examples)
        usable = [i for i, e in enumerate(encoded) if self.trainable(e)] if shuffle else range(len(encoded))
        for order in length_batches([len(encoded[i]) for i in usable], batch_size, generator if shuffle else None):
            mine = order[rank::world_size]
            yield self.batch([encoded[usable[i]] for i in mine or order[:1]]), len(mine) / len(order)

    def batch_size_of(self, batch: Any) -> int:
        """Number of examples in ``batch`` (for throughput figures)."""
        return len(batch)

    # ---------------------------------------------------------------- training

    def loss(self, batch: Any, reduction: str = "sum") -> torch.Tensor:
        """Scalar training loss of one batch (the model's)."""
        return self.model.loss(batch, reduction)

    @abstractmethod
    def evaluate(self, examples: Sequence[Any], batch_size: int = 256) -> dict[str, Any]:
        """Metrics on labelled examples; must include ``main_metric``."""

    def training_state(self) -> dict[str, torch.Tensor]:
        """Tensors besides the weights that the next training step depends on (e.g. a language model's
        states carried from one window to the next); checkpoints keep them. None by default."""
        return {}

    def restore_training_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take back what :meth:`training_state` gave, from a checkpoint (ValueError when it does not fit)."""
        if tensors:
            raise ValueError(f"this task keeps no training state, the checkpoint holds {len(tensors)} task tensor(s)")

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Optimiser parameter groups. A group may carry ``lr_scale`` (its learning rate is
        the schedule's times this factor, e.g. a lower rate for fine-tuned embeddings)."""
        return [{"params": [p for p in self.model.parameters() if p.requires_grad]}]

    def word_table_groups(self, **options: Any) -> list[dict[str, Any]]:
        """Two parameter groups: every trainable parameter but the fine-tuned word table, then the
        table with its own ``options`` (``lr_scale``, ``plain_sgd``, ``weight_decay``)."""
        table = self.model.words.embedding.weight
        rest = [p for p in self.model.parameters() if p.requires_grad and p is not table]
        groups: list[dict[str, Any]] = [{"params": rest}]
        if table.requires_grad:
            groups.append({"params": [table], **options})
        return groups

    def describe(self, splits: dict[str, list[Any]]) -> str:
        """One or two lines summarising data and model for the training log."""
        sizes = ", ".join(f"{name} {len(data)}" for name, data in splits.items())
        parameters = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return f"task {self.name}: {sizes} examples; {parameters:,} trainable parameters"
