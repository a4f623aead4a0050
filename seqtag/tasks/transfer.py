"""Transfer learning: copy weights from a trained model into a new one (``model.init_from``).

:meth:`seqtag.tasks.base.Task.warm_start` loads the trained model and calls these helpers.

The two models may have been trained on different corpora, so their vocabularies
differ: embedding rows are copied by symbol. Every other weight is copied when
its name and shape agree; what cannot be copied keeps its fresh initialisation.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from seqtag.data.vocab import Vocabulary
from seqtag.modules.embedders import WordEmbedder

log = logging.getLogger(__name__)


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
