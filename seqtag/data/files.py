"""Reading text files: the one place that opens an input file and decodes it.

Every reader (CoNLL columns, token lines, 3-line target files, bracketed trees)
goes through :func:`read_lines`, so they all accept the same things (UTF-8, a
byte-order mark, LF, CRLF and CR line ends) and fail the same way: one :class:`DataError`
naming the file, and the line for bytes that are not UTF-8.

``-`` names standard input. It, and any other input that cannot be read twice (a named pipe,
``/dev/stdin``), is opened once: :func:`head_lines` keeps the lines it samples (to detect a
format) and hands them out again first, so nothing is lost.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, BinaryIO

from seqtag.errors import DataError

#: The input name that means standard input.
STDIN = "-"


def display_name(path: str | Path) -> str:
    """How messages name an input: ``stdin`` for ``-``, else the path."""
    return "stdin" if str(path) == STDIN else str(path)


class _Pipe:
    """An input that can be read only once, with the bytes already sampled by :func:`head_lines`
    handed out again before the rest."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.head = b""
        self.started = False

    def sample(self, lines: int, limit: int) -> bytes:
        """At least ``lines`` lines (or ``limit`` bytes, or all) from the start, kept for reading later."""
        if self.started:
            raise ValueError("the input is already being read")
        read1 = getattr(self.raw, "read1", self.raw.read)
        while self.head.count(b"\n") < lines and len(self.head) < limit:
            more = read1(min(65536, limit - len(self.head)))
            if not more:
                break
            self.head += more
        return self.head

    def __iter__(self) -> Iterator[bytes]:
        self.started = True
        pending = b""
        for line in io.BytesIO(self.head):
            if line.endswith(b"\n"):
                yield line
            else:
                pending = line  # the sample ended inside this line: the rest comes from raw
        self.head = b""
        for line in self.raw:
            if pending:
                line, pending = pending + line, b""
            yield line
        if pending:
            yield pending

    def seek(self, offset: int) -> None:
        if offset:
            raise DataError("cannot continue a partly read stream; it can only be read from the start", "stdin")

    def __enter__(self) -> _Pipe:
        return self

    def __exit__(self, *exc: object) -> None:
        pass  # the stream stays open: stdin belongs to the process


_PIPES: dict[str, _Pipe] = {}


def is_stream(path: str | Path) -> bool:
    """Whether ``path`` is stdin (``-``) or another input that can be read only once (a pipe)."""
    if str(path) == STDIN:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def open_input(path: str | Path) -> Any:
    """Open ``path`` for reading bytes (a binary file, or for stdin and pipes a once-only stream
    that supports iteration over lines, ``seek(0)`` and ``with``); a missing file, a folder or an
    unreadable file is a DataError."""
    name = str(path)
    if name in _PIPES:
        return _PIPES[name]
    try:
        if name == STDIN:
            _PIPES[name] = _Pipe(sys.stdin.buffer)
            return _PIPES[name]
        if is_stream(path):
            _PIPES[name] = _Pipe(open(path, "rb"))
            return _PIPES[name]
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    except IsADirectoryError:
        raise DataError("is a folder, not a file", path) from None
    except OSError as error:
        raise DataError(f"cannot read: {error.strerror}", path) from None


def head_lines(path: str | Path, lines: int = 200, limit: int = 1 << 20) -> list[str]:
    """The first ``lines`` lines of ``path`` (at most ``limit`` bytes; a last partial line dropped
    when the limit cut it), decoded leniently, without line ends: a sample to guess its format.
    Reading a stream this way loses nothing (see :func:`open_input`)."""
    handle = open_input(path)
    if isinstance(handle, _Pipe):
        data = handle.sample(lines, limit)
    else:
        with handle:
            data = handle.read(limit)
    if len(data) >= limit and b"\n" in data:
        data = data[: data.rindex(b"\n")]
    text = data.decode("utf-8", "replace").lstrip("\ufeff")
    return list(islice(text.splitlines(), lines))


def decode_line(raw: bytes, path: str | Path, number: int) -> str:
    """Line ``number`` (1-based) of ``path`` as text; the first line may start with a byte-order mark."""
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"not valid UTF-8 (byte {error.start}); re-encode the file as UTF-8", path, number) from None


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Stream ``(line number, text)`` pairs of a UTF-8 file, without the line ends (``\\n``,
    ``\\r\\n`` or a lone ``\\r``, as ``bytes.splitlines`` splits)."""
    yield from LineReader(path)


class LineReader:
    """The lines of a UTF-8 file as :func:`read_lines` gives them, from a byte ``offset`` on, keeping
    track of where they end, so that a long job can record how far it got and later continue there.

    ``offset`` is the byte position after the last input line handed out in full, ``number``
    the number of the last line handed out (the first line is 1). A line holding lone ``\\r``
    characters comes out in several pieces; ``at_boundary`` is False while a piece other than
    the last of its line was the last one handed out (``offset`` is then the start of that
    line), so a caller records positions only where it is True.
    """

    def __init__(self, path: str | Path, offset: int = 0, number: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.number = number
        self.at_boundary = True

    def __iter__(self) -> Iterator[tuple[int, str]]:
        with open_input(self.path) as handle:
            if self.offset:
                handle.seek(self.offset)
            for raw in handle:
                pieces = raw.splitlines() or [b""]
                last = len(pieces) - 1
                for index, piece in enumerate(pieces):
                    self.number += 1
                    if index == last:
                        self.offset += len(raw)
                    self.at_boundary = index == last
                    yield self.number, decode_line(piece, self.path, self.number)


def split_names(value: str | list[str] | None) -> list[str]:
    """A recipe's ``data.train``/``dev``/``test`` entry as a list of file names."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
