"""Vocabularies: string <-> index maps that serialise to JSON."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

PAD = "<pad>"
UNK = "<unk>"


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
        for item in items:
            self.add(item)

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
    def pad_index(self) -> int:
        if not self.pad:
            raise ValueError("this vocabulary has no padding entry")
        return 0

    @property
    def unk_index(self) -> int:
        if not self.unk:
            raise ValueError("this vocabulary has no unknown entry")
        return 1 if self.pad else 0

    def index(self, item: str) -> int:
        """Index of ``item``, ``<unk>``'s index if unknown (KeyError without ``<unk>``)."""
        index = self.stoi.get(item)
        if index is None:
            if not self.unk:
                raise KeyError(item)
            return self.unk_index
        return index

    def indices(self, items: Sequence[str]) -> list[int]:
        return [self.index(item) for item in items]

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
