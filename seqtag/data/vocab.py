"""Vocabularies: string <-> index maps that serialise to JSON, the word lookup of the tasks, and the
casing classes of words."""

from __future__ import annotations

import functools
import operator
import re
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, Sequence, ValuesView
from typing import Any, overload

import numpy as np

PAD = "<pad>"
UNK = "<unk>"
_DIGITS = re.compile(r"[0-9]")
# Penn Treebank bracket escapes (PTB, OntoNotes, SST and the Twitter corpus of Dong et al. use them).
_PTB_ESCAPES = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{", "-rcb-": "}"}
_ESCAPED = re.compile("|".join(map(re.escape, _PTB_ESCAPES)))
_NOSE = re.compile(r"^([:;=8])[-o^']+(.{1,2})$")  # ":-)" -> ":)", ";-(" -> ";(", "=-d" -> "=d"


_ENCODING = ("utf-8", "surrogatepass")  # JSON strings may hold lone surrogates: kept as they are
_utf8 = operator.methodcaller("encode", *_ENCODING)


def _typecode(largest: int) -> str:
    """The array typecode of 32-bit integers when ``largest`` fits, else of 64-bit ones."""
    return "i" if largest < 2**31 and array("i").itemsize == 4 else "q"


class WordList(Sequence[str]):
    """Distinct strings held compactly, with lookup: a read-only list and its inverse in one.

    The strings are one UTF-8 blob and an array of offsets; lookups hash the key (Python's
    ``hash``), bisect a sorted array of the strings' hashes and compare the candidates. About
    18 bytes a string besides its UTF-8 instead of the ~130 of a ``list`` plus a ``dict`` of Python
    strings: the 400,000 GloVe words take 10 MB instead of 52 MB (docs/performance.md,
    "Prediction memory"). Lookups take about a microsecond instead of a dict's tens of
    nanoseconds, so callers that look words up in bulk memoise (:class:`WordIndex`).

    Raises ValueError when ``items`` repeats a string and TypeError when one is not a string.
    """

    __slots__ = ("_blob", "_offsets", "_hashes", "_rows", "_starts", "_shift")

    def __init__(self, items: Iterable[str]) -> None:
        items = items if isinstance(items, list) else list(items)
        try:
            blob = "".join(items).encode(*_ENCODING)
        except TypeError:
            bad = next(item for item in items if not isinstance(item, str))
            raise TypeError(f"a word list holds strings, not {type(bad).__name__}") from None
        # Byte lengths: the character lengths when everything is ASCII, else each string encoded.
        lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
        if len(blob) != int(lengths.sum()):
            lengths = np.fromiter(map(len, map(_utf8, items)), dtype=np.int64, count=len(items))
        code = _typecode(len(blob))
        offsets = np.zeros(len(items) + 1, dtype=np.dtype(code))
        np.cumsum(lengths, out=offsets[1:], dtype=np.dtype(code))
        self._blob = blob
        self._offsets = array(code, offsets.tobytes())
        self._hashes: array[int] | None = None
        self._index(items)

    def _index(self, items: Sequence[str]) -> None:
        """The sorted hashes of ``items``, the row of each, and where each run of hashes with the
        same top bits starts (ValueError for a repeated string)."""
        hashes = np.fromiter(map(hash, items), dtype=np.int64, count=len(items))
        order = np.argsort(hashes)  # equal hashes (of different strings) may come in any order
        hashes = hashes[order]
        same = np.flatnonzero(hashes[1:] == hashes[:-1])
        if same.size:  # equal hashes are rare (64 bits): are the strings equal too?
            seen: set[str] = set()
            for row in sorted({int(order[j]) for j in same} | {int(order[j + 1]) for j in same}):
                if items[row] in seen:
                    raise ValueError(f"a word list holds distinct strings; {items[row]!r} is repeated")
                seen.add(items[row])
        # About four hashes per bucket of the top `bits` bits: a lookup bisects only its bucket.
        bits = max(1, min(20, len(items).bit_length() - 2))
        self._shift = 64 - bits
        half = 1 << (bits - 1)
        bounds = np.arange(-half, half, dtype=np.int64) << self._shift  # the first hash of each bucket
        starts = np.append(np.searchsorted(hashes, bounds), len(hashes))
        code = _typecode(len(items))
        self._starts = array(code, starts.astype(np.dtype(code)).tobytes())
        self._rows = array(code, order.astype(np.dtype(code)).tobytes())
        self._hashes = array("q", hashes.tobytes())

    def _item(self, row: int) -> str:
        offsets = self._offsets
        return self._blob[offsets[row] : offsets[row + 1]].decode(*_ENCODING)

    def find(self, item: object) -> int | None:
        """The row of ``item``, or None when it is not in the list."""
        hashes = self._hashes
        if hashes is None:  # unpickled: hashes are per process
            self._index(list(self))
            hashes = self._hashes
            assert hashes is not None
        key = hash(item)
        bucket = (key >> self._shift) + (1 << (63 - self._shift))
        starts = self._starts
        j = bisect_left(hashes, key, starts[bucket], starts[bucket + 1])
        end = len(hashes)
        while j < end and hashes[j] == key:
            row = self._rows[j]
            offsets = self._offsets
            if self._blob[offsets[row] : offsets[row + 1]].decode(*_ENCODING) == item:
                return row
            j += 1
        return None

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self._item(row) for row in range(*index.indices(len(self)))]
        row = operator.index(index)
        size = len(self)
        if row < 0:
            row += size
        if not 0 <= row < size:
            raise IndexError("word list index out of range")
        return self._item(row)

    def __iter__(self) -> Iterator[str]:
        blob, offsets = self._blob, self._offsets
        for row in range(len(self)):
            yield blob[offsets[row] : offsets[row + 1]].decode(*_ENCODING)

    def __contains__(self, item: object) -> bool:
        return self.find(item) is not None

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        row = self.find(value)
        if row is None or row < start or (stop is not None and row >= stop):
            raise ValueError(f"{value!r} is not in the word list")
        return row

    def count(self, value: Any) -> int:
        return int(self.find(value) is not None)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, WordList):
            return self._offsets == other._offsets and self._blob == other._blob
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes, bytearray)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, like a list

    def __repr__(self) -> str:
        return f"WordList({len(self)} strings)"

    def __getstate__(self) -> tuple[bytes, array[int]]:
        return self._blob, self._offsets  # not the hashes: str hashes differ between processes

    def __setstate__(self, state: tuple[bytes, array[int]]) -> None:
        self._blob, self._offsets = state
        self._hashes = None


