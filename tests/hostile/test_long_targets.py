"""Hostile target-sentiment input (issue 22): one 100,000-token example took minutes (a GRU read all
of it, step by step, forwards and backwards: over 10 minutes and 2.3 GB for one training epoch).

TD/TC-LSTM now read at most ``MAX_CONTEXT`` tokens per side around the target (the LSTM baseline twice
that), and a target longer than ``MAX_TARGET_TOKENS`` is a DataError; normal examples are read whole.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import seqtag
from seqtag.data.target import MAX_CONTEXT, MAX_TARGET_TOKENS, TargetExample, read_target_file
from seqtag.errors import DataError
from seqtag.registry import recipe_from_dict
from seqtag.tasks.target_sentiment.task import TargetSentimentTask

from .bounded import FIXTURES, assert_result, run_bounded

WORDS = ["is", "great", "and", "bravo", "poor"]


def long_template(size: int, at: int) -> str:
    tokens = [WORDS[i % len(WORDS)] for i in range(size)]
    tokens[at] = "$T$"
    return " ".join(tokens)


def write_corpus(folder: Path, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{s}\n{t}\n{p}\n" for s, t, p in [
        ("$T$ is great", "alpha", "1"), ("$T$ is poor", "bravo", "-1"), ("i met $T$", "alpha", "0"),
        ("$T$ was great today", "bravo", "1"), ("so poor , $T$", "alpha", "-1"), ("$T$ and me", "bravo", "0"),
    ])
    (folder / "train.raw").write_text(lines + extra, encoding="utf-8")
    (folder / "test.raw").write_text(lines, encoding="utf-8")
    return folder


def recipe(folder: Path, architecture: str = "td-lstm", cell: str = "gru") -> dict:
    return {"task": "target-sentiment", "seed": 1, "data": {"dir": str(folder), "dev_fraction": 0},
            "embeddings": {"dim": 8}, "model": {"architecture": architecture, "hidden_size": 12, "cell": cell},
            "training": {"threads": 1, "progress": False}}


@pytest.mark.parametrize("architecture", ["td-lstm", "tc-lstm", "lstm"])
def test_training_and_prediction_on_a_100000_token_example_are_bounded(tmp_path: Path, architecture: str) -> None:
    folder = write_corpus(tmp_path / "corpus", f"{long_template(100_000, 50_000)}\nalpha\n1\n")
    setup = f"""
        from seqtag.registry import recipe_from_dict
        from seqtag.tasks.target_sentiment.task import TargetSentimentTask
        task, splits = TargetSentimentTask.from_recipe(recipe_from_dict({recipe(folder, architecture)!r}))
        long = splits["train"][-1]
    """
    outcome = run_bounded(setup, """
        encoded = task.encode(long)
        task.model.train()
        loss = task.loss(task.batch([task.encode(e) for e in splits["train"]]))
        loss.backward()
        probabilities = task.predict_probabilities([long])
        result = [len(long.tokens), len(encoded.left), len(encoded.right), bool(torch.isfinite(loss).item()),
                  round(float(probabilities.sum()), 4)]
    """)
    left, right = (2 * MAX_CONTEXT, 0) if architecture == "lstm" else (MAX_CONTEXT, MAX_CONTEXT)
    assert assert_result(outcome) == [100_000, left, right, True, 1.0]


def test_the_predictor_reads_a_100000_token_text_in_bounds() -> None:
    setup = f"""
        model = seqtag.load({str(FIXTURES / 'target.seqtag')!r})
        words = {WORDS!r}
        tokens = [words[i % len(words)] for i in range(100_000)]
        tokens[70_000] = "alpha"
    """
    outcome = run_bounded(setup, """
        text = " ".join(tokens)
        prediction = model.predict(text, target="alpha")
        marked = model.predict(text.replace("alpha", "$T$"), target="alpha")
        result = [prediction.label in model.labels, prediction.mentions, marked.probabilities == prediction.probabilities]
    """)
    assert assert_result(outcome) == [True, [[70_000, 70_001]], True]


def test_examples_within_the_window_are_read_whole() -> None:
    example = TargetExample.from_template("i love $T$ but $T$ hates me".split(), ["new", "york"])
    assert example.left_context() == example.left and example.right_context() == example.right
    assert example.window() == example.tokens
    edge = TargetExample.from_template(long_template(2 * MAX_CONTEXT - 1, MAX_CONTEXT - 1).split(), ["x"])
    assert len(edge.left) == len(edge.right) == MAX_CONTEXT
    assert edge.left_context() == edge.left and edge.right_context() == edge.right and edge.window() == edge.tokens


def test_long_examples_are_read_in_a_window_around_the_mentions() -> None:
    example = TargetExample.from_template(long_template(1000, 600).split(), ["x", "y"])  # mention at 600:602
    assert example.left_context() == example.tokens[602 - MAX_CONTEXT : 602]
    assert example.right_context() == example.tokens[600 : 600 + MAX_CONTEXT]
    assert example.window() == example.tokens[600 - MAX_CONTEXT : 600 + MAX_CONTEXT]
    near_end = TargetExample.from_template(long_template(1000, 990).split(), ["x"])
    assert near_end.window() == near_end.tokens[-2 * MAX_CONTEXT :]
    assert near_end.right_context() == near_end.tokens[990:]


def test_a_too_long_target_is_a_data_error_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "long.raw"
    path.write_text(f"fine $T$\nx\n1\n\na $T$ b\n{' '.join(['t'] * (MAX_TARGET_TOKENS + 1))}\n1\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"long.raw:6: the target has {MAX_TARGET_TOKENS + 1} tokens") as caught:
        read_target_file(path)
    assert len(str(caught.value)) < 300


def test_the_predictor_refuses_a_too_long_target_before_searching() -> None:
    model = seqtag.load(FIXTURES / "target.seqtag")
    target = " ".join(["t"] * 100_000)
    with pytest.raises(DataError, match="the target has 100000 tokens") as caught:
        model.predict(target + " is great", target=target)
    assert len(str(caught.value)) < 300
    with pytest.raises(DataError, match=r"does not occur in the sentence 'is great.*\(\d+ characters\)$") as caught:
        model.predict(" ".join(["is great"] * 50_000), target="alpha")
    assert len(str(caught.value)) < 300


def test_a_hand_made_example_with_a_too_long_target_is_a_data_error(tmp_path: Path) -> None:
    task, _ = TargetSentimentTask.from_recipe(recipe_from_dict(recipe(write_corpus(tmp_path / "c"), cell="lstm")))
    target = ["t"] * (MAX_TARGET_TOKENS + 1)
    with pytest.raises(DataError, match="the target has"):
        task.encode(TargetExample(["a", *target], target, [(1, 1 + len(target))]))


def test_reader_messages_about_huge_lines_are_short(tmp_path: Path) -> None:
    path = tmp_path / "huge.raw"
    path.write_text("word " * 200_000 + "\nx\n1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"huge.raw:1: expected a sentence .* found 'word word.*characters\)") as caught:
        read_target_file(path)
    assert len(str(caught.value)) < 300
