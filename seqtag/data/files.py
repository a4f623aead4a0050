"""Reading text files: the one place that opens an input file and decodes it.

Every reader (CoNLL columns, token lines, 3-line target files, bracketed trees)
goes through :func:`read_lines`, so they all accept the same things (UTF-8, a
byte-order mark, CRLF line ends) and fail the same way: one :class:`DataError`
naming the file, and the line for bytes that are not UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from seqtag.errors import DataError


def open_input(path: str | Path) -> BinaryIO:
    """Open ``path`` for reading bytes; a missing file, a folder or an unreadable file is a DataError."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError("file not found", path) from None
    except IsADirectoryError:
        raise DataError("is a folder, not a file", path) from None
    except OSError as error:
        raise DataError(f"cannot read: {error.strerror}", path) from None


def decode_line(raw: bytes, path: str | Path, number: int) -> str:
    """Line ``number`` (1-based) of ``path`` as text; the first line may start with a byte-order mark."""
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"not valid UTF-8 (byte {error.start}); re-encode the file as UTF-8", path, number) from None


def read_lines(path: str | Path, split_cr: bool = False) -> Iterator[tuple[int, str]]:
    """Stream ``(line number, text)`` pairs of a UTF-8 file, without the line ends (``\\n``, ``\\r\\n``).

    With ``split_cr`` a lone ``\\r`` also ends a line (as ``bytes.splitlines`` does).
    """
    number = 0
    with open_input(path) as handle:
        for raw in handle:
            for piece in raw.splitlines() if split_cr else (raw,):
                number += 1
                yield number, decode_line(piece, path, number).rstrip("\r\n")


class LineReader:
    """The lines of a UTF-8 file as :func:`read_lines` gives them, from a byte ``offset`` on, keeping
    track of where they end, so that a long job can record how far it got and later continue there.

    ``offset`` is the byte position after the last input line handed out in full, ``number``
    the number of the last line handed out (the first line is 1). With ``split_cr`` a line
    holding lone ``\\r`` characters comes out in several pieces; ``at_boundary`` is False while
    a piece other than the last of its line was the last one handed out (``offset`` is then
    the start of that line), so a caller records positions only where it is True.
    """

    def __init__(self, path: str | Path, offset: int = 0, number: int = 0, split_cr: bool = False) -> None:
        self.path = path
        self.offset = offset
        self.number = number
        self.split_cr = split_cr
        self.at_boundary = True

    def __iter__(self) -> Iterator[tuple[int, str]]:
        with open_input(self.path) as handle:
            handle.seek(self.offset)
            for raw in handle:
                pieces = raw.splitlines() if self.split_cr else (raw,)
                last = len(pieces) - 1
                for index, piece in enumerate(pieces):
                    self.number += 1
                    if index == last:
                        self.offset += len(raw)
                    self.at_boundary = index == last
                    yield self.number, decode_line(piece, self.path, self.number).rstrip("\r\n")


def split_names(value: str | list[str] | None) -> list[str]:
    """A recipe's ``data.train``/``dev``/``test`` entry as a list of file names."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