class WordLookup(Mapping[str, int]):
    """The string -> index side of a :class:`WordList`: what ``Vocabulary.stoi`` is for a
    compact vocabulary (read-only; ``get``, ``in``, ``[]``, iteration in index order)."""

    __slots__ = ("words",)

    def __init__(self, words: WordList) -> None:
        self.words = words

    def __getitem__(self, key: str) -> int:
        row = self.words.find(key)
        if row is None:
            raise KeyError(key)
        return row

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        row = self.words.find(key)
        return default if row is None else row

    def __contains__(self, key: object) -> bool:
        return self.words.find(key) is not None

    def __len__(self) -> int:
        return len(self.words)

    def __iter__(self) -> Iterator[str]:
        return iter(self.words)

    def items(self) -> ItemsView[str, int]:
        return _LookupItems(self)

    def values(self) -> ValuesView[int]:
        return _LookupValues(self)

    def __repr__(self) -> str:
        return f"WordLookup({len(self)} strings)"


class _LookupItems(ItemsView[str, int]):
    def __iter__(self) -> Iterator[tuple[str, int]]:
        return ((word, row) for row, word in enumerate(self._mapping))  # type: ignore[attr-defined]


class _LookupValues(ValuesView[int]):
    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self._mapping)))  # type: ignore[attr-defined]


class Vocabulary:
    """An ordered set of strings with optional padding and unknown entries.

    Index 0 is ``<pad>`` and index 1 ``<unk>`` when present; unknown strings
    map to ``<unk>`` (or raise ``KeyError`` for vocabularies without one, such
    as tag sets).

    ``itos`` is the list of strings and ``stoi`` the dict from string to index; a compact
    vocabulary (:meth:`compact`, what a model file's word index loads as) holds them as a
    :class:`WordList` and its :class:`WordLookup` instead, which read the same and take a fifth
    of the memory. ``add`` turns a compact vocabulary back into a plain one first.
    """

    itos: list[str] | WordList
    stoi: dict[str, int] | WordLookup

    def __init__(self, items: Iterable[str] = (), pad: bool = True, unk: bool = True) -> None:
        self.pad = pad
        self.unk = unk
        self.itos = ([PAD] if pad else []) + ([UNK] if unk else [])
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        new = [item for item in dict.fromkeys(items) if item not in self.stoi]  # in order, each once
        self.stoi.update(zip(new, range(len(self.itos), len(self.itos) + len(new)), strict=True))
        self.itos.extend(new)

    @classmethod
    def compact(cls, items: Sequence[str], pad: bool = True, unk: bool = True) -> "Vocabulary":
        """``Vocabulary(items, pad, unk)`` held as a :class:`WordList`: the same indices, ``itos``
        and ``stoi`` lookups, a fifth of the memory for a big vocabulary (lookups about a
        microsecond each). TypeError when an item is not a string."""
        vocab = cls.__new__(cls)
        vocab.pad, vocab.unk = pad, unk
        try:
            words = WordList([*([PAD] if pad else []), *([UNK] if unk else []), *items])
        except ValueError:  # an item repeated (or a special one): each once, the first kept, as the constructor does
            words = WordList(cls(items, pad=pad, unk=unk).itos)
        vocab.itos, vocab.stoi = words, WordLookup(words)
        return vocab

    @property
    def is_compact(self) -> bool:
        """Whether the strings are held as a :class:`WordList` (see :meth:`compact`)."""
        return isinstance(self.itos, WordList)

    @classmethod
    def from_counts(
        cls, counts: Counter[str], min_count: int = 1, pad: bool = True, unk: bool = True
    ) -> "Vocabulary":
        """Most frequent first; ties broken alphabetically so builds are reproducible."""
        ordered = sorted((item for item, n in counts.items() if n >= min_count), key=lambda s: (-counts[s], s))
        return cls(ordered, pad=pad, unk=unk)

    def add(self, item: str) -> int:
        """Add ``item`` if new; return its index. A compact vocabulary becomes a plain one first."""
        index = self.stoi.get(item)
        if index is None:
            if not isinstance(self.itos, list) or not isinstance(self.stoi, dict):
                self.itos = list(self.itos)
                self.stoi = {s: i for i, s in enumerate(self.itos)}
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
        return {"pad": self.pad, "unk": self.unk, "items": list(self.itos[self.pad + self.unk :])}

    @classmethod
    def from_json(cls, data: dict[str, Any], compact: bool = False) -> "Vocabulary":
        """The vocabulary :meth:`to_json` gave; with ``compact``, held compactly (:meth:`compact`)."""
        pad, unk = bool(data["pad"]), bool(data["unk"])
        return cls.compact(data["items"], pad=pad, unk=unk) if compact else cls(data["items"], pad=pad, unk=unk)


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


