"""Errors raised by seqtag.

Every error a user can cause (bad data, bad recipe, bad model file) is a
:class:`SeqtagError` subclass whose message says what is wrong and where, so
that nothing surfaces as an ``IndexError`` from deep inside torch.
"""

from __future__ import annotations

from pathlib import Path


class SeqtagError(Exception):
    """Base class of all errors that seqtag raises on purpose."""


class DataError(SeqtagError):
    """Malformed input data; names the file and line when there is one."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None) -> None:
        self.path = None if path is None else "stdin" if str(path) == "-" else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)
        self.message = message


class SchemeError(SeqtagError, ValueError):
    """A tag that does not belong to its tag scheme, or an impossible scheme conversion."""


class RecipeError(SeqtagError):
    """An invalid recipe: unknown keys, wrong types, missing files."""


class ArchiveError(SeqtagError):
    """A model file that cannot be loaded: wrong format, corrupted, too new."""


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was (a message never holds an
    unbounded user value)."""
    return text if len(text) <= limit else f"{text[: limit - 20]}...{text[-12:]} ({len(text)} characters)"


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut as :func:`shorten` does (the length given is the string's, for strings)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = len(value) if isinstance(value, str) else len(text)
    return f"{text[: limit - 20]}...{text[-12:]} ({size} characters)"


class TrainingInterrupted(SeqtagError):
    """Training was stopped with Ctrl-C after saving a checkpoint."""
