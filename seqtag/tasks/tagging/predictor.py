"""The predictor of tagging models (what :func:`seqtag.load` returns for them) and its result types."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, TextIO

from seqtag.data.conll import Sentence, read_conll
from seqtag.data.schemes import spans_from_tags
from seqtag.data.stream import ChunkResult, count_sentences, format_chunk, read_chunks, resolve_format
from seqtag.errors import shorten
from seqtag.evaluation import confusion_table, format_report
from seqtag.io import atomic_write_text
from seqtag.tasks.predictor import TextPredictor
from seqtag.tasks.tagging.onnx import export_onnx
from seqtag.tasks.tagging.task import Prediction, TaggingTask


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

    def to_json(self) -> dict[str, Any]:
        """The sentence as a JSON object: tokens, tags, confidences, character offsets, entities
        (span models) and n-best sequences (when asked for)."""
        data: dict[str, Any] = {
            "tokens": [t.text for t in self.tokens],
            "tags": self.tags,
            "confidences": [round(t.confidence, 4) for t in self.tokens],
            "offsets": [[t.start, t.end] for t in self.tokens],
            "entities": [
                {"text": e.text, "label": e.label, "start": e.start_char, "end": e.end_char, "confidence": round(e.confidence, 4)}
                for e in self.entities
            ],
        }
        if self.n_best:
            data["n_best"] = [{"tags": s.tags, "probability": round(s.probability, 6)} for s in self.n_best]
        return data

    def __repr__(self) -> str:
        shown = " ".join(f"{t.text}/{t.tag}" for t in self.tokens)
        return f"TaggedSentence({shown})"


class TaggingPredictor(TextPredictor):
    """Tags raw or tokenised text with a trained tagging model.

    >>> tagger = seqtag.load("model.seqtag")
    >>> [e.text for s in tagger.tag("George Washington went to Washington.") for e in s.entities]
    ['George Washington', 'Washington']
    """

    task: TaggingTask

    @property
    def labels(self) -> list[str]:
        """Entity types (span models) or tags (POS-style models) the model predicts."""
        if self.task.is_span_task:
            return sorted({tag.partition("-")[2] for tag in self.task.tags.itos if tag != "O"})
        return list(self.task.tags.itos)

    def tag(self, text: str, n_best: int = 0) -> list[TaggedSentence]:
        """Split ``text`` into sentences and tokens and tag them; offsets index ``text``."""
        return next(self.pipe([text], n_best=n_best))

    def predict(self, text: str, n_best: int = 0) -> list[TaggedSentence]:  # type: ignore[override]
        """The same as :meth:`tag`."""
        return self.tag(text, n_best)

    def tag_tokens(self, tokens: Sequence[str], n_best: int = 0) -> TaggedSentence:
        """Tag one pre-tokenised sentence (offsets assume the tokens joined by single spaces)."""
        return self.tag_batch([tokens], n_best=n_best)[0]

    def tag_batch(self, sentences: Sequence[Sequence[str]], batch_size: int = 256, n_best: int = 0) -> list[TaggedSentence]:
        """Tag many pre-tokenised sentences at once (batched by length internally).

        Raises:
            TypeError: a sentence is a string, not a list of tokens (use :meth:`tag` for raw text).
        """
        if isinstance(sentences, str):
            raise TypeError("tag_batch takes a list of token lists; for raw text use tag(text)")
        for tokens in sentences:
            if isinstance(tokens, str) or not all(isinstance(token, str) for token in tokens):
                raise TypeError(f"a sentence is a list of token strings, got {shorten(repr(tokens))}; "
                                "for raw text use tag(text)")
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
        sorted by length into batches of ``batch_size`` sentences. Each text is one
        document (for models with ``model.document_context``).
        """
        iterator = iter(texts)
        while True:
            chunk = list(islice(iterator, max(1, buffer * batch_size)))
            if not chunk:
                return
            tokenized = [self.tokenizer.sentences(text) for text in chunk]
            flat = [Sentence(tokens=[t.text for t in s], document=number)  # each text is a document
                    for number, sentences in enumerate(tokenized) for s in sentences]
            predictions = iter(self.task.predict_detailed(flat, batch_size, n_best))
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

    def evaluate(  # type: ignore[override]
        self, sentences: Sequence[Sentence | tuple[Sequence[str], Sequence[str]]], batch_size: int = 256
    ) -> dict[str, Any]:
        """Metrics (entity P/R/F1 or token accuracy) on labelled sentences: ``(tokens, tags)`` pairs of
        plain lists, or :class:`~seqtag.data.conll.Sentence` objects.

        Raises:
            TypeError: a sentence is neither, or its tokens and tags differ in number.
        """
        labelled = [as_sentence(item) for item in sentences]
        self.task.check_gold(labelled)
        return self.task.evaluate(labelled, batch_size)

    def evaluate_file(  # type: ignore[override]
        self,
        path: str | Path,
        batch_size: int = 256,
        word_column: int | None = None,
        label_column: int | None = None,
        confusion: str | Path | None = None,
    ) -> dict[str, Any]:
        """Metrics on a labelled CoNLL file, with ``sentences`` and ``tokens`` counts.

        The columns default to the recipe's; ``confusion`` names a file for a tag
        confusion table (TSV: gold rows, predicted columns).
        """
        data = self.task.recipe.data
        word_column = data.word_column if word_column is None else word_column
        label_column = data.label_column if label_column is None else label_column
        sentences = read_conll(path, word_column, label_column)
        self.task.check_gold(sentences, path)
        gold = [s.labels or [] for s in sentences]
        predicted = self.task.predict(sentences, batch_size)
        if confusion is not None:
            atomic_write_text(confusion, confusion_table(gold, predicted))
        return {**self.task.score(gold, predicted), "sentences": len(sentences), "tokens": sum(map(len, sentences))}

    def report(self, path: str | Path, metrics: dict[str, Any]) -> str:
        counts = f"{path}: {metrics['sentences']} sentences, {metrics['tokens']} tokens"
        return counts + "\n" + format_report({k: v for k, v in metrics.items() if k not in ("sentences", "tokens")})

    def predict_file(  # type: ignore[override]
        self, path: str | Path, out: TextIO, batch_size: int = 256, format: str = "auto", word_column: int | None = None
    ) -> int:
        """Tag a file (``-``: stdin) in one of the formats of :mod:`seqtag.data.stream` (``auto``
        detects it): CoNLL (``conll``: its lines plus a predicted tag column), one pre-tokenised
        sentence per line (``tokens``: ``token/TAG`` pairs), raw text (``text``: paragraphs
        between blank lines, ``token/TAG`` lines, one per sentence) or JSON lines (``jsonl``).
        Every input line has its output in order; blank lines are kept. Streams the file in
        chunks, so memory does not grow with its size. Returns the number of sentences."""
        format = resolve_format(path, format)
        count = 0
        column = self.word_column if word_column is None else word_column
        for chunk in read_chunks(path, format, column, documents=self.task.recipe.model.document_context > 0):
            result = self.tag_items(chunk.format, chunk.inputs, batch_size)
            out.write(format_chunk(chunk, result))
            count += count_sentences(chunk, result)
        return count

    @property
    def word_column(self) -> int:
        """The token column of CoNLL input the model's recipe names."""
        return self.task.recipe.data.word_column

    def tag_items(self, format: str, items: Sequence[Any], batch_size: int = 256) -> ChunkResult:
        """Tags for the inputs of one chunk (:attr:`seqtag.data.stream.Chunk.inputs`): for ``conll``
        and ``tokens`` :class:`~seqtag.data.conll.Sentence` s, their tags; for ``text`` paragraphs,
        per paragraph its sentences as ``(tokens, tags)`` pairs (tokenised and split by
        :meth:`pipe`); for ``jsonl`` records, per record its sentences as JSON objects."""
        buffer = max(1, -(-len(items) // batch_size))  # the whole chunk in one read-ahead of pipe
        if format == "text":
            return [
                [([token.text for token in sentence.tokens], sentence.tags) for sentence in sentences]
                for sentences in self.pipe(items, batch_size=batch_size, buffer=buffer)
            ]
        if format == "jsonl":
            texts = [record.text for record in items if record.text is not None]
            tokenised = [record.tokens for record in items if record.text is None]
            from_text = iter(self.pipe(texts, batch_size=batch_size, buffer=buffer))
            from_tokens = iter(self.tag_batch(tokenised, batch_size) if tokenised else [])
            return [
                [s.to_json() for s in next(from_text)] if record.text is not None else [next(from_tokens).to_json()]
                for record in items
            ]
        return self.task.predict(items, batch_size)

    def use_onnx(self, path: str | Path | None, threads: int | None = None) -> None:
        """Compute the network's emissions with ONNX Runtime from ``path`` (``seqtag export``); None: PyTorch."""
        self.task.use_onnx(path, threads)

    def export_onnx(self, path: str | Path) -> Path:
        """Write the network as an ONNX graph, checked against PyTorch (``seqtag export``)."""
        return export_onnx(self.task, path)

    @staticmethod
    def summary(content: dict[str, Any]) -> list[str]:
        recipe, vocab = content["recipe"], content["vocab"]
        tags = vocab["tags"]["items"]
        trained_words = vocab["num_trainable_words"] - 2  # less <pad> and <unk>
        pretrained_only = len(vocab["words"]["items"]) - trained_words
        model = recipe["model"]
        return [
            f"  tags ({vocab['corpus_scheme'].upper()} corpus, trained as {model['tag_scheme'].upper()}): {' '.join(tags)}",
            f"  words: {trained_words:,} from training + {pretrained_only:,} pretrained-only; chars: {len(vocab['chars']['items']) + vocab['chars']['pad'] + vocab['chars']['unk']}",
            f"  model: char {model['char']['encoder']}, {model['encoder']['num_layers']}x Bi{model['encoder']['cell'].upper()} "
            f"{model['encoder']['hidden_size']}, decoder {model['decoder']}",
        ]


def as_sentence(item: Sentence | tuple[Sequence[str], Sequence[str]]) -> Sentence:
    """A labelled :class:`Sentence` from a Sentence or a ``(tokens, tags)`` pair; TypeError otherwise."""
    if isinstance(item, Sentence):
        return item
    if isinstance(item, (tuple, list)) and len(item) == 2 and not isinstance(item[0], str) and not isinstance(item[1], str):
        tokens, tags = list(item[0]), list(item[1])
        if len(tokens) == len(tags) and all(isinstance(x, str) for x in [*tokens, *tags]):
            return Sentence(tokens=tokens, labels=tags, rows=[[t] for t in tokens])
    raise TypeError(f"a labelled sentence is a (tokens, tags) pair of equally long string lists, got {shorten(repr(item))}")


#: The earlier name of this class, kept for existing code.
SequenceTagger = TaggingPredictor