_MEMO_SIZE = 1 << 16  # tokens a WordIndex remembers (then it starts over): a few MB at most


class WordIndex:
    """Maps tokens to word-table rows: training vocabulary first, then pretrained-only words.

    Lookup tries the token's key (lower-cased if the recipe says so), then its
    :func:`spelling_variants` (lower case, digits as zeros, PTB bracket escapes
    undone, emoticons without nose), before ``<unk>``. A word index read from a model file
    (:meth:`from_json`) holds its words compactly (:meth:`Vocabulary.compact`), its training
    words also as a dict, and remembers the rows of up to 65,536 distinct tokens it looked up
    (then starts over).

    Args:
        vocab: every word with a row, training words first (``<pad>`` 0, ``<unk>`` 1).
        num_trainable: how many rows (from the start) are training words.
        lowercase: whether words are looked up in lower case.
    """

    def __init__(self, vocab: Vocabulary, num_trainable: int, lowercase: bool) -> None:
        self.vocab = vocab
        self.num_trainable = num_trainable
        self.lowercase = lowercase
        # A compact vocabulary (a loaded model's): a WordList lookup takes about a microsecond, a
        # dict hit tens of nanoseconds. So the training words (the first rows: most tokens are
        # among them) are also a dict, and lookups are memoised per token. Both hold while
        # vocab.stoi is that WordLookup (Vocabulary.add replaces it with a dict).
        self._memo: dict[str, int] = {}
        self._memo_of = vocab.stoi if isinstance(vocab.stoi, WordLookup) else None
        self._hot: dict[str, int] = {}
        if self._memo_of is not None:
            self._hot = dict(zip(vocab.itos[:num_trainable], range(num_trainable), strict=False))

    @property
    def num_frozen(self) -> int:
        """Rows of the words only the pretrained vectors know."""
        return len(self.vocab) - self.num_trainable

    def key(self, token: str) -> str:
        return token.lower() if self.lowercase else token

    def index(self, token: str) -> int:
        stoi = self.vocab.stoi
        if stoi is self._memo_of:
            memo = self._memo
            found = memo.get(token)
            if found is None:
                found = self._lookup(self._get, token)
                if len(memo) >= _MEMO_SIZE:
                    memo.clear()
                memo[token] = found
            return found
        return self._lookup(stoi.get, token)

    def _get(self, key: str) -> int | None:
        """The row of ``key`` in a compact vocabulary: the training words' dict, then the WordList."""
        found = self._hot.get(key)
        return self.vocab.itos.find(key) if found is None else found  # type: ignore[union-attr]

    def _lookup(self, get: Callable[[str], int | None], token: str) -> int:
        key = self.key(token)
        found = get(key)
        if found is None:
            for variant in spelling_variants(key):
                found = get(variant)
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
        vocab = Vocabulary.from_json(data["words"], compact=True)
        num_trainable = int(data["num_trainable_words"])
        if not 2 <= num_trainable <= len(vocab):
            raise ValueError(f"num_trainable_words is {num_trainable}, not between 2 and the {len(vocab)} words")
        return cls(vocab, num_trainable, bool(data["lowercase"]))


#: The casing classes of :func:`casing` (index 0 is padding).
CASINGS = ("pad", "numeric", "mainly_numeric", "all_lower", "all_upper", "initial_upper", "contains_digit", "other")


@functools.lru_cache(maxsize=1 << 16)  # a pure function of the word, called for every token
def casing(word: str) -> int:
    """Casing class of ``word`` (Reimers & Gurevych 2017), an index into :data:`CASINGS`."""
    if word.isdigit():
        return 1
    digits = sum(map(str.isdigit, word))
    if digits / max(len(word), 1) > 0.5:
        return 2
    if word.islower():
        return 3
    if word.isupper():
        return 4
    if word[:1].isupper():
        return 5
    if digits:
        return 6
    return 7
