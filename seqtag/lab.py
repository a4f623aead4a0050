"""The long-time-lag lab: Hochreiter & Schmidhuber's (1997) evidence, rerun for every recurrent cell.

Each problem below is one of the paper's synthetic tasks (or Gers et al.'s 2000 continual variant).
For each (problem, time lag T, cell, seed) the lab builds a one-layer network through the cell
registry (:func:`seqtag.modules.recurrent.cell`: the same factory, initialisation and padded-batch
runs the taggers use), trains it with Adam until a test set says the problem is solved or the
budget of training sequences is spent, and records whether it was solved and after how many
training sequences. Results go to ``<out>/<name>.json`` (rewritten after every run, so a stopped
lab keeps what it finished), a markdown report (printed; stored in the JSON; ``--markdown`` writes
it to a file too) and a plot of the success rate against the time lag.

Problems (``--problem``):

* ``adding`` (1997, experiment 4): each step is a pair (value in [-1, 1], marker). One of the first
  ten pairs and one of the first T/2 - 1 other pairs are marked (marker 1); the first and last
  pairs have marker -1, all others 0; when the first pair is marked its value is 0. Sequences
  have random lengths in [T, T + T/10]. The target, read at the last step, is
  ``0.5 + (X1 + X2) / 4``; a sequence is correct when the absolute error is below 0.04.
* ``temporal-order`` (1997, experiment 6a): one-hot symbols; ``E`` first, ``B`` last, random
  distractors ``a b c d`` elsewhere except X or Y at t1 in [T/10, T/5] and t2 in [T/2, T/2 + T/10];
  the length is in [T, T + T/10] (T = 100 is the paper's). Four classes by the order of X and Y
  (XX, XY, YX, YY); a sequence is correct when every output (softmax probability) is within 0.3
  of its one-hot target.
* ``reber`` (1997, experiment 1): next-symbol prediction on the embedded Reber grammar, 256
  training strings and 256 other test strings; a string is correct when at every step the
  possible next symbols are the most active outputs. No time-lag parameter.
* ``continual-reber`` (Gers, Schmidhuber & Cummins 2000): embedded Reber strings concatenated
  without a reset. Training sequences are streams of T symbols (from a zero state); the test is
  one uninterrupted stream of ``--stream-symbols`` symbols, every prediction of which must be
  correct. It shows what the forget gate adds: ``lstm`` against ``nfg`` (the 1997 cell).

Run it as ``python scripts/long_lag.py --problem adding --lengths 50 100 200`` (see
:func:`build_parser` for every option); docs/lstm-lab.md has the results.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from seqtag.devices import resolve_device, set_threads
from seqtag.errors import SeqtagError
from seqtag.io import atomic_write_text
from seqtag.modules.lstm_variants import GATES
from seqtag.modules.recurrent import CELLS, RecurrentCell, cell

#: Seed of the adding and temporal-order test sets (the same for every cell and seed); training
#: data comes from the run's seed.
TEST_SEED = 1997
#: The adding problem's tolerance: a sequence is correct when |output - target| < 0.04 (the paper's).
ADDING_TOLERANCE = 0.04
#: The temporal-order tolerance: every output within 0.3 of its target (the paper's).
TEMPORAL_TOLERANCE = 0.3
#: The temporal-order symbols: start, trigger (end), four distractors, the two relevant ones.
TEMPORAL_SYMBOLS = "EBabcdXY"
#: Class names of (t1, t2) = XX, XY, YX, YY, as in the paper.
TEMPORAL_CLASSES = "QRSU"
#: The Reber grammar's symbols, in the order of the one-hot inputs and outputs.
REBER_SYMBOLS = "BTPSXVE"
#: The Reber grammar (Reber 1967) as a graph: node -> ((symbol, next node), ...); node 0 follows
#: the initial B, node 5 ends the string with E (next node None).
REBER_GRAPH: tuple[tuple[tuple[str, int | None], ...], ...] = (
    (("T", 1), ("P", 2)),
    (("S", 1), ("X", 3)),
    (("T", 2), ("V", 4)),
    (("X", 2), ("S", 5)),
    (("P", 3), ("V", 5)),
    (("E", None),),
)


# ----------------------------------------------------------------------------------------------
# Data


@dataclass
class Batch:
    """A padded batch of one problem.

    Attributes:
        inputs: ``(B, T, D)`` float inputs, zero past each length.
        lengths: ``(B,)`` sequence lengths.
        targets: adding ``(B,)`` float targets; temporal-order ``(B,)`` class indices; Reber
            ``(B, T, S)`` 0/1 sets of the possible next symbols.
        mask: ``(B, T)`` True at real steps (per-step problems; None otherwise).
    """

    inputs: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        """The batch on ``device``."""
        return Batch(self.inputs.to(device), self.lengths.to(device), self.targets.to(device),
                     None if self.mask is None else self.mask.to(device))

    def __len__(self) -> int:
        return self.inputs.size(0)


def _check_lag(length: int, problem: str) -> None:
    if length < 10:
        raise SeqtagError(f"{problem}: the time lag T is {length}; it must be at least 10")


def adding_batch(size: int, length: int, generator: torch.Generator) -> Batch:
    """``size`` adding-problem sequences of minimal length ``length`` (T), lengths in [T, T + T/10].

    Input ``(B, T', 2)``: (value, marker). One of the first ten pairs (X1) and one of the first
    T/2 - 1 pairs not already marked (X2) have marker 1; the first and the last pair have marker
    -1 unless marked; a marked first pair's value is 0 (the paper's X1 = 0). Target ``(B,)``: 0.5 + (X1 + X2) / 4.
    """
    _check_lag(length, "adding")
    lengths = torch.randint(length, length + length // 10 + 1, (size,), generator=generator)  # (B,)
    steps = int(lengths.max())
    rows = torch.arange(size)
    valid = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T')
    values = (torch.rand(size, steps, generator=generator) * 2 - 1) * valid  # (B, T')
    first = torch.randint(0, 10, (size,), generator=generator)  # (B,)
    second = torch.randint(0, length // 2 - 1, (size,), generator=generator)  # (B,)
    second = second + (second >= first).long()  # the first T/2 - 1 positions other than X1's
    markers = torch.zeros(size, steps)  # (B, T')
    markers[:, 0] = -1.0
    markers[rows, lengths - 1] = -1.0
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    values[:, 0] = torch.where((first == 0) | (second == 0), torch.zeros(size), values[:, 0])  # a marked first pair is 0
    targets = 0.5 + (values[rows, first] + values[rows, second]) / 4.0  # (B,)
    return Batch(torch.stack([values, markers], dim=2), lengths, targets)


def temporal_order_batch(size: int, length: int, generator: torch.Generator) -> Batch:
    """``size`` temporal-order sequences (experiment 6a scaled by T / 100), lengths in [T, T + T/10].

    Input ``(B, T', 8)``: one-hot symbols of :data:`TEMPORAL_SYMBOLS`; E first, B last, X or Y at
    t1 in [T/10, T/5] and t2 in [T/2, T/2 + T/10], a b c d elsewhere. Target ``(B,)``: the class
    2 * (symbol at t1 is Y) + (symbol at t2 is Y), i.e. Q R S U for XX XY YX YY.
    """
    _check_lag(length, "temporal-order")
    lengths = torch.randint(length, length + length // 10 + 1, (size,), generator=generator)  # (B,)
    steps = int(lengths.max())
    rows = torch.arange(size)
    symbols = torch.randint(2, 6, (size, steps), generator=generator)  # (B, T'): a b c d
    symbols[:, 0] = 0  # E
    symbols[rows, lengths - 1] = 1  # B, the trigger
    t1 = torch.randint(length // 10, length // 5 + 1, (size,), generator=generator)
    t2 = torch.randint(length // 2, length // 2 + length // 10 + 1, (size,), generator=generator)
    y1 = torch.randint(0, 2, (size,), generator=generator)
    y2 = torch.randint(0, 2, (size,), generator=generator)
    symbols[rows, t1] = 6 + y1
    symbols[rows, t2] = 6 + y2
    valid = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T')
    inputs = nn.functional.one_hot(symbols, len(TEMPORAL_SYMBOLS)).float() * valid.unsqueeze(2)  # (B, T', 8)
    return Batch(inputs, lengths, 2 * y1 + y2)


def reber_string(rng: random.Random) -> str:
    """One string of the Reber grammar: B, a random walk through :data:`REBER_GRAPH`, E."""
    symbols = ["B"]
    node: int | None = 0
    while node is not None:
        symbol, node = rng.choice(REBER_GRAPH[node])
        symbols.append(symbol)
    return "".join(symbols)


def embedded_reber_string(rng: random.Random) -> str:
    """One string of the embedded Reber grammar: B, T or P, a Reber string, the same T or P, E."""
    branch = rng.choice("TP")
    return "B" + branch + reber_string(rng) + branch + "E"


def reber_stream(rng: random.Random, symbols: int) -> str:
    """The first ``symbols`` symbols of a stream of embedded Reber strings, concatenated without a break."""
    parts: list[str] = []
    total = 0
    while total < symbols:
        parts.append(embedded_reber_string(rng))
        total += len(parts[-1])
    return "".join(parts)[:symbols]


def next_symbol_sets(string: str, continual: bool = False) -> list[frozenset[str]] | None:
    """The possible next symbols after each symbol of ``string`` under the embedded Reber grammar
    (``continual``: a stream of its strings, where B follows E), or None when ``string`` is not a
    prefix of a string (stream) of the grammar. The set after a complete string's E is empty."""
    # phase: 0 outer B, 1 branch, 2 inner B, 3 inside the Reber string (at ``node``), 4 branch again,
    # 5 outer E, 6 done
    phase, branch, node = 0, "", 0
    sets: list[frozenset[str]] = []
    for symbol in string:
        if phase == 0 and symbol == "B":
            phase = 1
        elif phase == 1 and symbol in "TP":
            phase, branch = 2, symbol
        elif phase == 2 and symbol == "B":
            phase, node = 3, 0
        elif phase == 3:
            moves = dict(REBER_GRAPH[node])
            if symbol not in moves:
                return None
            following = moves[symbol]
            if following is None:
                phase = 4
            else:
                node = following
        elif phase == 4 and symbol == branch:
            phase = 5
        elif phase == 5 and symbol == "E":
            phase = 0 if continual else 6
        else:
            return None
        allowed = {0: "B", 1: "TP", 2: "B", 4: branch, 5: "E", 6: ""}.get(phase)
        sets.append(frozenset(allowed if allowed is not None else (s for s, _ in REBER_GRAPH[node])))
    return sets


def is_embedded_reber(string: str) -> bool:
    """Whether ``string`` is one complete string of the embedded Reber grammar."""
    sets = next_symbol_sets(string)
    return sets is not None and len(sets) > 0 and not sets[-1]


def reber_batch(strings: Sequence[str], continual: bool = False) -> Batch:
    """Next-symbol prediction on ``strings``: the input at step t is symbol t (one-hot), the target
    the set of possible symbols t + 1. A whole string (not continual) drops its last symbol E, after
    which nothing follows; a stream keeps every symbol (what follows its last one is known).

    Returns inputs ``(B, T, 7)``, targets ``(B, T, 7)`` (0/1), mask ``(B, T)``.
    """
    encoded: list[tuple[str, list[frozenset[str]]]] = []
    for string in strings:
        sets = next_symbol_sets(string, continual)
        if sets is None:
            raise SeqtagError(f"not a {'stream' if continual else 'string'} of the embedded Reber grammar: {string!r}")
        encoded.append((string, sets) if continual else (string[:-1], sets[:-1]))
    lengths = torch.tensor([len(s) for s, _ in encoded])  # (B,)
    steps, count = int(lengths.max()), len(REBER_SYMBOLS)
    inputs = torch.zeros(len(encoded), steps, count)  # (B, T, 7)
    targets = torch.zeros(len(encoded), steps, count)  # (B, T, 7)
    for row, (string, sets) in enumerate(encoded):
        inputs[row, torch.arange(len(string)), [REBER_SYMBOLS.index(s) for s in string]] = 1.0
        for step, allowed in enumerate(sets):
            targets[row, step, [REBER_SYMBOLS.index(s) for s in allowed]] = 1.0
    mask = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    return Batch(inputs, lengths, targets, mask)


# ----------------------------------------------------------------------------------------------
# Success criteria


def adding_correct(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(B,)`` outputs and targets -> ``(B,)`` True where the absolute error is below 0.04."""
    return (outputs - targets).abs() < ADDING_TOLERANCE


def temporal_correct(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``(B, 4)`` logits and ``(B,)`` classes -> ``(B,)`` True where every softmax output is within
    0.3 of the one-hot target."""
    wanted = nn.functional.one_hot(classes, logits.size(1)).to(logits.dtype)
    return ((logits.softmax(dim=1) - wanted).abs() < TEMPORAL_TOLERANCE).all(dim=1)


def reber_steps_correct(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(B, T, S)`` outputs and 0/1 targets -> ``(B, T)`` True where the possible next symbols are
    the most active outputs: each of them above every impossible one (1997's criterion)."""
    allowed = targets > 0.5
    lowest_allowed = outputs.masked_fill(~allowed, math.inf).min(dim=2).values  # (B, T)
    highest_other = outputs.masked_fill(allowed, -math.inf).max(dim=2).values  # (B, T)
    return lowest_allowed > highest_other


def reber_correct(outputs: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B, T, S)`` outputs and targets, ``(B, T)`` mask -> ``(B,)`` True where every real step is correct."""
    return (reber_steps_correct(outputs, targets) | ~mask).all(dim=1)


# ----------------------------------------------------------------------------------------------
# Problems


@dataclass
class Evaluation:
    """A test of one network.

    Attributes:
        wrong: sequences (strings, or for a stream symbols) processed wrongly.
        total: sequences (or symbols) tested.
        mean_error: the adding problem's mean absolute error (None elsewhere).
        first_error: a stream's symbols predicted correctly before the first error (None elsewhere).
    """

    wrong: int
    total: int
    mean_error: float | None = None
    first_error: int | None = None


class Problem:
    """One task of the lab: its data, loss, criteria and what counts as solved."""

    name: ClassVar[str]
    inputs: ClassVar[int]
    outputs: ClassVar[int]
    #: the network answers at every step (else at the last one)
    per_step: ClassVar[bool] = False
    #: whether the problem has a time-lag parameter T
    has_lag: ClassVar[bool] = True
    default_lengths: ClassVar[tuple[int, ...]]
    default_budget: ClassVar[int]
    #: what the budget and the counts of training sequences count
    unit: ClassVar[str] = "sequences"
    #: the longest time lag of the run :meth:`prepare` set up last (chrono initialisation's T)
    time_scale: float = 0.0

    def criterion(self, settings: Settings) -> str:
        """When a run counts as solved, in words."""
        raise NotImplementedError

    def prepare(self, length: int | None, seed: int, settings: Settings) -> Iterator[Batch]:
        """Set up a run: returns its endless training batches (seeded by ``seed``), fixes the test
        and :attr:`time_scale`."""
        raise NotImplementedError

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The training loss of the network's ``outputs`` on ``batch`` (a scalar)."""
        raise NotImplementedError

    def correct(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """``(B,)`` True for each sequence processed correctly."""
        raise NotImplementedError

    def evaluate(self, network: LabNetwork, device: torch.device) -> Evaluation:
        """Test ``network`` (in eval mode) on the test set :meth:`prepare` fixed."""
        raise NotImplementedError

    def solved(self, evaluation: Evaluation, settings: Settings) -> bool:
        """Whether ``evaluation`` meets :meth:`criterion`."""
        raise NotImplementedError


class _TestSetProblem(Problem):
    """A problem with fresh training sequences and a fixed test set of ``settings.test_size``."""

    generate: ClassVar[Callable[[int, int, torch.Generator], Batch]]
    #: the evaluation also reports the mean absolute error of the outputs (adding)
    measures_error: ClassVar[bool] = False

    def prepare(self, length: int | None, seed: int, settings: Settings) -> Iterator[Batch]:
        assert length is not None
        self.time_scale = length + length // 10  # the longest sequence
        generator = torch.Generator().manual_seed(TEST_SEED)
        size = settings.test_size
        chunk = max(1, settings.eval_batch)
        self.test = [type(self).generate(min(chunk, size - start), length, generator) for start in range(0, size, chunk)]
        training = torch.Generator().manual_seed(seed)
        return (type(self).generate(settings.batch_size, length, training) for _ in itertools.count())

    def evaluate(self, network: LabNetwork, device: torch.device) -> Evaluation:
        wrong = total = 0
        errors = 0.0
        with torch.no_grad():
            for batch in self.test:
                batch = batch.to(device)
                outputs = network(batch)
                wrong += int((~self.correct(outputs, batch)).sum())
                total += len(batch)
                if self.measures_error:
                    errors += float((outputs - batch.targets).abs().sum())
        return Evaluation(wrong, total, errors / total if self.measures_error else None)


class Adding(_TestSetProblem):
    """Experiment 4 of 1997 (see :func:`adding_batch`); MSE loss on the last step's one output."""

    name = "adding"
    inputs, outputs = 2, 1
    default_lengths = (50, 100)
    default_budget = 100_000
    generate = staticmethod(adding_batch)
    measures_error = True

    def criterion(self, settings: Settings) -> str:
        return (f"at most {settings.max_wrong} of {settings.test_size} test sequences wrong (|error| >= "
                f"{ADDING_TOLERANCE}) and their mean absolute error below {settings.max_error}")

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return nn.functional.mse_loss(outputs, batch.targets)

    def correct(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return adding_correct(outputs, batch.targets)

    def solved(self, evaluation: Evaluation, settings: Settings) -> bool:
        assert evaluation.mean_error is not None
        return evaluation.wrong <= settings.max_wrong and evaluation.mean_error < settings.max_error


class TemporalOrder(_TestSetProblem):
    """Experiment 6a of 1997 (see :func:`temporal_order_batch`); cross-entropy on the last step's four outputs."""

    name = "temporal-order"
    inputs, outputs = len(TEMPORAL_SYMBOLS), len(TEMPORAL_CLASSES)
    default_lengths = (100,)
    default_budget = 100_000
    generate = staticmethod(temporal_order_batch)

    def criterion(self, settings: Settings) -> str:
        return (f"at most {settings.max_wrong} of {settings.test_size} test sequences wrong (an output off "
                f"by {TEMPORAL_TOLERANCE} or more)")

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs, batch.targets)

    def correct(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return temporal_correct(outputs, batch.targets)

    def solved(self, evaluation: Evaluation, settings: Settings) -> bool:
        return evaluation.wrong <= settings.max_wrong


class _ReberProblem(Problem):
    """Next-symbol prediction: every step's seven outputs against the set of possible next symbols
    (binary cross-entropy per output, summed over the outputs, averaged over the steps)."""

    inputs = outputs = len(REBER_SYMBOLS)
    per_step = True

    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        assert batch.mask is not None
        losses = nn.functional.binary_cross_entropy_with_logits(outputs, batch.targets, reduction="none")  # (B, T, 7)
        return losses.sum(dim=2).masked_select(batch.mask).mean()

    def correct(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        assert batch.mask is not None
        return reber_correct(outputs, batch.targets, batch.mask)


class Reber(_ReberProblem):
    """Experiment 1 of 1997: the embedded Reber grammar, 256 training strings, 256 others to test."""

    name = "reber"
    has_lag = False
    default_lengths = ()
    default_budget = 50_000
    unit = "strings"
    #: the paper's training and test set sizes
    strings = 256

    def criterion(self, settings: Settings) -> str:
        return (f"every next-symbol prediction of the {self.strings} training and {self.strings} other test "
                "strings correct (the possible next symbols the most active outputs)")

    def prepare(self, length: int | None, seed: int, settings: Settings) -> Iterator[Batch]:
        rng = random.Random(seed)
        train = [embedded_reber_string(rng) for _ in range(self.strings)]
        seen = set(train)
        test: list[str] = []
        while len(test) < self.strings:
            string = embedded_reber_string(rng)
            if string not in seen:
                test.append(string)
        self.test = [reber_batch(train), reber_batch(test)]
        self.time_scale = max(len(string) for string in train)

        def batches() -> Iterator[Batch]:
            while True:
                yield reber_batch([rng.choice(train) for _ in range(settings.batch_size)])

        return batches()

    def evaluate(self, network: LabNetwork, device: torch.device) -> Evaluation:
        wrong = total = 0
        with torch.no_grad():
            for batch in self.test:
                batch = batch.to(device)
                wrong += int((~self.correct(network(batch), batch)).sum())
                total += len(batch)
        return Evaluation(wrong, total)

    def solved(self, evaluation: Evaluation, settings: Settings) -> bool:
        return evaluation.wrong == 0


class ContinualReber(_ReberProblem):
    """Gers et al. 2000: streams of embedded Reber strings without a reset; training on streams of
    T symbols from a zero state, the test one long stream."""

    name = "continual-reber"
    default_lengths = (100,)
    default_budget = 50_000
    unit = "streams"

    def criterion(self, settings: Settings) -> str:
        return (f"every next-symbol prediction of one uninterrupted test stream of {settings.stream_symbols:,} "
                "symbols correct (Gers et al. 2000's 10^5 successive symbols)")

    def prepare(self, length: int | None, seed: int, settings: Settings) -> Iterator[Batch]:
        assert length is not None
        self.time_scale = length
        self.test = reber_batch([reber_stream(random.Random(TEST_SEED), settings.stream_symbols)], continual=True)
        rng = random.Random(seed)

        def batches() -> Iterator[Batch]:
            while True:
                yield reber_batch([reber_stream(rng, length) for _ in range(settings.batch_size)], continual=True)

        return batches()

    def evaluate(self, network: LabNetwork, device: torch.device) -> Evaluation:
        with torch.no_grad():
            batch = self.test.to(device)
            assert batch.mask is not None
            steps = reber_steps_correct(network(batch), batch.targets)[0]  # (T,)
        errors = (~steps).nonzero()
        first = int(errors[0, 0]) if len(errors) else steps.numel()
        return Evaluation(int((~steps).sum()), steps.numel(), first_error=first)

    def solved(self, evaluation: Evaluation, settings: Settings) -> bool:
        return evaluation.wrong == 0


#: The lab's problems by name.
PROBLEMS: dict[str, type[Problem]] = {p.name: p for p in (Adding, TemporalOrder, Reber, ContinualReber)}


# ----------------------------------------------------------------------------------------------
# Training


#: Each cell's gate blocks in its bias vectors, as :func:`chrono_init` sees them (``z`` the GRU's
#: update gate of h' = (1 - z) n + z h, in PyTorch's order r z n; the LSTM variants' from
#: :data:`seqtag.modules.lstm_variants.GATES`; ``rnn`` has none).
GATE_LAYOUT: dict[str, str] = {"lstm": "ifgo", "gru": "rzn", "rnn": "", **GATES}


def chrono_init(rnn: nn.Module, cell_name: str, time_scale: float) -> None:
    """Chrono initialisation (Tallec & Ollivier 2018) of ``rnn``'s gate biases, for time lags up to
    ``time_scale``: the gate that keeps the state (forget gate f; the GRU's z) gets bias
    ``b = log(u)``, u uniform in [1, time_scale - 1] per unit (drawn from torch's generator), and
    the input gate i gets ``-b``; so unit j starts remembering for about u_j steps and admitting
    little. ``coupled`` (f = 1 - i) gets i's ``-b`` alone, which is the same; ``nfg`` (f = 1) and
    ``nig`` get only the gate they have; ``rnn`` is left alone. ``bias_hh`` is 0 on those blocks."""
    layout = GATE_LAYOUT[cell_name]
    keep, admit = ("z", "") if cell_name == "gru" else ("f", "i")
    if not layout:
        return
    hidden = rnn.hidden_size
    for name, parameter in rnn.named_parameters():
        if not name.startswith("bias_"):
            continue
        bias = torch.log(1 + torch.rand(hidden) * max(time_scale - 2, 0.0))  # (H,) log U[1, T - 1]
        with torch.no_grad():
            for gate, sign in ((keep, 1.0), (admit, -1.0)):
                if gate and gate in layout:
                    block = layout.index(gate)
                    parameter[block * hidden : (block + 1) * hidden] = sign * bias if name.startswith("bias_ih") else 0.0


class LabNetwork(nn.Module):
    """One recurrent layer of a registry cell and a linear read-out.

    Args:
        cell_name: a key of :data:`seqtag.modules.recurrent.CELLS`.
        inputs / hidden / outputs: the sizes.
        per_step: read out every step ``(B, T, outputs)``, else the last one ``(B, outputs)``
            (squeezed to ``(B,)`` for one output).
        chrono: None: the registry's initialisation alone (``cell.initialize``: forget-gate bias 1
            where there is one); a number T: then :func:`chrono_init` for lags up to T.
    """

    def __init__(self, cell_name: str, inputs: int, hidden: int, outputs: int, per_step: bool,
                 chrono: float | None = None) -> None:
        super().__init__()
        self.kind: RecurrentCell = cell(cell_name)
        self.rnn = self.kind.build(inputs, hidden)
        self.kind.initialize(self.rnn)
        if chrono is not None:
            chrono_init(self.rnn, cell_name, chrono)
        self.head = nn.Linear(hidden, outputs)
        self.per_step = per_step

    def forward(self, batch: Batch) -> torch.Tensor:
        if self.per_step:
            return self.head(self.kind.run(self.rnn, batch.inputs, batch.lengths))  # (B, T, outputs)
        out = self.head(self.kind.final_states(self.rnn, batch.inputs, batch.lengths))  # (B, outputs)
        return out.squeeze(1) if out.size(1) == 1 else out


@dataclass
class Settings:
    """How every run of a lab trains and when it stops (see :func:`build_parser` for each)."""

    hidden: int = 32
    init: str = "chrono"
    lr: float = 1e-2
    batch_size: int = 64
    clip: float = 1.0
    budget: int = 100_000
    eval_every: int = 2_000
    gate: float = 0.05
    test_size: int = 2_000
    eval_batch: int = 500
    max_wrong: int = 20
    max_error: float = 0.01
    stream_symbols: int = 100_000


@dataclass
class RunResult:
    """One (problem, lag, cell, seed) run."""

    problem: str
    length: int | None
    cell: str
    seed: int
    solved: bool
    #: training sequences (strings, streams) seen when it was solved, or when the budget ran out
    sequences: int
    wall_s: float
    #: CPU time of the process (one thread: the core-seconds the run took)
    cpu_s: float
    test_wrong: int
    test_total: int
    test_mean_error: float | None = None
    test_first_error: int | None = None
    final_loss: float | None = None
    tests_run: int = 0


def train_run(problem: Problem, cell_name: str, length: int | None, seed: int, settings: Settings,
              device: torch.device) -> RunResult:
    """Train one network until ``problem`` is solved or ``settings.budget`` sequences are spent.

    Every ``eval_every`` training sequences, when at most ``gate`` of the training sequences since
    the last check were wrong, the test set is run; the run stops when it passes. At the end of the
    budget the test is run once more for the record.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    batches = problem.prepare(length, seed, settings)
    chrono = problem.time_scale if settings.init == "chrono" else None
    network = LabNetwork(cell_name, problem.inputs, settings.hidden, problem.outputs, problem.per_step, chrono).to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.lr)
    seen = since_wrong = since_total = tests = 0
    loss_value = math.nan
    evaluation: Evaluation | None = None
    solved = False
    while seen < settings.budget:
        batch = next(batches).to(device)
        network.train()
        outputs = network(batch)
        loss = problem.loss(outputs, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.clip > 0:
            nn.utils.clip_grad_norm_(network.parameters(), settings.clip)
        optimizer.step()
        loss_value = float(loss.detach())
        seen += len(batch)
        since_wrong += int((~problem.correct(outputs.detach(), batch)).sum())
        since_total += len(batch)
        if since_total >= settings.eval_every or seen >= settings.budget:
            if since_wrong <= settings.gate * since_total or seen >= settings.budget:
                network.eval()
                evaluation = problem.evaluate(network, device)
                tests += 1
                if problem.solved(evaluation, settings):
                    solved = True
                    break
            since_wrong = since_total = 0
    if evaluation is None:  # a budget below one batch
        network.eval()
        evaluation = problem.evaluate(network, device)
        tests += 1
        solved = problem.solved(evaluation, settings)
    return RunResult(problem.name, length, cell_name, seed, solved, seen, round(time.perf_counter() - started, 2),
                     round(time.process_time() - cpu_started, 2), evaluation.wrong, evaluation.total, evaluation.mean_error, evaluation.first_error,
                     None if math.isnan(loss_value) else loss_value, tests)


# ----------------------------------------------------------------------------------------------
# Reports


@dataclass
class Summary:
    """The runs of one (lag, cell)."""

    length: int | None
    cell: str
    runs: int
    solved: int
    median_sequences: float | None
    wall_s: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.solved / self.runs if self.runs else 0.0


def summarize(runs: Sequence[RunResult]) -> list[Summary]:
    """One :class:`Summary` per (lag, cell), in the order the runs first appear."""
    groups: dict[tuple[int | None, str], list[RunResult]] = {}
    for run in runs:
        groups.setdefault((run.length, run.cell), []).append(run)
    summaries = []
    for (length, name), group in groups.items():
        solved = [r.sequences for r in group if r.solved]
        summaries.append(Summary(length, name, len(group), len(solved), statistics.median(solved) if solved else None,
                                 round(sum(r.wall_s for r in group), 1), round(sum(r.cpu_s for r in group), 1)))
    return summaries


def _count(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:g}"


def markdown_table(problem: Problem, runs: Sequence[RunResult]) -> str:
    """Cells as rows, lags as columns; each entry ``solved/runs, median sequences to solve``."""
    summaries = summarize(runs)
    lengths = sorted({s.length for s in summaries}, key=lambda n: -1 if n is None else n)
    cells = list(dict.fromkeys(s.cell for s in summaries))
    index = {(s.length, s.cell): s for s in summaries}
    heads = [f"T = {n}" if n is not None else "solved" for n in lengths]
    lines = ["| cell | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for name in cells:
        entries = []
        for length in lengths:
            s = index.get((length, name))
            if s is None:
                entries.append("not run")
            else:
                median = "" if s.median_sequences is None else f", median {_count(s.median_sequences)}"
                entries.append(f"{s.solved}/{s.runs}{median}")
        lines.append(f"| {name} | " + " | ".join(entries) + " |")
    wall, cpu = sum(r.wall_s for r in runs), sum(r.cpu_s for r in runs)
    lines.append("")
    lines.append(f"Entries: runs solved / runs, and the median number of training {problem.unit} the solved runs "
                 f"needed. {len(runs)} runs, {cpu / 60:.1f} CPU minutes ({wall / 60:.1f} minutes wall) of training "
                 "and testing in all.")
    return "\n".join(lines) + "\n"


def write_plot(problem: Problem, runs: Sequence[RunResult], path: Path) -> None:
    """Success rate against the time lag, one line per cell (bars when there is one lag or none)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    summaries = summarize(runs)
    lengths = sorted({s.length for s in summaries}, key=lambda n: -1 if n is None else n)
    cells = list(dict.fromkeys(s.cell for s in summaries))
    figure, axes = plt.subplots(figsize=(6.4, 4.0))
    if len(lengths) > 1:
        markers, styles = "osD^vP*Xh", ["-", "--", "-.", ":"]
        for i, name in enumerate(cells):
            points = sorted((s.length, s.rate) for s in summaries if s.cell == name and s.length is not None)
            dodge = 1 + 0.025 * (i - (len(cells) - 1) / 2)  # side by side where rates coincide (log axis)
            axes.plot([p[0] * dodge for p in points], [p[1] for p in points], marker=markers[i % len(markers)],
                      linestyle=styles[i % len(styles)], label=name, alpha=0.85)
        axes.set_xscale("log")
        axes.set_xticks(lengths)
        axes.set_xticklabels([str(n) for n in lengths])
        axes.minorticks_off()
        axes.set_xlabel("time lag T (minimal sequence length)")
        axes.legend(fontsize="small")
    else:
        rates = [next((s.rate for s in summaries if s.cell == name), 0.0) for name in cells]
        axes.bar(cells, rates, color="tab:blue")
        axes.set_xlabel("cell" + (f" (T = {lengths[0]})" if lengths and lengths[0] is not None else ""))
    axes.set_ylabel("runs solved (fraction of seeds)")
    axes.set_ylim(-0.05, 1.05)
    axes.set_title(f"{problem.name}: success within the budget")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    temporary.replace(path)


def report(problem: Problem, settings: Settings, runs: Sequence[RunResult], commands: Sequence[str]) -> str:
    """The results in markdown: the commands, the criterion and settings, and :func:`markdown_table`."""
    return (f"# {problem.name}\n\n```\n" + "".join(f"{c}\n" for c in commands) + "```\n\n"
            f"Solved: {problem.criterion(settings)}. Adam lr {settings.lr}, batch {settings.batch_size}, hidden "
            f"{settings.hidden}, {settings.init} initialisation, gradient norm clipped at {settings.clip}, budget "
            f"{settings.budget:,} training {problem.unit}.\n\n" + markdown_table(problem, runs))


def write_reports(problem: Problem, settings: Settings, runs: Sequence[RunResult], commands: Sequence[str],
                  results: Path, plot: Path, markdown: Path | None = None) -> None:
    """The JSON ``results`` (settings, criterion, the commands that made the runs, runs, summaries and
    the :func:`report`), the plot, and the report as a markdown file when ``markdown`` is given."""
    text = report(problem, settings, runs, commands)
    document: dict[str, Any] = {
        "problem": problem.name,
        "commands": list(commands),
        "criterion": problem.criterion(settings),
        "unit": problem.unit,
        "settings": asdict(settings),
        "torch": torch.__version__,
        "runs": [asdict(r) for r in runs],
        "summary": [asdict(s) | {"rate": s.rate} for s in summarize(runs)],
        "report": text,
    }
    atomic_write_text(results, json.dumps(document, indent=1) + "\n")
    if markdown is not None:
        atomic_write_text(markdown, text)
    write_plot(problem, runs, plot)


# ----------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    """The lab's options (``python scripts/long_lag.py --help``)."""
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="long_lag", description="Hochreiter & Schmidhuber's long-time-lag problems for every recurrent cell.")
    parser.add_argument("--problem", choices=list(PROBLEMS), default="adding")
    parser.add_argument("--lengths", type=int, nargs="+", default=None,
                        help="time lags T (adding: 50 100; temporal-order: 100, the paper's; continual-reber: the "
                             "training stream length, 100); reber has none")
    parser.add_argument("--cells", nargs="+", choices=list(CELLS), default=["lstm", "gru", "rnn"],
                        help="registry cells to compare (default: lstm gru rnn; the LSTM variants peephole, coupled, "
                             "nfg, nig, nog and noaf cost several times lstm's fused kernel per batch here)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per (T, cell), seeds first-seed, first-seed + 1, ...")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=None,
                        help="training sequences per run (adding, temporal-order: 100,000; reber, continual-reber: "
                             "50,000)")
    parser.add_argument("--hidden", type=int, default=defaults.hidden)
    parser.add_argument("--init", choices=["chrono", "registry"], default=defaults.init,
                        help="gate biases: the registry's initialisation (forget-gate bias 1), then chrono "
                             "(Tallec & Ollivier 2018) for the problem's longest lag, or the registry's alone")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="Adam's learning rate")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--clip", type=float, default=defaults.clip, help="gradient norm clipping (0: none)")
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every,
                        help="training sequences between checks of the test set")
    parser.add_argument("--gate", type=float, default=defaults.gate,
                        help="run the test only when at most this fraction of the training sequences since the "
                             "last check were wrong")
    parser.add_argument("--test-size", type=int, default=defaults.test_size,
                        help="test sequences (adding, temporal-order)")
    parser.add_argument("--max-wrong", type=int, default=defaults.max_wrong,
                        help="test sequences allowed wrong for solved (adding, temporal-order)")
    parser.add_argument("--max-error", type=float, default=defaults.max_error,
                        help="the adding problem's largest mean absolute test error for solved")
    parser.add_argument("--stream-symbols", type=int, default=defaults.stream_symbols,
                        help="symbols of the continual-reber test stream")
    parser.add_argument("--out", type=Path, default=Path("lab-results"), help="folder of the results, <out>/<name>.json")
    parser.add_argument("--name", default=None, help="file name stem of the results (default: the problem)")
    parser.add_argument("--plot", type=Path, default=None, help="the PNG (default: <out>/<name>.png)")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="also write the report (commands, settings, table) to this markdown file; it is "
                             "printed and stored in the JSON in any case")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in <out>/<name>.json (same settings) and add the missing ones")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads")
    return parser


def _previous_runs(path: Path, problem: Problem, settings: Settings) -> tuple[list[RunResult], list[str]]:
    """The runs and commands already in ``path`` (none when it does not exist); a SeqtagError when
    they were made with other settings."""
    if not path.exists():
        return [], []
    document = json.loads(path.read_text(encoding="utf-8"))
    if document.get("problem") != problem.name or document.get("settings") != asdict(settings):
        raise SeqtagError(f"{path} holds runs of other settings ({document.get('settings')}); "
                          "use another --out or --name, or the same settings")
    return [RunResult(**run) for run in document["runs"]], list(document["commands"])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the lab the command line ``argv`` describes; returns the exit status."""
    args = build_parser().parse_args(argv)
    problem = PROBLEMS[args.problem]()
    settings = Settings(
        hidden=args.hidden, init=args.init, lr=args.lr, batch_size=args.batch_size, clip=args.clip,
        budget=args.budget if args.budget is not None else problem.default_budget, eval_every=args.eval_every,
        gate=args.gate, test_size=args.test_size, max_wrong=args.max_wrong, max_error=args.max_error,
        stream_symbols=args.stream_symbols)
    lengths: list[int | None] = list(args.lengths or problem.default_lengths) if problem.has_lag else [None]
    if not problem.has_lag and args.lengths:
        print(f"{problem.name} has no time lag; --lengths is ignored", file=sys.stderr)
    try:
        if args.seeds < 1 or settings.budget < 1 or settings.batch_size < 1 or settings.hidden < 1:
            raise SeqtagError("--seeds, --budget, --batch-size and --hidden must be at least 1")
        device = resolve_device(args.device)
        set_threads(args.threads)
        name = args.name or problem.name
        results, plot = args.out / f"{name}.json", args.plot or args.out / f"{name}.png"
        command = "python scripts/long_lag.py " + " ".join(argv if argv is not None else sys.argv[1:])
        runs, commands = _previous_runs(results, problem, settings) if args.resume else ([], [])
        done = {(r.length, r.cell, r.seed) for r in runs}
        print(f"{problem.name}: solved = {problem.criterion(settings)}", file=sys.stderr)
        for length in lengths:
            for cell_name in args.cells:
                for seed in range(args.first_seed, args.first_seed + args.seeds):
                    if (length, cell_name, seed) in done:
                        continue
                    if not commands or commands[-1] != command:
                        commands.append(command)  # a command that only rewrote the reports is not recorded
                    result = train_run(problem, cell_name, length, seed, settings, device)
                    runs.append(result)
                    write_reports(problem, settings, runs, commands, results, plot, args.markdown)
                    lag = "" if length is None else f" T={length}"
                    state = "solved" if result.solved else "not solved"
                    print(f"{problem.name}{lag} {cell_name} seed {seed}: {state} after {result.sequences:,} "
                          f"{problem.unit}, test {result.test_wrong}/{result.test_total} wrong"
                          + (f", mean error {result.test_mean_error:.4f}" if result.test_mean_error is not None else "")
                          + f" ({result.wall_s:.0f} s)", file=sys.stderr, flush=True)
        if runs:
            write_reports(problem, settings, runs, commands, results, plot, args.markdown)
            print(report(problem, settings, runs, commands), end="")
    except SeqtagError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0

__all__ = ["PROBLEMS", "Batch", "LabNetwork", "RunResult", "Settings", "adding_batch", "embedded_reber_string",
           "is_embedded_reber", "main", "next_symbol_sets", "reber_batch", "reber_stream",
           "temporal_order_batch", "train_run"]
