"""Language modelling: predict the next character or word of plain text (and, backward, the previous one).

The text of a split is one stream of symbols: a character model reads its lines
joined by newlines, a word model its whitespace tokens with ``<eos>`` after every
line (blank lines skipped); the stream starts with that separator, so every symbol
of the text, separators included, is predicted once. The symbols are those of the
training split (``model.min_count``, ``model.max_vocab``), others read as ``<unk>``.

Training is truncated back-propagation through time (Williams & Peng 1990;
Zaremba et al. 2014): the stream is cut into ``training.batch_size`` contiguous
parts read side by side, ``training.bptt`` symbols per step, always in order (no
shuffling); the final states of one window start the next one (detached, so the
gradient stops at the window), and every pass starts from zero states. The task
keeps that state between :meth:`~LanguageModelTask.loss` calls and gives it to
checkpoints (:meth:`~LanguageModelTask.training_state`), so a resumed run continues
exactly. Under ``torchrun`` each process reads every ``world_size``-th stream. The dev metric is bits per character or perplexity, lower is better
(``metric_goal = "min"``).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from seqtag.data.batching import length_batches, pad, to_device
from seqtag.data.conll import read_conll
from seqtag.data.files import read_lines
from seqtag.data.sources import dataset_splits
from seqtag.data.vocab import Vocabulary, WordIndex
from seqtag.embeddings import PretrainedVectors
from seqtag.errors import DataError, SeqtagError, shorten
from seqtag.modules.language_model import DIRECTIONS, SEPARATORS, LanguageModel, State, detach
from seqtag.tasks.base import Task
from seqtag.tasks.language_model.model import LMBatch, LMWindow, build_model
from seqtag.tasks.language_model.recipe import LanguageModelRecipe

log = logging.getLogger(__name__)

#: Cached streams of symbol ids (a split is encoded once per direction).
_CACHED_STREAMS = 6


def units(line: str, level: str) -> list[str]:
    """The symbols of one line of text: its characters, or its whitespace tokens."""
    return list(line) if level == "char" else line.split()


def read_text(path: str | Path, format: str = "text", word_column: int = 0) -> list[str]:
    """The lines of text of a file: a plain UTF-8 file's lines (line ends removed), or each sentence of a
    CoNLL file as its ``word_column`` tokens joined by spaces. DataError naming the file (and line)."""
    if format == "conll":
        return [" ".join(sentence.tokens) for sentence in read_conll(path, word_column, None)]
    if format != "text":
        raise DataError(f"cannot read {format} files as text here; use text or conll", path)
    return [line for _, line in read_lines(path)]


def symbol_vocabulary(counts: Counter[str], level: str, min_count: int = 1, max_size: int | None = None) -> Vocabulary:
    """``<pad>``, ``<unk>``, the line separator, then the symbols seen ``min_count`` times or more, most
    frequent first (at most ``max_size`` of them)."""
    separator = SEPARATORS[level]
    kept = sorted((s for s, n in counts.items() if n >= min_count and s != separator), key=lambda s: (-counts[s], s))
    return Vocabulary([separator, *kept[:max_size]], pad=True, unk=True)


def layout(sequence: torch.Tensor, streams: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut a stream of ``N + 1`` symbols into ``streams`` contiguous parts read side by side.

    Every symbol but the first is a target exactly once: part ``s`` reads ``sequence[a:b]`` and predicts
    ``sequence[a + 1:b + 1]``, the parts' lengths differing by at most one (the shorter ones padded).

    Returns:
        inputs ``(S, L)``, targets ``(S, L)`` and mask ``(S, L)`` (False on padding), ``S = min(streams, N)``.
    """
    targets_total = sequence.numel() - 1
    streams = max(1, min(streams, targets_total))
    base, extra = divmod(targets_total, streams)
    width = base + (1 if extra else 0)
    inputs = torch.zeros(streams, width, dtype=torch.long)
    targets = torch.zeros(streams, width, dtype=torch.long)
    mask = torch.zeros(streams, width, dtype=torch.bool)
    start = 0
    for s in range(streams):
        length = base + (1 if s < extra else 0)
        inputs[s, :length] = sequence[start : start + length]
        targets[s, :length] = sequence[start + 1 : start + 1 + length]
        mask[s, :length] = True
        start += length
    return inputs, targets, mask


