"""Transfer learning: start a new model from the weights of a trained one (``model.init_from``).

The two models may have been trained on different corpora, so their vocabularies
differ: embedding rows are copied by symbol. Every other weight is copied when
its name and shape agree; what cannot be copied keeps its fresh initialisation.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch
from torch import nn

from seqtag.data.vocab import Vocabulary
from seqtag.errors import ArchiveError, RecipeError
from seqtag.modules.embedders import WordEmbedder

if TYPE_CHECKING:
    from seqtag.tasks.base import Task

log = logging.getLogger(__name__)

T = TypeVar("T", bound="Task")


def load_source(path: Path, task_class: type[T], word_dim: int) -> T:
    """The trained task in ``path``; RecipeError when it is missing, of another task, or has
    word vectors of another size."""
    from seqtag.archive import load_task

    try:
        source, _ = load_task(path)
    except ArchiveError as error:
        raise RecipeError(f"model.init_from: {error}; train that model first, or set model.init_from=null") from None
    if not isinstance(source, task_class):
        raise RecipeError(f"model.init_from: {path} is a {source.name!r} model, not a {task_class.name!r} model")
    source_dim = getattr(source, "word_dim", None)
    if source_dim != word_dim:
        raise RecipeError(f"model.init_from: {path}: its word vectors have {source_dim} dimensions, this recipe's {word_dim}")
    return source


@torch.no_grad()
def copy_word_rows(target: WordEmbedder, vocab: Vocabulary, source: WordEmbedder, source_vocab: Vocabulary) -> int:
    """Give every word both models know the source's vector; returns how many were copied.

    Trainable rows take the source's row, trained or pretrained-only. A word that is
    pretrained-only (frozen) here takes the source's row only when the source trained
    it; otherwise both already hold the same pretrained vector. Padding stays zero.
    """
    table = torch.cat([source.embedding.weight, source.frozen.float()])  # (V_src, D)
    trainable = target.num_trainable
    copied = 0
    for index, word in enumerate(vocab.itos):
        row = source_vocab.stoi.get(word)
        if index == 0 or row is None or row == 0:
            continue
        if index < trainable:
            target.embedding.weight[index] = table[row]
            copied += 1
        elif row < source.num_trainable:
            target.frozen[index - trainable] = table[row].to(target.frozen.dtype)
            copied += 1
    return copied


@torch.no_grad()
def copy_rows(target: torch.Tensor, vocab: Vocabulary, source: torch.Tensor, source_vocab: Vocabulary) -> int:
    """Copy the rows of an embedding table ``(V, D)`` by symbol (padding excluded); returns how many."""
    if target.size(1) != source.size(1):
        return 0
    pairs = [(index, source_vocab.stoi[symbol]) for index, symbol in enumerate(vocab.itos)
             if index >= 1 and symbol in source_vocab.stoi]
    for index, row in pairs:
        target[index] = source[row]
    return len(pairs)


@torch.no_grad()
def copy_matching(target: nn.Module, source: nn.Module, skip: Iterable[str] = ()) -> list[str]:
    """Copy every parameter and buffer of ``source`` whose name and shape ``target`` shares,
    except names starting with a ``skip`` prefix; returns the copied names."""
    prefixes = tuple(skip)
    source_state = source.state_dict()
    copied = []
    for name, value in target.state_dict().items():
        if prefixes and name.startswith(prefixes):
            continue
        other = source_state.get(name)
        if other is not None and other.shape == value.shape:
            value.copy_(other)
            copied.append(name)
    return copied


def report(path: Path, counts: dict[str, int], copied: list[str], needed: str) -> None:
    """Log what ``model.init_from`` copied; warn when no weight of module ``needed`` was."""
    modules = Counter(name.split(".")[0] for name in copied)
    parts = [f"{n} {what}" for what, n in counts.items()] + [f"{module} ({n} tensors)" for module, n in modules.items()]
    log.info("model.init_from %s: copied %s", path, ", ".join(parts))
    if needed not in modules:
        log.warning("model.init_from %s: no %s weight has the same shape here; only vectors were copied", path, needed)
