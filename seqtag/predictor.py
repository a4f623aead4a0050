"""Ready-to-use predictors returned by :func:`seqtag.load`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from seqtag.archive import load_task
from seqtag.data.conll import Sentence
from seqtag.data.schemes import spans_from_tags
from seqtag.data.text import Tokenizer
from seqtag.errors import SeqtagError
from seqtag.tasks.base import Task
from seqtag.tasks.tagging import Prediction, TaggingTask


@dataclass
class Token:
    """A token: its text, character offsets ``[start, end)`` into the input, its tag and the
    tag's marginal probability under the CRF (softmax probability without one)."""

    text: str
    start: int
    end: int
    tag: str
    confidence: float = 1.0


@dataclass
class Entity:
    """A labelled span: characters ``[start_char, end_char)`` of the input and tokens
    ``[token_start, token_end)`` of its sentence. ``confidence`` is the lowest marginal
    probability among its tokens' tags."""

    text: str
    label: str
    start_char: int
    end_char: int
    confidence: float = 1.0
    token_start: int = 0
    token_end: int = 0


@dataclass
class TagSequence:
    """One of the n best tag sequences of a sentence, with its probability under the CRF."""

    tags: list[str]
    probability: float


@dataclass
class TaggedSentence:
    """The tagger's output for one sentence."""

    tokens: list[Token]
    entities: list[Entity] = field(default_factory=list)
    n_best: list[TagSequence] = field(default_factory=list)

    @property
    def tags(self) -> list[str]:
        return [token.tag for token in self.tokens]

    def __repr__(self) -> str:
        shown = " ".join(f"{t.text}/{t.tag}" for t in self.tokens)
        return f"TaggedSentence({shown})"


class SequenceTagger:
    """Tags raw or tokenised text with a trained tagging model.

    >>> tagger = seqtag.load("model.seqtag")
    >>> [e.text for s in tagger.tag("George Washington went to Washington.") for e in s.entities]
    ['George Washington', 'Washington']
    """

    def __init__(self, task: TaggingTask, metrics: dict[str, Any] | None = None) -> None:
        self.task = task
        self.metrics = metrics or {}
        self.tokenizer = Tokenizer(task.tokenizer_config)

    @property
    def labels(self) -> list[str]:
        """Entity types (span models) or tags (POS-style models) the model predicts."""
        if self.task.is_span_task:
            return sorted({tag.partition("-")[2] for tag in self.task.tags.itos if tag != "O"})
        return list(self.task.tags.itos)

    def tag(self, text: str, n_best: int = 0) -> list[TaggedSentence]:
        """Split ``text`` into sentences and tokens and tag them; offsets index ``text``."""
        return next(self.pipe([text], n_best=n_best))

    def tag_tokens(self, tokens: Sequence[str], n_best: int = 0) -> TaggedSentence:
        """Tag one pre-tokenised sentence (offsets assume the tokens joined by single spaces)."""
        return self.tag_batch([tokens], n_best=n_best)[0]

    def tag_batch(self, sentences: Sequence[Sequence[str]], batch_size: int = 256, n_best: int = 0) -> list[TaggedSentence]:
        """Tag many pre-tokenised sentences at once (batched by length internally)."""
        spans = []
        for tokens in sentences:
            offsets, position = [], 0
            for token in tokens:
                offsets.append((position, position + len(token)))
                position += len(token) + 1
            spans.append(offsets)
        predictions = self.task.predict_detailed([Sentence(tokens=list(t)) for t in sentences], batch_size, n_best)
        return [
            self._result(" ".join(tokens), list(tokens), offsets, prediction)
            for tokens, offsets, prediction in zip(sentences, spans, predictions, strict=True)
        ]

    def pipe(self, texts: Iterable[str], batch_size: int = 64, n_best: int = 0, buffer: int = 8) -> Iterator[list[TaggedSentence]]:
        """Tag a stream of texts lazily, yielding one list of sentences per text, in input order.

        Up to ``buffer * batch_size`` texts are read ahead; their sentences are
        sorted by length into batches of ``batch_size`` sentences.
        """
        iterator = iter(texts)
        while True:
            chunk = list(islice(iterator, max(1, buffer * batch_size)))
            if not chunk:
                return
            tokenized = [self.tokenizer.sentences(text) for text in chunk]
            flat = [sentence for sentences in tokenized for sentence in sentences]
            predictions = iter(self.task.predict_detailed([Sentence(tokens=[t.text for t in s]) for s in flat], batch_size, n_best))
            for text, sentences in zip(chunk, tokenized, strict=True):
                yield [
                    self._result(text, [t.text for t in s], [(t.start, t.end) for t in s], next(predictions))
                    for s in sentences
                ]

    def _result(self, text: str, tokens: list[str], offsets: list[tuple[int, int]], prediction: Prediction) -> TaggedSentence:
        items = [
            Token(token, start, end, tag, confidence)
            for token, (start, end), tag, confidence in zip(tokens, offsets, prediction.tags, prediction.confidences, strict=True)
        ]
        entities = []
        if self.task.is_span_task:
            for span in spans_from_tags(prediction.tags, self.task.corpus_scheme):
                start, end = offsets[span.start][0], offsets[span.end - 1][1]
                confidence = min(prediction.confidences[span.start : span.end])
                entities.append(Entity(text[start:end], span.label, start, end, confidence, span.start, span.end))
        return TaggedSentence(items, entities, [TagSequence(tags, p) for tags, p in prediction.n_best])

    def evaluate(self, sentences: Sequence[Sentence], batch_size: int = 256) -> dict[str, Any]:
        """Metrics on labelled sentences (entity P/R/F1 or token accuracy)."""
        return self.task.evaluate(sentences, batch_size)


def load(path: str | Path, runtime: str = "torch", onnx: str | Path | None = None) -> SequenceTagger | Any:
    """Load a model file and return a ready predictor for its task.

    Args:
        path: the model file (``model.seqtag``).
        runtime: ``"torch"``, or ``"onnx"`` to compute a tagger's network with ONNX
            Runtime from the file ``seqtag export`` writes (1.2-1.3x the tokens/s of
            PyTorch on this project's CPU, same tags).
        onnx: the ONNX file for ``runtime="onnx"`` (default: ``path`` with suffix ``.onnx``).
    """
    if runtime not in ("torch", "onnx"):
        raise SeqtagError(f"unknown runtime {runtime!r}; choose torch or onnx")
    task, metrics = load_task(path)
    if runtime == "onnx":
        if task.name != "tagging":
            raise SeqtagError(f"{path}: the onnx runtime is for tagging models, this one is {task.name}")
        task.use_onnx(Path(path).with_suffix(".onnx") if onnx is None else onnx)
    return predictor_for(task, metrics)


def predictor_for(task: Task, metrics: dict[str, Any] | None = None) -> Any:
    """The predictor that fits ``task`` (each task names its own)."""
    return task.make_predictor(metrics)
