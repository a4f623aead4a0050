"""The predictor of language models, returned by :func:`seqtag.load`: generate text, score text."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import torch

from seqtag.errors import DataError, SeqtagError
from seqtag.modules.language_model import SEPARATORS
from seqtag.tasks.language_model.task import LanguageModelTask, read_text, units
from seqtag.tasks.predictor import Predictor


class LanguageModelPredictor(Predictor):
    """Generates and scores text with a trained character or word language model.

    >>> lm = seqtag.load("runs/lm-demo/model.seqtag")
    >>> lm.generate("The ", max_tokens=40, temperature=0.8, seed=1)
    'The ...'
    >>> lm.evaluate_file("recipes/demo/lm-test.txt")["bpc"]

    ``predict`` is :meth:`generate`. ``predict_file`` (``seqtag predict``) scores every line of a
    file on its own: a tab-separated row per line with its symbols, loss, and bits per character
    (or perplexity).
    """

    task: LanguageModelTask

    @property
    def labels(self) -> list[str]:
        """The symbols the model predicts (characters or words, ``<eos>`` / newline included)."""
        return self.task.symbols.itos[2:]

    @property
    def level(self) -> str:
        """``char`` or ``word``."""
        return self.task.level

    def predict(self, prompt: str = "", max_tokens: int = 100, temperature: float = 1.0,  # type: ignore[override]
                seed: int | None = None) -> str:
        """:meth:`generate`."""
        return self.generate(prompt, max_tokens, temperature, seed)

    def generate(self, prompt: str = "", max_tokens: int = 100, temperature: float = 1.0, seed: int | None = None) -> str:
        """The prompt followed by ``max_tokens`` sampled characters (or words).

        Args:
            prompt: the text to continue (a character model continues it character by character,
                a word model after its whitespace tokens); empty: the start of a line.
            max_tokens: symbols to sample (a line end counts as one).
            temperature: divides the scores before the softmax: below 1 safer, above 1 more varied;
                0 takes the most likely symbol every time (greedy).
            seed: the sampling's seed (the same seed gives the same text); None: a random one.

        A model trained backward only samples the text *before* the prompt, returned with the prompt
        at its end. Words are joined by spaces, ``<eos>`` becomes a line end.
        """
        generator = torch.Generator().manual_seed(seed if seed is not None else random.randrange(2**63))
        context = units(prompt, self.level)
        produced, direction = self.task.generate_symbols(context, max_tokens, temperature, generator)
        if self.level == "char":
            text = "".join(produced)
            return prompt + text if direction == "forward" else text[::-1] + prompt
        separator = SEPARATORS["word"]
        ordered = produced if direction == "forward" else produced[::-1]
        pieces: list[str] = []
        for token in ordered:
            if token == separator:
                pieces.append("\n")
            else:
                if pieces and pieces[-1] != "\n":
                    pieces.append(" ")
                pieces.append(token)
        text = "".join(pieces)
        if direction == "forward":
            glue = " " if prompt and text and not prompt[-1].isspace() and text[0] != "\n" else ""
            return prompt + glue + text
        glue = " " if prompt and text and not prompt[0].isspace() and text[-1] != "\n" else ""
        return text + glue + prompt

    def evaluate(self, texts: Sequence[str] | str, batch_size: int = 256, streams: int | None = None) -> dict[str, Any]:  # type: ignore[override]
        """``bpc`` (characters) or ``perplexity`` (words), the mean ``loss`` per symbol in nats and the
        ``tokens`` scored, of the text ``texts`` (lines, or one string split at its line ends) read as one
        stream as in training: its line separators are predicted too.

        ``streams``: parallel streams (default the recipe's ``training.eval_streams``, at most one per
        ``bptt`` symbols); 1 scores the text as one sequence, each symbol given everything before it.
        ``batch_size`` is not used.
        """
        lines = texts.splitlines() if isinstance(texts, str) else [str(t) for t in texts]
        if not lines:
            raise DataError("no text to score")
        return self.task.evaluate(lines, batch_size, streams)

    def _lines(self, path: str | Path, options: dict[str, Any]) -> list[str]:
        word_column = options.pop("word_column", None)
        file_format = options.pop("format", None)
        self.reject(options)
        data = self.task.recipe.data
        if file_format in ("text", "tokens"):
            file_format = "text"
        elif file_format is None:
            file_format = "conll" if word_column is not None or data.format == "conll" else "text"
        column = word_column if word_column is not None else data.word_column
        return read_text(path, file_format, column)

    def evaluate_file(self, path: str | Path, batch_size: int = 256, **options: Any) -> dict[str, Any]:
        """:meth:`evaluate` on a file read as the model's training text was (``data.format``): plain
        text, or a CoNLL file's word column. Options: ``word_column`` (reads CoNLL), ``format``
        (``text`` or ``conll``), ``streams``."""
        streams = options.pop("streams", None)
        lines = self._lines(path, options)
        if not lines:
            raise DataError("no lines of text in this file", path)
        return self.evaluate(lines, batch_size, streams)

    def predict_file(self, path: str | Path, out: TextIO, batch_size: int = 256, **options: Any) -> int:
        """Score every line of a file on its own (from zero states, between two line separators) and write
        a tab-separated row per line: ``line``, ``tokens`` (its symbols and the line end), ``loss`` (mean
        nats per symbol), ``bpc`` or ``perplexity``, and the text. Returns the number of lines."""
        lines = self._lines(path, dict(options))
        metric = "bpc" if self.level == "char" else "perplexity"
        out.write(f"line\ttokens\tloss\t{metric}\ttext\n")
        for number, (line, (tokens, total)) in enumerate(zip(lines, self.task.line_losses(lines, batch_size),
                                                              strict=True), start=1):
            loss = total / tokens
            value = loss / math.log(2) if metric == "bpc" else math.exp(min(loss, 700.0))
            out.write(f"{number}\t{tokens}\t{loss:.4f}\t{value:.4f}\t{line}\n")
        return len(lines)

    def report(self, path: str | Path, metrics: dict[str, Any]) -> str:
        """How ``seqtag evaluate`` prints :meth:`evaluate_file`'s figures."""
        if "bpc" in metrics:
            return (f"{path}: {metrics['bpc']:.4f} bits per character (loss {metrics['loss']:.4f} nats, "
                    f"{metrics['tokens']:,} characters)")
        return (f"{path}: perplexity {metrics['perplexity']:.2f} (loss {metrics['loss']:.4f} nats, "
                f"{metrics['tokens']:,} tokens with <eos>)")

    def use_onnx(self, path: str | Path | None, threads: int | None = None) -> None:
        raise SeqtagError("the onnx runtime is for tagging models; language models run on PyTorch")

    @staticmethod
    def summary(content: dict[str, Any]) -> list[str]:
        """``seqtag info``'s lines: level, direction, network and vocabulary."""
        model, training = content["recipe"]["model"], content["recipe"].get("training", {})
        symbols = content["vocab"]["symbols"]
        size = len(symbols["items"]) + bool(symbols.get("pad")) + bool(symbols.get("unk"))
        bptt = training.get("bptt") or {"char": 100, "word": 35}.get(model["level"])
        return [
            f"  language model: {model['level']} level, {model['direction']}; {size:,} symbols "
            f"(min count {model['min_count']})",
            f"  model: embeddings {model['embedding_dim']}, {model['num_layers']}x {model['cell'].upper()} "
            f"{model['hidden_size']}, dropout {model['dropout']}" + (", tied softmax" if model["tie_weights"] else ""),
            f"  trained with truncated BPTT: {training.get('batch_size')} streams x {bptt} symbols",
        ]
