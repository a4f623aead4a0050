"""A tagger's input files read in chunks that know where they start and end, and its output written back.

Four input formats; ``format=auto`` detects which one a file holds (:func:`detect_format`):

* ``conll``: one token per line, columns, a blank line between sentences; the output is the
  input's lines with a predicted tag column added to every token line, and every other line
  (blank lines, ``-DOCSTART-`` lines) copied as it is;
* ``tokens``: one pre-tokenised sentence per line (tokens separated by spaces); the output is
  one line of ``token/TAG`` pairs per input line (a blank input line gives a blank line);
* ``text``: raw running text; paragraphs are separated by blank lines (a line break inside a
  paragraph is a space). The model's own tokenizer and sentence splitter (those of
  :meth:`~seqtag.tasks.tagging.predictor.TaggingPredictor.tag`) split each paragraph; the
  output is one line of ``token/TAG`` pairs per sentence, and every blank input line is copied,
  so paragraphs stay apart;
* ``jsonl``: one JSON object per line with ``"text"`` (raw text) or ``"tokens"`` (a list of
  strings); the output is the same object, every key kept, plus ``"sentences"``: tokens, tags,
  confidences, character offsets and entities (a blank input line gives a blank line).

So the output has one line (``tokens``, ``jsonl``), one line per token (``conll``) or one
line per sentence (``text``) for every input line, in order, and every blank line where the
input has one. Lines end with LF, CRLF or a lone CR.

A :class:`Chunk` holds whole items and ends at an input line end, at the first item that
brings it to ``chunk_tokens`` tokens; its :class:`Position` s say where in the input it starts
and ends, so a job that recorded the end of its last written chunk can later continue there
with :func:`read_chunks` (``start=``) and cut the same chunks as before. Memory stays bounded
by the chunk size (and the longest sentence, or paragraph of at most :data:`PARAGRAPH_CHARS`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from seqtag.data.conll import (
    DOCSTART,
    ReadStats,
    Sentence,
    Verbatim,
    conll_block,
    parse_conll,
    parse_token_lines,
    token_line,
)
from seqtag.data.files import LineReader, head_lines
from seqtag.errors import DataError, SeqtagError, shorten

#: The input formats of tagging models (``auto`` detects one of them).
FORMATS = ("conll", "tokens", "text", "jsonl")
#: Tokens per chunk unless a caller says otherwise.
CHUNK_TOKENS = 16384
#: With document context, a chunk that would cut a document may grow to this many times its size first.
DOCUMENT_CHUNKS = 8
#: A paragraph of raw text longer than this is tagged in pieces that end at line ends.
PARAGRAPH_CHARS = 100_000

#: What a tagger returns for the items of a chunk that are not :class:`Verbatim`: tags per
#: sentence (conll, tokens); per paragraph a list of ``(tokens, tags)`` pairs, one per sentence
#: (text); per record a list of sentences as JSON objects (jsonl).
ChunkResult = Union[list[list[str]], list[list[tuple[list[str], list[str]]]], list[list[dict[str, Any]]]]


@dataclass(frozen=True)
class Position:
    """A place in an input file: bytes and lines read, and items read."""

    offset: int = 0
    line: int = 0
    items: int = 0
    documents: int = 0  # -DOCSTART- lines read (CoNLL): the document number of what follows

    def to_json(self) -> dict[str, int]:
        """The position as a JSON object (for a progress record)."""
        return {"offset": self.offset, "line": self.line, "items": self.items, "documents": self.documents}

    @classmethod
    def from_json(cls, data: Any) -> Position:
        """The position :meth:`to_json` wrote; a ValueError when ``data`` is not one."""
        keys = ("offset", "line", "items", "documents")
        if not isinstance(data, dict) or not all(isinstance(data.get(k), int) and data[k] >= 0 for k in keys):
            raise ValueError(f"not a position: {shorten(repr(data))}")
        return cls(*(data[k] for k in keys))


@dataclass(frozen=True)
class Record:
    """One line of a ``jsonl`` input: the object as read, and its line."""

    data: dict[str, Any]
    line: int

    @property
    def text(self) -> str | None:
        return self.data.get("text")

    @property
    def tokens(self) -> list[str] | None:
        return self.data.get("tokens")


@dataclass
class Chunk:
    """Consecutive items of one input file, from ``start`` to ``end``: :class:`Sentence` s
    (``conll``, ``tokens``), paragraphs as strings (``text``) or :class:`Record` s (``jsonl``),
    with the :class:`Verbatim` lines between them. ``tokens`` counts their tokens (for text:
    whitespace-separated words)."""

    format: str
    items: list[Any]
    start: Position
    end: Position
    tokens: int

    @property
    def inputs(self) -> list[Any]:
        """The items a tagger sees (all but the :class:`Verbatim` lines)."""
        return [item for item in self.items if not isinstance(item, Verbatim)]


def check_format(format: str, auto: bool = True) -> str:
    """``format`` if it is a known input format (or ``auto``); a SeqtagError otherwise."""
    if format not in FORMATS and not (auto and format == "auto"):
        raise SeqtagError(f"unknown input format {shorten(repr(format))}; choose {'auto, ' if auto else ''}{', '.join(FORMATS)}")
    return format


def resolve_format(path: str | Path, format: str = "auto") -> str:
    """``format``, or for ``auto`` the one the start of ``path`` looks like (:func:`detect_format`)."""
    if check_format(format) == "auto":
        return detect_format(head_lines(path))
    return format


_TAG = re.compile(r"^(?:O|[BIESLU]-\S+|[A-Z][A-Z0-9$_|+*]*(?:[-.:][A-Za-z0-9$_|+*]+)*|[-.,:;`'\"()$#]+)$")
_TOKEN_ID = re.compile(r"^\d+(?:[-.]\d+)?$")
_ATTACHED = re.compile(r"[^\W\d_]{2}[,;:!?.]['\"’”)\]]*(?:\s|$)|[^\W\d_]['’][^\W\d_]|(?:^|\s)[\"“(][^\W\d_]")


def detect_format(lines: list[str]) -> str:
    """The input format of a file that starts with ``lines``.

    * ``jsonl``: the first non-blank line is a JSON object with ``"text"`` or ``"tokens"``;
    * ``conll``: every non-blank line (``-DOCSTART-`` aside) has the same number of columns,
      and either there is one column and blank lines between sentences, or every column but
      the first (the last one, for more than 6 columns) looks like tags (``O``, ``B-PER``,
      ``NNP``, ``,``: never ordinary lower-case words), there are at least two such lines, and
      files of more than 6 columns number their tokens in the first (CoNLL-U, CoNLL-X);
    * ``text``: at least a fifth of the lines have punctuation attached to words
      (``Berlin,``, ``We're``, ``(the``), which pre-tokenised lines do not;
    * ``tokens`` otherwise.
    """
    content = [line.strip() for line in lines if line.strip()]
    if not content:
        return "tokens"
    if content[0].startswith("{"):
        try:
            first = json.loads(content[0])
        except (ValueError, RecursionError):
            first = None
        if isinstance(first, dict) and ("text" in first or "tokens" in first):
            return "jsonl"
    rows = [line.split("\t") if "\t" in line else line.split() for line in content if not line.startswith(DOCSTART)]
    if rows:
        widths = {len(row) for row in rows}
        has_blank = any(not line.strip() for line in lines[1:])
        if len(widths) == 1 and next(iter(widths)) <= 10:
            width = next(iter(widths))
            tag_columns = range(1, width) if width <= 6 else [width - 1]  # wide files (CoNLL-U...) have lemma columns
            tagged = width > 1 and len(rows) > 1 and all(_TAG.match(row[c].strip()) for row in rows for c in tag_columns)
            if width > 6:  # a wide file numbers its tokens (CoNLL-U, CoNLL-X); a sentence per line does not
                tagged = tagged and all(_TOKEN_ID.match(row[0]) for row in rows)
            if (width == 1 and has_blank) or tagged:
                return "conll"
    elif any(line.startswith(DOCSTART) for line in content):
        return "conll"
    attached = sum(1 for line in content if _ATTACHED.search(line))
    return "text" if attached * 5 >= len(content) else "tokens"


def _items(
    path: str | Path, format: str, reader: LineReader, word_column: int, stats: ReadStats, documents: int
) -> Iterator[tuple[Any, bool]]:
    """The items of ``format`` from ``reader``, each with whether every line read so far is
    accounted for by the items yielded up to it (a chunk may end only there)."""
    if format == "conll":
        for item in parse_conll(reader, path, word_column, None, stats, verbatim=True, document=documents):
            yield item, isinstance(item, Verbatim)
    elif format == "tokens":
        for item in parse_token_lines(reader, path):
            yield item, True
    elif format == "text":
        lines: list[str] = []
        size = 0
        for _, line in reader:
            if line.strip():
                lines.append(line)
                size += len(line) + 1
                if size >= PARAGRAPH_CHARS:
                    yield "\n".join(lines), True
                    lines, size = [], 0
                continue
            if lines:
                yield "\n".join(lines), False
                lines, size = [], 0
            yield Verbatim(""), True
        if lines:
            yield "\n".join(lines), True
    else:
        for number, line in reader:
            yield (_record(line, path, number) if line.strip() else Verbatim("")), True


def _record(line: str, path: str | Path, number: int) -> Record:
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as error:
        raise DataError(f"not a JSON object: {shorten(str(error))}", path, number) from None
    if not isinstance(data, dict):
        raise DataError(f'a line is a JSON object with "text" or "tokens", not {type(data).__name__}', path, number)
    text, tokens = data.get("text"), data.get("tokens")
    if (text is None) == (tokens is None):
        raise DataError('a line is a JSON object with either "text" (a string) or "tokens" (a list of strings)', path, number)
    if text is not None and not isinstance(text, str):
        raise DataError(f'"text" must be a string, not {type(text).__name__}', path, number)
    if tokens is not None and (not isinstance(tokens, list) or not all(isinstance(t, str) and t.strip() and not any(c.isspace() for c in t) for t in tokens)):
        raise DataError('"tokens" must be a list of non-empty strings without spaces', path, number)
    if "sentences" in data:
        raise DataError('the key "sentences" is where the output goes; rename it in the input', path, number)
    return Record(data, number)


def _size(format: str, item: Any) -> int:
    if isinstance(item, Verbatim):
        return 0
    if format == "text":
        return len(item.split())
    if format == "jsonl":
        return len(item.tokens) if item.tokens is not None else len(item.text.split())
    return len(item)


def read_chunks(
    path: str | Path,
    format: str,
    word_column: int = 0,
    chunk_tokens: int = CHUNK_TOKENS,
    start: Position = Position(),
    documents: bool = False,
) -> Iterator[Chunk]:
    """The chunks of ``path`` (format ``conll``, ``tokens``, ``text`` or ``jsonl``) from ``start`` on, lazily.

    With ``documents`` (a model that reads document context), a CoNLL chunk ends only where a
    document does (after a ``-DOCSTART-`` line), unless it grows to :data:`DOCUMENT_CHUNKS` times
    ``chunk_tokens``. Bad input raises a :class:`~seqtag.errors.DataError` naming the file and
    line when the chunk holding it is read.
    """
    check_format(format, auto=False)
    reader = LineReader(path, start.offset, start.line)
    stats = ReadStats()
    chunk: list[Any] = []
    tokens = 0
    begin = start
    for item, settled in _items(path, format, reader, word_column, stats, start.documents):
        chunk.append(item)
        tokens += _size(format, item)
        if documents and format == "conll" and tokens < DOCUMENT_CHUNKS * chunk_tokens:
            settled = settled and isinstance(item, Verbatim) and item.text.startswith(DOCSTART)
        if tokens >= chunk_tokens and settled and reader.at_boundary:
            end = Position(reader.offset, reader.number, begin.items + len(chunk), start.documents + stats.docstart_lines)
            yield Chunk(format, chunk, begin, end, tokens)
            chunk, tokens, begin = [], 0, end
    if chunk:
        end = Position(reader.offset, reader.number, begin.items + len(chunk), start.documents + stats.docstart_lines)
        yield Chunk(format, chunk, begin, end, tokens)


def format_chunk(chunk: Chunk, result: ChunkResult) -> str:
    """The output text of a chunk given the tagger's ``result`` for its inputs (see the module docstring)."""
    results = iter(result)
    parts = []
    for item in chunk.items:
        if isinstance(item, Verbatim):
            parts.append(item.text + "\n")
        elif chunk.format == "conll":
            parts.append(conll_block(item, next(results))[:-1])  # the blank line after it is a Verbatim
        elif chunk.format == "tokens":
            parts.append(token_line(item.tokens, next(results)))
        elif chunk.format == "text":
            parts.extend(token_line(tokens, tags) for tokens, tags in next(results))
        else:
            parts.append(json.dumps({**item.data, "sentences": next(results)}, ensure_ascii=False) + "\n")
    if next(results, None) is not None:
        raise ValueError("more results than items in the chunk")
    return "".join(parts)


def count_sentences(chunk: Chunk, result: ChunkResult) -> int:
    """Sentences the tagger saw in a chunk (for ``text`` and ``jsonl``, those its tokenizer found)."""
    if chunk.format in ("text", "jsonl"):
        return sum(len(sentences) for sentences in result)
    return len(result)


def count_tokens(chunk: Chunk, result: ChunkResult) -> int:
    """Tokens the tagger tagged in a chunk (for ``text`` and ``jsonl``, those its tokenizer made)."""
    if chunk.format == "text":
        return sum(len(tokens) for sentences in result for tokens, _ in sentences)  # type: ignore[misc]
    if chunk.format == "jsonl":
        return sum(len(sentence["tokens"]) for sentences in result for sentence in sentences)  # type: ignore[index]
    return chunk.tokens


__all__ = ["CHUNK_TOKENS", "FORMATS", "Chunk", "ChunkResult", "Position", "Record", "Sentence", "Verbatim",
           "check_format", "count_sentences", "count_tokens", "detect_format", "format_chunk", "read_chunks",
           "resolve_format"]
