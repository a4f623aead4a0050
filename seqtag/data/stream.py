"""A tagger's input files read in chunks that know where they start and end, and its output written back.

Three input formats (``format=auto`` picks ``conll`` or ``tokens`` by looking at the file):

* ``conll``: one token per line, columns, a blank line between sentences; the output is the
  input's columns plus a predicted tag column, a blank line after each sentence
  (``-DOCSTART-`` lines are dropped, as ``seqtag predict`` always did);
* ``tokens``: one pre-tokenised sentence per line (tokens separated by spaces); the output is
  one line of ``token/TAG`` pairs per sentence (blank input lines are skipped);
* ``text``: raw running text, one paragraph (or document) per line; the model's own tokenizer
  splits it into sentences and tokens. The output is one line of ``token/TAG`` pairs per
  sentence, and a blank line after the sentences of each input line (blank input lines are
  skipped), so the n-th block of the output is the n-th non-blank line of the input.

A :class:`Chunk` holds whole sentences (texts) and ends at an input line end, at the first
sentence that brings it to ``chunk_tokens`` tokens; its :class:`Position` s say where in the
input it starts and ends, so a job that recorded the end of its last written chunk can later
continue there with :func:`read_chunks` (``start=``) and cut the same chunks as before.
Memory stays bounded by the chunk size (and the longest sentence, or line of text).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from seqtag.data.conll import conll_block, looks_like_conll, parse_conll, parse_token_lines, token_line
from seqtag.data.files import LineReader
from seqtag.errors import SeqtagError

#: The input formats of tagging models (``auto`` guesses ``conll`` or ``tokens``).
FORMATS = ("conll", "tokens", "text")
#: Tokens per chunk unless a caller says otherwise.
CHUNK_TOKENS = 16384

#: What a tagger returns for one chunk: tags per sentence (conll, tokens), or per text a list of
#: ``(tokens, tags)`` pairs, one per sentence (text).
ChunkResult = Union[list[list[str]], list[list[tuple[list[str], list[str]]]]]


@dataclass(frozen=True)
class Position:
    """A place in an input file: bytes and lines read, and sentences (texts) read."""

    offset: int = 0
    line: int = 0
    items: int = 0

    def to_json(self) -> dict[str, int]:
        """The position as a JSON object (for a progress record)."""
        return {"offset": self.offset, "line": self.line, "items": self.items}

    @classmethod
    def from_json(cls, data: Any) -> Position:
        """The position :meth:`to_json` wrote; a ValueError when ``data`` is not one."""
        if not isinstance(data, dict) or not all(isinstance(data.get(k), int) and data[k] >= 0 for k in ("offset", "line", "items")):
            raise ValueError(f"not a position: {data!r}")
        return cls(data["offset"], data["line"], data["items"])


@dataclass
class Chunk:
    """Consecutive sentences (``conll``, ``tokens``: :class:`~seqtag.data.conll.Sentence` s) or texts
    (``text``: strings) of one input file, from ``start`` to ``end``; ``tokens`` counts their
    tokens (for ``text``: their whitespace-separated words)."""

    format: str
    items: list[Any]
    start: Position
    end: Position
    tokens: int


def resolve_format(path: str | Path, format: str = "auto") -> str:
    """``format``, or for ``auto`` the one ``path`` looks like (``conll`` or ``tokens``; raw text is never guessed)."""
    if format == "auto":
        return "conll" if looks_like_conll(path) else "tokens"
    if format not in FORMATS:
        raise SeqtagError(f"unknown input format {format!r}; choose auto, {', '.join(FORMATS)}")
    return format


def read_chunks(
    path: str | Path,
    format: str,
    word_column: int = 0,
    chunk_tokens: int = CHUNK_TOKENS,
    start: Position = Position(),
) -> Iterator[Chunk]:
    """The chunks of ``path`` (format ``conll``, ``tokens`` or ``text``) from ``start`` on, lazily.

    Bad input raises a :class:`~seqtag.errors.DataError` naming the file and line when the
    chunk holding it is read.
    """
    if format not in FORMATS:
        raise SeqtagError(f"unknown input format {format!r}; choose one of {', '.join(FORMATS)}")
    reader = LineReader(path, start.offset, start.line, split_cr=format != "conll")
    items: Iterator[Any]
    if format == "conll":
        items = parse_conll(reader, path, word_column, None)
    elif format == "tokens":
        items = parse_token_lines(reader, path)
    else:
        items = (line for _, line in reader if line.strip())
    chunk: list[Any] = []
    tokens = 0
    begin = start
    for item in items:
        chunk.append(item)
        tokens += len(item) if format != "text" else len(item.split())
        if tokens >= chunk_tokens and reader.at_boundary:
            end = Position(reader.offset, reader.number, begin.items + len(chunk))
            yield Chunk(format, chunk, begin, end, tokens)
            chunk, tokens, begin = [], 0, end
    if chunk:
        yield Chunk(format, chunk, begin, Position(reader.offset, reader.number, begin.items + len(chunk)), tokens)


def format_chunk(chunk: Chunk, result: ChunkResult) -> str:
    """The output text of a chunk given the tagger's ``result`` for it (see the module docstring)."""
    if chunk.format == "conll":
        return "".join(conll_block(sentence, tags) for sentence, tags in zip(chunk.items, result, strict=True))
    if chunk.format == "tokens":
        return "".join(token_line(sentence.tokens, tags) for sentence, tags in zip(chunk.items, result, strict=True))
    return "".join(
        "".join(token_line(tokens, tags) for tokens, tags in sentences) + "\n"
        for sentences in result  # type: ignore[union-attr]
    )


def count_sentences(chunk: Chunk, result: ChunkResult) -> int:
    """Sentences the tagger saw in a chunk (for ``text``, those its tokenizer found)."""
    if chunk.format == "text":
        return sum(len(sentences) for sentences in result)
    return len(chunk.items)


def count_tokens(chunk: Chunk, result: ChunkResult) -> int:
    """Tokens the tagger tagged in a chunk (for ``text``, those its tokenizer made)."""
    if chunk.format == "text":
        return sum(len(tokens) for sentences in result for tokens, _ in sentences)  # type: ignore[misc]
    return chunk.tokens
