"""Ready-to-use predictors returned by :func:`seqtag.load`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqtag.archive import load_task
from seqtag.data.conll import Sentence
from seqtag.data.schemes import spans_from_tags
from seqtag.tasks.base import Task
from seqtag.tasks.tagging import TaggingTask

_TOKEN = re.compile(r"\w+(?:[-'’.]\w+)*|\S", re.UNICODE)


@dataclass
class Token:
    """A token with its character offsets ``[start, end)`` into the tagged text and its tag."""

    text: str
    start: int
    end: int
    tag: str


@dataclass
class Entity:
    """A labelled span: tokens ``[token_start, token_end)``, characters ``[start_char, end_char)``."""

    text: str
    label: str
    start_char: int
    end_char: int
    token_start: int
    token_end: int


@dataclass
class TaggedSentence:
    """The tagger's output for one sentence."""

    tokens: list[Token]
    entities: list[Entity] = field(default_factory=list)

    @property
    def tags(self) -> list[str]:
        return [token.tag for token in self.tokens]

    def __repr__(self) -> str:
        shown = " ".join(f"{t.text}/{t.tag}" for t in self.tokens)
        return f"TaggedSentence({shown})"


class SequenceTagger:
    """Tags tokenised or raw text with a trained tagging model.

    >>> tagger = seqtag.load("model.seqtag")
    >>> tagger.tag_tokens(["EU", "rejects", "German", "call"]).tags
    ['B-ORG', 'O', 'B-MISC', 'O']
    """

    def __init__(self, task: TaggingTask, metrics: dict[str, Any] | None = None) -> None:
        self.task = task
        self.metrics = metrics or {}

    @property
    def labels(self) -> list[str]:
        """Entity types (span models) or tags (POS-style models) the model predicts."""
        if self.task.is_span_task:
            return sorted({tag.partition("-")[2] for tag in self.task.tags.itos if tag != "O"})
        return list(self.task.tags.itos)

    def tag_tokens(self, tokens: Sequence[str]) -> TaggedSentence:
        """Tag one pre-tokenised sentence (offsets assume tokens joined by single spaces)."""
        return next(iter(self.tag_batch([list(tokens)])))

    def tag_batch(self, sentences: Sequence[Sequence[str]], batch_size: int = 256) -> list[TaggedSentence]:
        """Tag many pre-tokenised sentences at once (batched by length internally)."""
        results = []
        tags = self.task.predict([Sentence(tokens=list(tokens)) for tokens in sentences], batch_size)
        for tokens, sentence_tags in zip(sentences, tags, strict=True):
            offsets, position = [], 0
            for token in tokens:
                offsets.append((position, position + len(token)))
                position += len(token) + 1
            results.append(self._result(" ".join(tokens), list(tokens), offsets, sentence_tags))
        return results

    def tag(self, text: str) -> TaggedSentence:
        """Tag raw text as one sentence; offsets index ``text``."""
        matches = list(_TOKEN.finditer(text))
        tokens = [m.group() for m in matches]
        if not tokens:
            return TaggedSentence([])
        tags = self.task.predict([Sentence(tokens=tokens)])[0]
        return self._result(text, tokens, [m.span() for m in matches], tags)

    def _result(self, text: str, tokens: list[str], offsets: list[tuple[int, int]], tags: list[str]) -> TaggedSentence:
        items = [Token(tok, start, end, tag) for tok, (start, end), tag in zip(tokens, offsets, tags, strict=True)]
        entities = []
        if self.task.is_span_task:
            for span in spans_from_tags(tags, self.task.corpus_scheme):
                start, end = offsets[span.start][0], offsets[span.end - 1][1]
                entities.append(Entity(text[start:end], span.label, start, end, span.start, span.end))
        return TaggedSentence(items, entities)

    def evaluate(self, sentences: Sequence[Sentence], batch_size: int = 256) -> dict[str, Any]:
        """Metrics on labelled sentences (entity P/R/F1 or token accuracy)."""
        return self.task.evaluate(sentences, batch_size)


def load(path: str | Path) -> SequenceTagger | Any:
    """Load a model file and return a ready predictor for its task."""
    task, metrics = load_task(path)
    return predictor_for(task, metrics)


def predictor_for(task: Task, metrics: dict[str, Any] | None = None) -> Any:
    """The predictor class that fits ``task``."""
    if isinstance(task, TaggingTask):
        return SequenceTagger(task, metrics)
    raise TypeError(f"no predictor for task {task.name!r}")
