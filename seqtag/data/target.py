"""Target-dependent sentiment data: the 3-line format of Dong et al. (2014).

Each example takes three lines::

    i agree about arafat . i mean , shit , they even gave one to $T$ ha .
    jimmy carter
    -1

the tokenised sentence with every mention of the target replaced by ``$T$``,
the target itself, and its polarity (``-1`` negative, ``0`` neutral, ``1``
positive). The Twitter corpus of Dong et al. and the SemEval-2014 aspect-term
files distributed with Tang et al. (2016) use it. Blank lines between
examples are allowed; every malformed group raises a
:class:`~seqtag.errors.DataError` naming the file and line.

For prediction the polarity line may be left out (``labelled=None`` or
``False``): a line that contains ``$T$`` always starts a new example, so the
two- and three-line forms can be told apart.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from seqtag.data.files import read_lines
from seqtag.errors import DataError, shown

PLACEHOLDER = "$T$"
#: The most tokens each LSTM of TD-LSTM and TC-LSTM reads: the left one the last ``MAX_CONTEXT``
#: tokens of the sentence start through the last mention, the right one the first ``MAX_CONTEXT`` of
#: the first mention through the sentence end (see :meth:`TargetExample.left_context`); the LSTM
#: baseline reads at most ``2 * MAX_CONTEXT`` tokens. Longer sentences are read in this window
#: around the target, so a huge example costs no more than a long tweet; shorter ones are read whole.
MAX_CONTEXT = 200
#: The most tokens a target may have (the targets of the Twitter and SemEval corpora have at most
#: about ten); a longer one is a :class:`~seqtag.errors.DataError`.
MAX_TARGET_TOKENS = 100
#: Polarity values of the format, in class order, and their names.
POLARITIES = ("-1", "0", "1")
LABEL_NAMES = {"-1": "negative", "0": "neutral", "1": "positive"}
_POLARITY = re.compile(r"[+-]?[01]")


@dataclass
class TargetExample:
    """A sentence, a target inside it and (when labelled) the polarity towards it.

    ``tokens`` is the sentence with the target's tokens put back in place of
    every ``$T$``; ``mentions`` holds the ``[start, end)`` token span of each
    mention, in order (at least one). ``label`` is ``"-1"``, ``"0"``, ``"1"`` or
    None. ``line`` is the 1-based line of the sentence in ``path``.
    """

    tokens: list[str]
    target: list[str]
    mentions: list[tuple[int, int]]
    label: str | None = None
    path: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        if not self.target:
            raise ValueError("a target has at least one token")
        if not self.mentions:
            raise ValueError("a target is mentioned at least once")
        for start, end in self.mentions:
            if not 0 <= start < end <= len(self.tokens) or self.tokens[start:end] != self.target:
                raise ValueError(f"mention {start}:{end} does not hold the target {shown(' '.join(self.target))}")

    @classmethod
    def from_template(
        cls, template: Sequence[str], target: Sequence[str], label: str | None = None,
        path: str | None = None, line: int | None = None,
    ) -> TargetExample:
        """Build from template tokens where each ``$T$`` token stands for the target's tokens."""
        tokens: list[str] = []
        mentions: list[tuple[int, int]] = []
        for token in template:
            if token == PLACEHOLDER:
                mentions.append((len(tokens), len(tokens) + len(target)))
                tokens.extend(target)
            else:
                tokens.append(token)
        return cls(tokens, list(target), mentions, label, path, line)

    @property
    def left(self) -> list[str]:
        """Tokens from the sentence start through the end of the last mention (TD-LSTM's left LSTM)."""
        return self.tokens[: self.mentions[-1][1]]

    @property
    def right(self) -> list[str]:
        """Tokens from the start of the first mention to the sentence end (read backwards by the right LSTM)."""
        return self.tokens[self.mentions[0][0] :]

    def left_context(self, limit: int = MAX_CONTEXT) -> list[str]:
        """What TD/TC-LSTM's left LSTM reads: the last ``limit`` tokens of :attr:`left`."""
        end = self.mentions[-1][1]
        return self.tokens[max(0, end - limit) : end]

    def right_context(self, limit: int = MAX_CONTEXT) -> list[str]:
        """What TD/TC-LSTM's right LSTM reads (backwards): the first ``limit`` tokens of :attr:`right`."""
        start = self.mentions[0][0]
        return self.tokens[start : start + limit]

    def window(self, limit: int = 2 * MAX_CONTEXT) -> list[str]:
        """What the LSTM baseline reads: the whole sentence when it has at most ``limit`` tokens, else
        the ``limit`` tokens that start ``limit // 2`` before the first mention (earlier near the end)."""
        if len(self.tokens) <= limit:
            return self.tokens
        start = min(max(0, self.mentions[0][0] - limit // 2), len(self.tokens) - limit)
        return self.tokens[start : start + limit]

    @property
    def template(self) -> str:
        """The sentence with ``$T$`` in place of each mention, as in the file format."""
        out: list[str] = []
        position = 0
        for start, end in self.mentions:
            out.extend(self.tokens[position:start])
            out.append(PLACEHOLDER)
            position = end
        out.extend(self.tokens[position:])
        return " ".join(out)

    def __len__(self) -> int:
        return len(self.tokens)


def check_target(target: Sequence[str], path: str | None = None, line: int | None = None) -> None:
    """Raise a :class:`DataError` (naming ``path`` and ``line``) when ``target`` has more than
    :data:`MAX_TARGET_TOKENS` tokens."""
    if len(target) > MAX_TARGET_TOKENS:
        raise DataError(f"the target has {len(target)} tokens, more than the {MAX_TARGET_TOKENS} a target may have: "
                        f"{shown(' '.join(target))}", path, line)




def _lines(path: str) -> Iterator[tuple[int, str]]:
    for number, line in read_lines(path):
        yield number, line.strip()


def _check_sentence(text: str, path: str, number: int) -> list[str]:
    tokens = text.split()
    if PLACEHOLDER not in tokens:
        if PLACEHOLDER in text:
            raise DataError(f"{PLACEHOLDER} must be a token of its own (spaces around it): {shown(text)}", path, number)
        if _POLARITY.fullmatch(text):
            raise DataError(f"found the polarity {shown(text)} where a sentence with {PLACEHOLDER} should start an example: "
                            "is a sentence or target line missing above?", path, number)
        hint = ": is a line missing or extra in the example above?" if number > 1 else ""
        raise DataError(f"expected a sentence with the target replaced by {PLACEHOLDER}, found {shown(text)}{hint}", path, number)
    return tokens


def iter_target_file(path: str | Path, labelled: bool | None = True) -> Iterator[TargetExample]:
    """Stream the examples of a 3-line target sentiment file; see :func:`read_target_file`."""
    path = str(path)
    lines = _lines(path)
    pending: tuple[int, str] | None = None

    def next_content() -> tuple[int, str] | None:
        nonlocal pending
        if pending is not None:
            item, pending = pending, None
            return item
        for number, text in lines:
            if text:
                return number, text
        return None

    while True:
        item = next_content()
        if item is None:
            return
        start, text = item
        template = _check_sentence(text, path, start)
        # the target: the very next line, blank not allowed
        number, target_text = next(lines, (start + 1, None))  # type: ignore[arg-type]
        if target_text is None:
            raise DataError(f"the file ends after the sentence of line {start}: the target line is missing", path, start)
        if not target_text:
            raise DataError(f"the target of the sentence on line {start} is empty (blank line)", path, number)
        if PLACEHOLDER in target_text:
            raise DataError(f"expected the target of the sentence on line {start}, found another sentence {shown(target_text)}",
                            path, number)
        target = target_text.split()
        check_target(target, path, number)
        label: str | None = None
        if labelled is not False:
            following = next(lines, None)
            if following is not None and following[1] and _POLARITY.fullmatch(following[1]):
                label = str(int(following[1]))
            elif labelled:
                if following is None or not following[1]:
                    where = following[0] if following is not None else number
                    raise DataError(f"the polarity (-1, 0 or 1) of the example starting on line {start} is missing",
                                    path, where)
                raise DataError(f"expected the polarity (-1, 0 or 1) of the example starting on line {start}, "
                                f"found {shown(following[1])}", path, following[0])
            elif following is not None and following[1]:
                pending = following  # unlabelled input: this line starts the next example
        yield TargetExample.from_template(template, target, label, path, start)


def read_target_file(path: str | Path, labelled: bool | None = True) -> list[TargetExample]:
    """Read a target sentiment file.

    Args:
        path: the file (UTF-8; a BOM and CRLF line ends are accepted).
        labelled: True: every example must have its polarity line; None: polarity
            lines are optional (prediction input); False: the file has two lines
            per example (sentence, target) and no polarities.

    Raises:
        DataError: with the file and line of the first malformed example.
    """
    return list(iter_target_file(path, labelled))


def write_target_file(examples: Sequence[TargetExample], path: str | Path, labels: Sequence[str] | None = None) -> None:
    """Write examples in the 3-line format; ``labels`` (one per example) replace their own."""
    with open(path, "w", encoding="utf-8") as out:
        for index, example in enumerate(examples):
            label = labels[index] if labels is not None else example.label
            out.write(f"{example.template}\n{' '.join(example.target)}\n")
            if label is not None:
                out.write(f"{label}\n")


def holdout_split(
    examples: Sequence[TargetExample], fraction: float, seed: int
) -> tuple[list[TargetExample], list[TargetExample]]:
    """Split ``examples`` into (train, held-out dev), stratified by label and reproducible from ``seed``.

    Each label keeps ``round(fraction * count)`` of its examples for dev (at least one
    when it has two or more); both parts keep the file order.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    rng = random.Random(seed)
    by_label: dict[str | None, list[int]] = {}
    for index, example in enumerate(examples):
        by_label.setdefault(example.label, []).append(index)
    held: set[int] = set()
    for label in sorted(by_label, key=str):
        indices = by_label[label]
        count = round(fraction * len(indices))
        if count == 0 and len(indices) >= 2:
            count = 1
        held.update(rng.sample(indices, count))
    train = [e for i, e in enumerate(examples) if i not in held]
    dev = [e for i, e in enumerate(examples) if i in held]
    return train, dev


def label_counts(examples: Sequence[TargetExample]) -> dict[str, int]:
    """Number of examples of each polarity, keyed by ``-1``/``0``/``1`` (for the training log)."""
    counts = dict.fromkeys(POLARITIES, 0)
    for example in examples:
        if example.label is not None:
            counts[example.label] += 1
    return counts
