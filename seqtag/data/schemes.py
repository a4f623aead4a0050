"""Tag schemes (IOB1, IOB2, IOBES, BILOU), span extraction and conversion.

Every scheme is read through one lenient span parser (:func:`spans_from_tags`)
and written by :func:`tags_from_spans`, so converting between any two schemes
is ``tags_from_spans(spans_from_tags(tags, source), len(tags), target)``.
The ``none`` scheme is for tag sets without spans (POS tags): tags pass
through unchanged.

A tag is ``O`` or ``PREFIX-TYPE`` where the type may itself contain dashes
(``B-creative-work``). The parser follows conlleval's reading of invalid
sequences: an inside tag that does not continue an open span of its type
starts a new span, so no annotated token is ever dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from seqtag.errors import DataError, SchemeError

if TYPE_CHECKING:
    import torch

SCHEMES = ("iob1", "iob2", "iobes", "bilou", "none")
OUTSIDE = "O"

# Prefix letter -> role. B: begins, I: inside, E: ends, S: single-token span.
_ROLES = {
    "iob1": {"B": "B", "I": "I"},
    "iob2": {"B": "B", "I": "I"},
    "iobes": {"B": "B", "I": "I", "E": "E", "S": "S"},
    "bilou": {"B": "B", "I": "I", "L": "E", "U": "S"},
}
_PREFIX = {  # role -> prefix letter when writing
    "iob1": {"B": "B", "I": "I"},
    "iob2": {"B": "B", "I": "I"},
    "iobes": {"B": "B", "I": "I", "E": "E", "S": "S"},
    "bilou": {"B": "B", "I": "I", "E": "L", "S": "U"},
}


@dataclass(frozen=True, order=True)
class Span:
    """A labelled span of tokens ``[start, end)``."""

    start: int
    end: int
    label: str


def normalize_scheme(name: str) -> str:
    """Canonical scheme name: ``BIOES`` -> ``iobes``, ``IOB`` / ``BIO`` -> ``iob2``."""
    key = name.strip().lower()
    aliases = {"bioes": "iobes", "bio": "iob2", "iob": "iob2", "bilou": "bilou", "biolu": "bilou", "bmes": "iobes"}
    key = aliases.get(key, key)
    if key not in SCHEMES:
        raise SchemeError(f"unknown tag scheme {name!r}; choose one of {', '.join(SCHEMES)}")
    return key


def _known(scheme: str) -> str:
    return scheme if scheme in SCHEMES else normalize_scheme(scheme)


def split_tag(tag: str, scheme: str) -> tuple[str, str]:
    """Split ``tag`` into ``(role, type)``; ``O`` gives ``("O", "")``.

    Raises :class:`~seqtag.errors.SchemeError` (a ValueError) when the tag does not belong to ``scheme``.
    """
    if tag == OUTSIDE:
        return OUTSIDE, ""
    scheme = _known(scheme)
    if scheme == "none":
        raise SchemeError(f"tag {tag!r}: the 'none' scheme has no span roles")
    prefix, sep, label = tag.partition("-")
    role = _ROLES[scheme].get(prefix) if sep and label else None
    if role is None:
        raise SchemeError(f"tag {tag!r} is not valid in the {scheme.upper()} scheme")
    return role, label


def spans_from_tags(tags: Sequence[str], scheme: str) -> list[Span]:
    """Extract the labelled spans that ``tags`` encode in ``scheme``."""
    scheme = _known(scheme)
    if scheme == "none":
        return []
    spans: list[Span] = []
    start, label = -1, ""
    for i, tag in enumerate(tags):
        role, typ = split_tag(tag, scheme)
        if role == OUTSIDE:
            if start >= 0:
                spans.append(Span(start, i, label))
            start = -1
            continue
        if role in ("B", "S") or start < 0 or typ != label:
            if start >= 0:
                spans.append(Span(start, i, label))
            start, label = i, typ
        if role in ("E", "S"):
            spans.append(Span(start, i + 1, label))
            start = -1
    if start >= 0:
        spans.append(Span(start, len(tags), label))
    return spans


def tags_from_spans(spans: Iterable[Span], length: int, scheme: str) -> list[str]:
    """Encode non-overlapping ``spans`` over ``length`` tokens in ``scheme``."""
    scheme = _known(scheme)
    if scheme == "none":
        raise SchemeError("the 'none' scheme has no spans to encode")
    tags = [OUTSIDE] * length
    prefix = _PREFIX[scheme]
    previous_end, previous_label = -1, None
    for span in sorted(spans):
        if not 0 <= span.start < span.end <= length or span.start < previous_end:
            raise SchemeError(f"span {span} is empty, overlaps the previous one or lies outside {length} tokens")
        size = span.end - span.start
        if scheme == "iob1":
            adjacent = previous_end == span.start and previous_label == span.label
            roles = ["B" if adjacent else "I"] + ["I"] * (size - 1)
        elif scheme == "iob2":
            roles = ["B"] + ["I"] * (size - 1)
        elif size == 1:
            roles = ["S"]
        else:
            roles = ["B"] + ["I"] * (size - 2) + ["E"]
        for offset, role in enumerate(roles):
            tags[span.start + offset] = f"{prefix[role]}-{span.label}"
        previous_end, previous_label = span.end, span.label
    return tags


def convert_tags(tags: Sequence[str], source: str, target: str) -> list[str]:
    """Re-encode ``tags`` from scheme ``source`` into scheme ``target``."""
    source, target = _known(source), _known(target)
    if source == target or "none" in (source, target):
        if source != target:
            raise SchemeError(f"cannot convert between {source!r} and {target!r}")
        return list(tags)
    return tags_from_spans(spans_from_tags(tags, source), len(tags), target)


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of a corpus from its tags.

    ``E-``/``S-`` means IOBES, ``L-``/``U-`` BILOU, no prefixes at all ``none``
    (e.g. POS tags). Between IOB1 and IOB2 the deciding fact is how spans
    start: IOB1 starts most spans with ``I-``, IOB2 always with ``B-``.
    """
    prefixes: set[str] = set()
    starts_with_i = starts_with_b = 0
    for tags in tag_sequences:
        previous = ""
        for tag in tags:
            prefix, sep, label = tag.partition("-")
            if tag == OUTSIDE or not (sep and label) or len(prefix) != 1:
                previous = ""
                if tag != OUTSIDE:
                    prefixes.add("?")
                continue
            prefixes.add(prefix)
            if prefix == "I" and previous != label:
                starts_with_i += 1
            elif prefix == "B":
                starts_with_b += 1
            previous = label
    if not prefixes:
        return "iob2"  # only O tags: any span scheme reads them
    if "?" in prefixes or not prefixes <= set("BIESLU"):
        return "none"
    if prefixes & set("ES"):
        return "iobes"
    if prefixes & set("LU"):
        return "bilou"
    return "iob1" if starts_with_i > starts_with_b else "iob2"


