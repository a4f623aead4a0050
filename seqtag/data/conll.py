"""CoNLL-style column files: one token per line, a blank line between sentences.

Columns are separated by tabs when a line contains a tab, otherwise by runs
of spaces. ``-DOCSTART-`` lines are skipped when reading a corpus; a predictor that writes the
input back asks for them (and for every blank line) as :class:`Verbatim` items, so its output
has the input's lines. Every malformed line raises a :class:`~seqtag.errors.DataError` naming
the file and line number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from seqtag.data.files import read_lines
from seqtag.errors import DataError, shorten

DOCSTART = "-DOCSTART-"


@dataclass
class Sentence:
    """One sentence read from a column file.

    ``rows`` keeps every input column of every token (for writing
    predictions back next to them); ``tokens`` and ``labels`` are the chosen
    word and label columns. ``line`` is the 1-based line of the first token.
    ``document`` tells documents apart: sentences of one file with the same
    value belong to one document (in a CoNLL file, the number of ``-DOCSTART-``
    lines before the sentence); None when nothing says.
    """

    tokens: list[str]
    labels: list[str] | None = None
    rows: list[list[str]] = field(default_factory=list)
    path: str | None = None
    line: int | None = None
    document: int | None = None

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True)
class Verbatim:
    """An input line that a prediction copies to its output as it is: a blank line (one that
    ends a sentence or any other), or a ``-DOCSTART-`` line."""

    text: str = ""


@dataclass
class ReadStats:
    """What a read saw: sentences, tokens, and lines it skipped on purpose."""

    sentences: int = 0
    tokens: int = 0
    docstart_lines: int = 0


def _split(line: str) -> list[str]:
    return line.split("\t") if "\t" in line else line.split()


def _resolve_column(index: int, width: int, what: str, path: str, line: int) -> int:
    resolved = index if index >= 0 else width + index
    if not 0 <= resolved < width:
        raise DataError(f"the {what} column {index} does not exist: this line has {width} columns", path, line)
    return resolved


def read_conll(
    path: str | Path,
    word_column: int = 0,
    label_column: int | None = -1,
    stats: ReadStats | None = None,
) -> list[Sentence]:
    """Read a column file into sentences.

    Args:
        path: the file (UTF-8; a BOM and CRLF line ends are accepted).
        word_column: index of the token column (negative counts from the end).
        label_column: index of the label column, or ``None`` for unlabelled input.
        stats: if given, filled with counts of what was read and skipped.
    """
    return list(iter_conll(path, word_column, label_column, stats))


def iter_conll(
    path: str | Path,
    word_column: int = 0,
    label_column: int | None = -1,
    stats: ReadStats | None = None,
) -> Iterator[Sentence]:
    """Stream the sentences of a column file; see :func:`read_conll`."""
    return parse_conll(read_lines(path), path, word_column, label_column, stats)  # type: ignore[return-value]


def parse_conll(
    lines: Iterable[tuple[int, str]],
    path: str | Path,
    word_column: int = 0,
    label_column: int | None = -1,
    stats: ReadStats | None = None,
    verbatim: bool = False,
    document: int = 0,
) -> Iterator[Sentence | Verbatim]:
    """The sentences of a column file's ``(line number, text)`` pairs (from :func:`~seqtag.data.files.read_lines`
    or a :class:`~seqtag.data.files.LineReader`); a sentence is yielded once the line after it
    (blank, or the end of the input) has been read. See :func:`read_conll`.

    With ``verbatim``, every blank line (including the one that ends a sentence, yielded right
    after the sentence) and every ``-DOCSTART-`` line also comes out, as a :class:`Verbatim`, so
    the items account for every input line in order. ``document`` is the document number of the
    first sentence (reading from the middle of a file: the ``-DOCSTART-`` lines before it).
    """
    path = str(path)
    stats = stats if stats is not None else ReadStats()
    width: int | None = None
    rows: list[list[str]] = []
    first_line = 0
    for number, line in lines:
        if not line.strip():
            if rows:
                yield _sentence(rows, path, first_line, word_column, label_column, stats, document)
                rows = []
            if verbatim:
                yield Verbatim("")
            continue
        columns = _split(line)
        if columns[0] == DOCSTART:
            stats.docstart_lines += 1
            if rows:  # a -DOCSTART- line without a blank line before it ends the sentence
                yield _sentence(rows, path, first_line, word_column, label_column, stats, document)
                rows = []
            document += 1
            if verbatim:
                yield Verbatim(line)
            continue
        if width is None:
            width = len(columns)
            words_at = _resolve_column(word_column, width, "word", path, number)
            if label_column is not None:
                labels_at = _resolve_column(label_column, width, "label", path, number)
                if labels_at == words_at:
                    raise DataError("the word and label columns are the same column", path, number)
        if len(columns) != width:
            raise DataError(f"expected {width} columns like the lines before, found {len(columns)}: {shorten(repr(line))}",
                            path, number)
        if "\t" in line and any(not column.strip() for column in columns):  # split() makes no empty column
            raise DataError(f"empty column in {shorten(repr(line))}", path, number)
        if not rows:
            first_line = number
        rows.append(columns)
    if rows:
        yield _sentence(rows, path, first_line, word_column, label_column, stats, document)


def _sentence(
    rows: list[list[str]], path: str, line: int, word_column: int, label_column: int | None, stats: ReadStats,
    document: int | None = None,
) -> Sentence:
    stats.sentences += 1
    stats.tokens += len(rows)
    tokens = [row[word_column].strip() for row in rows]
    labels = None if label_column is None else [row[label_column].strip() for row in rows]
    return Sentence(tokens=tokens, labels=labels, rows=rows, path=path, line=line, document=document)


def read_token_lines(path: str | Path) -> list[Sentence]:
    """Read one pre-tokenised sentence per line (tokens separated by spaces; blank lines skipped)."""
    return [item for item in parse_token_lines(read_lines(path), path) if isinstance(item, Sentence)]


def parse_token_lines(lines: Iterable[tuple[int, str]], path: str | Path) -> Iterator[Sentence | Verbatim]:
    """The items of ``(line number, text)`` pairs holding one pre-tokenised sentence each: a
    :class:`Sentence` per line with tokens, a blank :class:`Verbatim` per blank or whitespace-only line."""
    path = str(path)
    for number, line in lines:
        tokens = line.split()
        yield Sentence(tokens=tokens, rows=[[t] for t in tokens], path=path, line=number) if tokens else Verbatim("")


def token_line(tokens: Sequence[str], tags: Sequence[str]) -> str:
    """One tagged sentence as ``token/TAG`` pairs separated by spaces, with a line end."""
    return " ".join(f"{t}/{g}" for t, g in zip(tokens, tags, strict=True)) + "\n"


def write_conll(sentences: Iterable[Sentence], predictions: Iterable[Sequence[str]], out: TextIO | str | Path) -> None:
    """Write each sentence's input columns plus a predicted tag column to a stream or a file."""
    if isinstance(out, (str, Path)):
        with open(out, "w", encoding="utf-8") as handle:
            write_conll(sentences, predictions, handle)
        return
    for sentence, tags in zip(sentences, predictions, strict=True):
        out.write(conll_block(sentence, tags))


def conll_block(sentence: Sentence, tags: Sequence[str]) -> str:
    """One sentence's input columns plus a predicted tag column, and the blank line after it."""
    rows = sentence.rows or [[token] for token in sentence.tokens]
    return "".join("\t".join([*row, tag]) + "\n" for row, tag in zip(rows, tags, strict=True)) + "\n"
