"""The predictor of target-dependent sentiment models, returned by :func:`seqtag.load`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from seqtag.data.target import LABEL_NAMES, PLACEHOLDER, TargetExample, check_target, read_target_file
from seqtag.errors import DataError, shown
from seqtag.tasks.predictor import TextPredictor
from seqtag.tasks.target_sentiment.task import TargetSentimentTask

Text = str | Sequence[str]


@dataclass
class SentimentPrediction:
    """The polarity towards one target.

    ``label`` is ``negative``, ``neutral`` or ``positive``; ``polarity`` the same as
    -1, 0 or 1; ``probabilities`` maps every label to its probability. ``tokens`` is
    the sentence as the model read it and ``mentions`` the ``[start, end)`` token
    spans of the target in it.
    """

    label: str
    polarity: int
    probabilities: dict[str, float]
    target: str
    tokens: list[str]
    mentions: list[tuple[int, int]]

    @property
    def confidence(self) -> float:
        """Probability of the predicted label."""
        return self.probabilities[self.label]

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.3f}" for k, v in self.probabilities.items())
        return f"SentimentPrediction({self.target!r}: {self.label}; {shown})"




class TargetSentimentPredictor(TextPredictor):
    """Classifies the sentiment towards a target in a sentence with a trained LSTM/TD-LSTM/TC-LSTM.

    >>> model = seqtag.load("runs/twitter-tdlstm/model.seqtag")
    >>> model.predict("i hate windows vista , it crashes all the time", target="windows vista").label
    'negative'

    Sentences are raw text (tokenised as at training) or lists of tokens. The
    target is found wherever it occurs (ignoring case); a sentence may instead
    mark the target's place(s) with ``$T$`` as in the 3-line files.
    """

    task: TargetSentimentTask

    @property
    def labels(self) -> list[str]:
        """The labels the model predicts, in class order."""
        return [LABEL_NAMES[p] for p in self.task.labels]

    def _tokens(self, text: Text) -> list[str]:
        if isinstance(text, str):
            return [token.text for token in self.tokenizer.tokenize(text)]
        return [str(token) for token in text]

    def example(self, sentence: Text, target: Text | None = None) -> TargetExample:
        """The :class:`TargetExample` for ``sentence`` and ``target`` (what the model reads).

        Raises:
            DataError: when the target is empty or does not occur in the sentence.
        """
        if isinstance(sentence, str) and PLACEHOLDER in sentence:
            if target is None:
                raise DataError(f"the sentence marks the target with {PLACEHOLDER}: give the target too")
            template: list[str] = []
            for i, piece in enumerate(sentence.split(PLACEHOLDER)):
                if i:
                    template.append(PLACEHOLDER)
                template.extend(self._tokens(piece))
            target_tokens = self._tokens(target)
            if not target_tokens:
                raise DataError("the target is empty")
            check_target(target_tokens)
            return TargetExample.from_template(template, target_tokens)
        if target is None:
            raise DataError(f"give the target, or mark its place in the sentence with {PLACEHOLDER}")
        target_tokens = self._tokens(target)
        if not target_tokens:
            raise DataError("the target is empty")
        check_target(target_tokens)
        tokens = self._tokens(sentence)
        if PLACEHOLDER in tokens:
            return TargetExample.from_template(tokens, target_tokens)
        lowered = [t.lower() for t in tokens]
        wanted = [t.lower() for t in target_tokens]
        width = len(wanted)
        mentions: list[tuple[int, int]] = []
        position = 0
        while position + width <= len(tokens):
            if lowered[position] == wanted[0] and lowered[position : position + width] == wanted:
                mentions.append((position, position + width))
                position += width
            else:
                position += 1
        if not mentions:
            raise DataError(f"the target {shown(' '.join(target_tokens))} does not occur in the sentence "
                            f"{shown(' '.join(tokens))}")
        # the model reads every mention spelt as the target (matching ignored case)
        for start, end in mentions:
            tokens[start:end] = target_tokens
        return TargetExample(tokens, target_tokens, mentions)

    def predict(self, sentence: Text, target: Text | None = None) -> SentimentPrediction:  # type: ignore[override]
        """The sentiment towards ``target`` in ``sentence``."""
        return self.predict_batch([(sentence, target)])[0]

    def predict_batch(
        self, items: Iterable[tuple[Text, Text | None] | TargetExample], batch_size: int = 256
    ) -> list[SentimentPrediction]:
        """Predict many ``(sentence, target)`` pairs or :class:`TargetExample` s at once, in input order."""
        examples = [item if isinstance(item, TargetExample) else self.example(*item) for item in items]
        return self.predict_examples(examples, batch_size)

    def predict_examples(self, examples: Sequence[TargetExample], batch_size: int = 256) -> list[SentimentPrediction]:
        """Predictions for examples already in the model's form (e.g. read from a 3-line file)."""
        if not examples:
            return []
        probabilities = self.task.predict_probabilities(examples, batch_size).tolist()  # (N, 3)
        labels = self.labels
        results = []
        for example, row in zip(examples, probabilities, strict=True):
            best = max(range(len(row)), key=row.__getitem__)
            results.append(
                SentimentPrediction(
                    label=labels[best],
                    polarity=int(self.task.labels[best]),
                    probabilities=dict(zip(labels, row, strict=True)),
                    target=" ".join(example.target),
                    tokens=list(example.tokens),
                    mentions=list(example.mentions),
                )
            )
        return results

    def evaluate(self, examples: Sequence[TargetExample], batch_size: int = 256) -> dict[str, Any]:  # type: ignore[override]
        """Accuracy, macro-F1 and per-class P/R/F1 (percent) on labelled examples."""
        return self.task.evaluate(examples, batch_size)

    def evaluate_file(self, path: str | Path, batch_size: int = 256, **options: Any) -> dict[str, Any]:
        """Metrics on a labelled 3-line file (for ``seqtag evaluate``)."""
        self.reject(options)
        examples = read_target_file(path, labelled=True)
        if not examples:
            raise DataError("no examples in this file", path)
        return {**self.evaluate(examples, batch_size), "examples": len(examples)}

    def predict_file(self, path: str | Path, out: TextIO, batch_size: int = 256, **options: Any) -> int:
        """Predict a 3-line file (the polarity lines may be absent) and write tab-separated rows.

        Columns: the example's line, the gold polarity (``-`` when absent), the predicted
        polarity and label, its probability, the probabilities of every label, the target
        and the sentence with the target in brackets. Returns the number of examples.
        """
        self.reject(options)
        examples = read_target_file(path, labelled=None)
        predictions = self.predict_examples(examples, batch_size)
        labels = self.labels
        out.write("\t".join(["line", "gold", "polarity", "label", "confidence", *(f"p_{label}" for label in labels),
                             "target", "sentence"]) + "\n")
        for example, prediction in zip(examples, predictions, strict=True):
            marked = list(example.tokens)
            for start, end in reversed(example.mentions):
                marked[start:end] = ["[" + " ".join(example.tokens[start:end]) + "]"]
            row = [
                str(example.line),
                example.label if example.label is not None else "-",
                str(prediction.polarity),
                prediction.label,
                f"{prediction.confidence:.4f}",
                *(f"{prediction.probabilities[label]:.4f}" for label in labels),
                prediction.target,
                " ".join(marked),
            ]
            out.write("\t".join(row) + "\n")
        return len(examples)


#: The earlier name of this class, kept for existing code.
TargetSentimentClassifier = TargetSentimentPredictor