def check_tags(tags: Sequence[str], scheme: str, path: str | None = None, line: int | None = None) -> None:
    """Raise :class:`DataError` naming ``path``/``line`` if a tag is not in ``scheme``."""
    if scheme == "none":
        return
    for offset, tag in enumerate(tags):
        try:
            split_tag(tag, scheme)
        except ValueError as error:
            raise DataError(str(error), path, None if line is None else line + offset) from None


def allowed_transitions(scheme: str, labels: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which tag transitions ``scheme`` permits.

    Returns boolean tensors ``(start, transitions, end)`` of shapes
    ``(num_tags,)``, ``(num_tags, num_tags)`` and ``(num_tags,)``:
    ``transitions[i, j]`` says whether tag ``j`` may follow tag ``i``,
    ``start[j]`` whether a sentence may begin with ``j`` and ``end[i]``
    whether it may end with ``i``.
    """
    import torch  # here, not at the top: the rest of this module serves the PyTorch-free prediction path

    n = len(labels)
    start = torch.ones(n, dtype=torch.bool)
    transitions = torch.ones(n, n, dtype=torch.bool)
    end = torch.ones(n, dtype=torch.bool)
    if scheme == "none":
        return start, transitions, end
    parts = [split_tag(label, scheme) for label in labels]
    for j, (role_j, type_j) in enumerate(parts):
        continues = role_j in ("I", "E")
        if scheme == "iob1":
            continues = role_j == "B"  # in IOB1, B- only separates two same-type spans
        start[j] = not continues
        for i, (role_i, type_i) in enumerate(parts):
            open_span = role_i in ("B", "I") if scheme in ("iobes", "bilou") else role_i != OUTSIDE
            if continues:
                transitions[i, j] = open_span and type_i == type_j
            elif scheme in ("iobes", "bilou"):
                transitions[i, j] = not open_span  # an open span must be closed by E/L first
    if scheme in ("iobes", "bilou"):
        for i, (role_i, _) in enumerate(parts):
            end[i] = role_i not in ("B", "I")
    return start, transitions, end