def lm_metrics(losses: dict[str, float], tokens: int, level: str) -> dict[str, Any]:
    """The metrics of mean losses per symbol (nats) of each direction: ``bpc`` (characters) or ``perplexity``
    (words) of their mean, the mean ``loss`` and the ``tokens`` scored (per direction)."""
    loss = sum(losses.values()) / len(losses)
    metrics: dict[str, Any] = {"bpc": loss / math.log(2)} if level == "char" else {"perplexity": math.exp(min(loss, 700.0))}
    metrics.update({"loss": loss, "tokens": tokens})
    if len(losses) > 1:
        metrics.update({f"{direction}_loss": value for direction, value in losses.items()})
    return metrics


class LanguageModelTask(Task):
    """A character- or word-level recurrent language model; bits per character or perplexity, lower is better."""

    name = "language_model"
    recipe_class = LanguageModelRecipe
    example_noun = "lines of text"
    metric_goal = "min"
    model: LanguageModel

    def __init__(self, recipe: LanguageModelRecipe, symbols: Vocabulary, model: LanguageModel | None = None) -> None:
        self.recipe = recipe
        self.symbols = symbols
        self.level = recipe.model.level
        if SEPARATORS[self.level] not in symbols.stoi or not (symbols.pad and symbols.unk):
            raise ValueError(f"the symbols of a {self.level} model need <pad>, <unk> and {SEPARATORS[self.level]!r}")
        self.separator = symbols.stoi[SEPARATORS[self.level]]
        # the skeleton's word index: every symbol is a trained row
        self.words = WordIndex(symbols, len(symbols), lowercase=False)
        self.word_dim = recipe.model.embedding_dim
        self.model = model if model is not None else build_model(recipe, len(symbols))
        self.directions: tuple[str, ...] = self.model.directions
        self._streams: list[tuple[Sequence[str], str, torch.Tensor]] = []
        self._layouts: dict[tuple[int, str, int], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        self._carry: dict[str, State] = {}
        self._carry_window = -1
        self._carry_streams: tuple[int, ...] = ()

    @property
    def main_metric(self) -> str:  # type: ignore[override]
        """``bpc`` for characters, ``perplexity`` for words."""
        return "bpc" if self.level == "char" else "perplexity"

    # ------------------------------------------------------------------ reading

    @classmethod
    def read_file(cls, recipe: LanguageModelRecipe, path: Path) -> list[str]:
        """The lines of text of one file (plain text, or the word column of a CoNLL file)."""
        lines = read_text(path, recipe.data.format, recipe.data.word_column)
        log.info("read %s: %d lines, %d characters", path, len(lines), sum(map(len, lines)))
        return lines

    @classmethod
    def read_splits(cls, recipe: LanguageModelRecipe) -> dict[str, list[str]]:  # type: ignore[override]
        """Every split's lines of text, from files or a ``datasets`` source."""
        if not recipe.data.uses_datasets():
            return super().read_splits(recipe)
        return read_dataset_text(recipe)

    # ----------------------------------------------------------------- building

    @classmethod
    def from_splits(cls, recipe: LanguageModelRecipe, splits: dict[str, list[str]]) -> "LanguageModelTask":  # type: ignore[override]
        """A fresh model whose symbols are those of ``splits["train"]`` (no pretrained vectors)."""
        return cls.build(recipe, splits["train"], None)

    @classmethod
    def build(cls, recipe: LanguageModelRecipe, train: Sequence[str], vectors: PretrainedVectors | None) -> "LanguageModelTask":
        """The training text's symbols, a fresh model."""
        level, config = recipe.model.level, recipe.model
        counts: Counter[str] = Counter()
        for line in train:
            counts.update(units(line, level))
        symbols = symbol_vocabulary(counts, level, config.min_count, config.max_vocab)
        known = sum(n for s, n in counts.items() if s in symbols.stoi)
        log.info("vocabulary: %d symbols (%d distinct in train, %.2f%% of its %d symbols covered)", len(symbols),
                 len(counts), 100.0 * known / max(1, sum(counts.values())), sum(counts.values()))
        return cls(recipe, symbols)

    # ------------------------------------------------------------- model files

    def extra_state(self) -> dict[str, Any]:
        return {"symbols": self.symbols.to_json(), "level": self.level}

    def vocab_state(self) -> dict[str, Any]:
        """The symbols and the level (a language model has no word index of its own)."""
        return self.extra_state()

    @classmethod
    def from_vocab(cls, recipe: LanguageModelRecipe, vocab: dict[str, Any]) -> "LanguageModelTask":
        if vocab.get("level") != recipe.model.level:
            raise ValueError(f"vocab.json is for a {vocab.get('level')!r} model, the recipe says {recipe.model.level!r}")
        return cls(recipe, Vocabulary.from_json(vocab["symbols"]))

    # ---------------------------------------------------------------- encoding

    def ids(self, symbols: Sequence[str]) -> list[int]:
        """Symbol ids, ``<unk>`` for symbols outside the vocabulary."""
        stoi, unk = self.symbols.stoi, self.symbols.unk_index
        return [stoi.get(s, unk) for s in symbols]

    def encode(self, example: str) -> list[int]:  # type: ignore[override]
        """A line's symbol ids (without the separators around it)."""
        return self.ids(units(example, self.level))

    def stream(self, lines: Sequence[str], direction: str = "forward") -> torch.Tensor:
        """``(N + 1,)`` the text as one stream: the separator, then each line's symbols and a separator
        (word models skip blank lines); reversed for ``backward``. Cached per list object."""
        for cached, cached_direction, ids in self._streams:
            if cached is lines and cached_direction == direction:
                return ids
        sequence = [self.separator]
        for line in lines:
            encoded = self.encode(line)
            if encoded or self.level == "char":
                sequence.extend(encoded)
                sequence.append(self.separator)
        ids = torch.tensor(sequence, dtype=torch.long)
        if direction == "backward":
            ids = ids.flip(0)
        self._streams = [*self._streams[-(_CACHED_STREAMS - 1):], (lines, direction, ids)]
        return ids

    def collate(self, items: Sequence[list[int]]) -> LMBatch:
        """Independent lines (encoded) as one window from zero states: each line read between two
        separators, in every direction of the model, padded."""
        rows = [[self.separator, *item, self.separator] for item in items]
        parts: dict[str, LMWindow] = {}
        for direction in self.directions:
            ordered = rows if direction == "forward" else [row[::-1] for row in rows]
            inputs = pad([row[:-1] for row in ordered])  # (B, T)
            targets = pad([row[1:] for row in ordered])  # (B, T)
            lengths = torch.tensor([len(row) - 1 for row in ordered])
            mask = torch.arange(inputs.size(1)).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
            parts[direction] = LMWindow(inputs, targets, mask)
        return LMBatch(0, parts.get("forward"), parts.get("backward"))

    # ---------------------------------------------------------------- batching

    def _layout(self, lines: Sequence[str], direction: str, streams: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (id(self.stream(lines, direction)), direction, streams)
        if key not in self._layouts:
            self._layouts = {k: v for k, v in self._layouts.items() if any(id(ids) == k[0] for _, _, ids in self._streams)}
            self._layouts[key] = layout(self.stream(lines, direction), streams)
        return self._layouts[key]

    def shards(
        self,
        examples: Sequence[Any],
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> Iterator[tuple[LMBatch, float]]:
        """The BPTT windows of a pass over ``examples`` in order (never shuffled): ``batch_size``
        parallel streams, ``training.bptt`` symbols each. In a distributed run each process reads
        every ``world_size``-th stream (its share of the streams; the batch's first stream with
        share 0 when there are fewer streams than processes)."""
        bptt = self.recipe.bptt
        layouts = {d: self._layout(examples, d, batch_size) for d in self.directions}
        streams, width = next(iter(layouts.values()))[0].shape
        mine = list(range(rank, streams, world_size))
        share = len(mine) / streams
        rows = torch.tensor(mine or [0], dtype=torch.long)
        for window, start in enumerate(range(0, width, bptt)):
            parts = {d: LMWindow(*(t[rows, start : start + bptt] for t in tensors)) for d, tensors in layouts.items()}
            batch = LMBatch(window, parts.get("forward"), parts.get("backward"), tuple(mine or [0]))
            yield to_device(batch, self.device), share

    def batch_size_of(self, batch: LMBatch) -> int:
        """Symbols predicted in the batch (one direction): the trainer's examples per second are symbols per second."""
        return len(batch)

    # ---------------------------------------------------------------- training

    def loss(self, batch: LMBatch, reduction: str = "sum") -> torch.Tensor:
        """Negative log-likelihood of the window's targets (summed over directions; ``mean``: per symbol and
        direction), read from the states the previous window of the pass left (zero for window 0)."""
        carry = self._carry
        if batch.window == 0 or self._carry_window != batch.window - 1 or self._carry_streams != batch.streams:
            if batch.window > 0:
                log.warning("window %d of the pass starts from zero states: the states the window before left "
                            "are not there (a distributed run resumed from a checkpoint keeps only the first "
                            "process's)", batch.window)
            carry = {}
        total: torch.Tensor | None = None
        count = 0
        states: dict[str, State] = {}
        for direction in self.directions:
            part = batch.part(direction)
            nll, state = self.model.lm(direction).nll(part.inputs, part.targets, carry.get(direction))
            states[direction] = detach(state)
            summed = (nll * part.mask).sum()
            total = summed if total is None else total + summed
            count += len(part)
        self._carry, self._carry_window, self._carry_streams = states, batch.window, batch.streams
        assert total is not None
        return total if reduction == "sum" else total / max(count, 1)

    def training_state(self) -> dict[str, torch.Tensor]:
        """The states carried to the next window (for checkpoints): ``window``, ``streams`` (which streams of
        the pass the rows are) and ``<direction>.<i>``. Only the first process of a distributed run writes
        checkpoints, so after a resume the other processes' streams restart from zero states (a warning says so)."""
        if not self._carry:
            return {}
        tensors = {"window": torch.tensor(self._carry_window, dtype=torch.long),
                   "streams": torch.tensor(self._carry_streams, dtype=torch.long)}
        for direction, state in self._carry.items():
            tensors.update({f"{direction}.{i}": t for i, t in enumerate(state)})
        return tensors

    def restore_training_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Take back what :meth:`training_state` gave (a checkpoint's); ValueError when it does not fit."""
        self._carry, self._carry_window, self._carry_streams = {}, -1, ()
        if not tensors:
            return
        carry: dict[str, State] = {}
        for direction in self.directions:
            parts = [tensors[f"{direction}.{i}"] for i in range(2) if f"{direction}.{i}" in tensors]
            if not parts:
                raise ValueError(f"no {direction} state")
            carry[direction] = tuple(t.to(self.device) for t in parts)
        self._carry, self._carry_window = carry, int(tensors["window"])
        self._carry_streams = tuple(int(i) for i in tensors["streams"].tolist())

    # -------------------------------------------------------------- evaluation

    @torch.inference_mode()
    def evaluate(self, examples: Sequence[str], batch_size: int = 256, streams: int | None = None) -> dict[str, Any]:
        """Bits per character (or perplexity), the mean loss per symbol (nats) and the symbols scored, the
        text read as ``streams`` parallel streams (default ``training.eval_streams``, but at most one per
        ``bptt`` symbols, so a short text is one stream; ``batch_size`` is not used: the streams decide
        the figures)."""
        self.model.eval()
        bptt = self.recipe.bptt
        losses: dict[str, float] = {}
        tokens = 0
        for direction in self.directions:
            lm = self.model.lm(direction)
            sequence = self.stream(examples, direction)
            if streams is None:
                streams = min(self.recipe.training.eval_streams, max(1, (sequence.numel() - 1) // bptt))
            inputs, targets, mask = layout(sequence, streams)
            if not mask.any():
                raise DataError("no text to score")
            total = torch.zeros((), dtype=torch.float64, device=self.device)
            state: State | None = None
            for start in range(0, inputs.size(1), bptt):
                window = slice(start, start + bptt)
                nll, state = lm.nll(inputs[:, window].to(self.device), targets[:, window].to(self.device), state)
                total += (nll.double() * mask[:, window].to(self.device)).sum()
            tokens = int(mask.sum())
            losses[direction] = float(total) / max(tokens, 1)
        return lm_metrics(losses, tokens, self.level)

    @torch.inference_mode()
    def line_losses(self, lines: Sequence[str], batch_size: int = 256) -> list[tuple[int, float]]:
        """Each line scored on its own from zero states (between two separators): the symbols predicted
        (its symbols and the separator after it) and their summed loss in nats (mean over directions)."""
        self.model.eval()
        encoded = [self.encode(line) for line in lines]
        out: list[tuple[int, float]] = [(0, 0.0)] * len(encoded)
        for order in length_batches([len(e) for e in encoded], batch_size):
            batch = to_device(self.collate([encoded[i] for i in order]), self.device)
            sums = torch.zeros(len(order), dtype=torch.float64, device=self.device)
            for direction in self.directions:
                part = batch.part(direction)
                nll, _ = self.model.lm(direction).nll(part.inputs, part.targets)
                sums += (nll.double() * part.mask).sum(1)
            for i, total in zip(order, (sums / len(self.directions)).tolist(), strict=True):
                out[i] = (len(encoded[i]) + 1, total)
        return out

    @torch.inference_mode()
    def generate_symbols(
        self, prompt: Sequence[str], max_tokens: int, temperature: float, generator: torch.Generator
    ) -> tuple[list[str], str]:
        """Sample ``max_tokens`` symbols after ``prompt`` (forward model; a backward-only model samples the
        symbols before it, nearest first). Temperature 0 takes the most likely symbol; ``<pad>`` and
        ``<unk>`` are never produced. Returns the symbols and the direction used."""
        if temperature < 0 or not math.isfinite(temperature):
            raise SeqtagError(f"temperature must be 0 (greedy) or positive, not {temperature}")
        if max_tokens < 0:
            raise SeqtagError(f"max_tokens must be 0 or more, not {max_tokens}")
        self.model.eval()
        direction = "forward" if "forward" in self.directions else "backward"
        lm = self.model.lm(direction)
        context = list(prompt) if direction == "forward" else list(reversed(prompt))
        ids = torch.tensor([[self.separator, *self.ids(context)]], dtype=torch.long, device=self.device)  # (1, T)
        outputs, state = lm(ids)
        produced: list[str] = []
        for _ in range(max_tokens):
            logits = lm.logits(outputs[:, -1]).float().cpu()[0]  # (V,)
            logits[0] = logits[self.symbols.unk_index] = -math.inf
            if temperature == 0:
                chosen = int(logits.argmax())
            else:
                probabilities = torch.softmax(logits / temperature, dim=0)
                chosen = int(torch.multinomial(probabilities, 1, generator=generator))
            produced.append(self.symbols.itos[chosen])
            outputs, state = lm(torch.tensor([[chosen]], dtype=torch.long, device=self.device), state)
        return produced, direction

    def describe(self, splits: dict[str, list[Any]]) -> str:
        sizes = ", ".join(f"{name} {len(self.stream(data)) - 1:,}" for name, data in splits.items())
        parameters = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        config, training = self.recipe.model, self.recipe.training
        return (f"task {self.name}: {config.level} level, {sizes} symbols to predict; {len(self.symbols)} symbols; "
                f"{parameters:,} trainable parameters; {config.direction} {config.num_layers}x {config.cell.upper()} "
                f"{config.hidden_size}; {training.batch_size} streams, bptt {self.recipe.bptt}; "
                f"early stopping on the lowest dev {self.main_metric}")


def read_dataset_text(recipe: LanguageModelRecipe) -> dict[str, list[str]]:
    """Every split's lines from a ``datasets`` source (hub, disk, or json/csv/parquet files): the
    ``data.text_field`` of each row, through the loader of the tagging sources."""
    data = recipe.data
    splits: dict[str, list[str]] = {}
    for split, (table, where) in dataset_splits(recipe, data).items():
        if data.text_field not in table.column_names:
            raise DataError(f"no field {shorten(repr(data.text_field))}; the dataset has {table.column_names} "
                            "(set data.text_field)", where)
        lines: list[str] = []
        for row, value in enumerate(table[data.text_field], start=1):
            if not isinstance(value, str):
                raise DataError(f"the text field holds {type(value).__name__}, not text", where, row)
            lines.extend(value.splitlines() or [""])
        if not lines:
            raise DataError("no lines of text", where)
        splits[split] = lines
    return splits


__all__ = ["DIRECTIONS", "LanguageModelTask", "layout", "lm_metrics", "read_text", "symbol_vocabulary", "units"]
