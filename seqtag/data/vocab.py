"""Vocabularies: string <-> index maps that serialise to JSON, and the word lookup of the tasks."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

PAD = "<pad>"
UNK = "<unk>"
_DIGITS = re.compile(r"[0-9]")
# Penn Treebank bracket escapes (PTB, OntoNotes, SST and the Twitter corpus of Dong et al. use them).
_PTB_ESCAPES = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{", "-rcb-": "}"}
_ESCAPED = re.compile("|".join(map(re.escape, _PTB_ESCAPES)))
_NOSE = re.compile(r"^([:;=8])[-o^']+(.{1,2})$")  # ":-)" -> ":)", ";-(" -> ";(", "=-d" -> "=d"


class Vocabulary:
    """An ordered set of strings with optional padding and unknown entries.

    Index 0 is ``<pad>`` and index 1 ``<unk>`` when present; unknown strings
    map to ``<unk>`` (or raise ``KeyError`` for vocabularies without one, such
    as tag sets).
    """

    def __init__(self, items: Iterable[str] = (), pad: bool = True, unk: bool = True) -> None:
        self.pad = pad
        self.unk = unk
        self.itos: list[str] = ([PAD] if pad else []) + ([UNK] if unk else [])
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}
        new = [item for item in dict.fromkeys(items) if item not in self.stoi]  # in order, each once
        self.stoi.update(zip(new, range(len(self.itos), len(self.itos) + len(new)), strict=True))
        self.itos.extend(new)

    @classmethod
    def from_counts(
        cls, counts: Counter[str], min_count: int = 1, pad: bool = True, unk: bool = True
    ) -> "Vocabulary":
        """Most frequent first; ties broken alphabetically so builds are reproducible."""
        ordered = sorted((item for item, n in counts.items() if n >= min_count), key=lambda s: (-counts[s], s))
        return cls(ordered, pad=pad, unk=unk)

    def add(self, item: str) -> int:
        """Add ``item`` if new; return its index."""
        index = self.stoi.get(item)
        if index is None:
            index = self.stoi[item] = len(self.itos)
            self.itos.append(item)
        return index

    @property
    def unk_index(self) -> int:
        if not self.unk:
            raise ValueError("this vocabulary has no unknown entry")
        return 1 if self.pad else 0

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, item: object) -> bool:
        return item in self.stoi

    def __getitem__(self, index: int) -> str:
        return self.itos[index]

    def to_json(self) -> dict[str, Any]:
        specials = len(self.itos) - len(self.itos[(self.pad + self.unk):])
        return {"pad": self.pad, "unk": self.unk, "items": self.itos[specials:]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Vocabulary":
        return cls(data["items"], pad=bool(data["pad"]), unk=bool(data["unk"]))


def spelling_variants(word: str) -> list[str]:
    """Lower-case spellings to try, in order, when ``word`` itself is unknown (no vector, not
    in a vocabulary): its lower case, with digits as zeros, with PTB bracket escapes undone
    (``-lrb-`` -> ``(``, ``:-rrb-`` -> ``:)``), and emoticons without their nose (``:-)`` -> ``:)``)."""
    lower = word.lower()
    variants = [lower, _DIGITS.sub("0", lower)]
    unescaped = _ESCAPED.sub(lambda match: _PTB_ESCAPES[match.group()], lower)
    variants.append(unescaped)
    variants.append(_NOSE.sub(r"\1\2", unescaped))
    return list(dict.fromkeys(v for v in variants if v != word))


class WordIndex:
    """Maps tokens to word-table rows: training vocabulary first, then pretrained-only words.

    Lookup tries the token's key (lower-cased if the recipe says so), then its
    :func:`spelling_variants` (lower case, digits as zeros, PTB bracket escapes
    undone, emoticons without nose), before ``<unk>``.

    Args:
        vocab: every word with a row, training words first (``<pad>`` 0, ``<unk>`` 1).
        num_trainable: how many rows (from the start) are training words.
        lowercase: whether words are looked up in lower case.
    """

    def __init__(self, vocab: Vocabulary, num_trainable: int, lowercase: bool) -> None:
        self.vocab = vocab
        self.num_trainable = num_trainable
        self.lowercase = lowercase

    @property
    def num_frozen(self) -> int:
        """Rows of the words only the pretrained vectors know."""
        return len(self.vocab) - self.num_trainable

    def key(self, token: str) -> str:
        return token.lower() if self.lowercase else token

    def index(self, token: str) -> int:
        stoi = self.vocab.stoi
        key = self.key(token)
        found = stoi.get(key)
        if found is None:
            for variant in spelling_variants(key):
                found = stoi.get(variant)
                if found is not None:
                    return found
            return self.vocab.unk_index
        return found

    def to_json(self) -> dict[str, Any]:
        """The model file's ``words``, ``num_trainable_words`` and ``lowercase`` entries."""
        return {"words": self.vocab.to_json(), "num_trainable_words": self.num_trainable, "lowercase": self.lowercase}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "WordIndex":
        """The index a model file stores (:meth:`to_json`); ValueError when its parts disagree."""
        vocab = Vocabulary.from_json(data["words"])
        num_trainable = int(data["num_trainable_words"])
        if not 2 <= num_trainable <= len(vocab):
            raise ValueError(f"num_trainable_words is {num_trainable}, not between 2 and the {len(vocab)} words")
        return cls(vocab, num_trainable, bool(data["lowercase"]))
