"""Silent mistakes get a warning: a declared scheme the data contradicts, swapped word and label
columns, gold labels the model never saw."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import seqtag
from seqtag.registry import recipe_from_dict
from seqtag.tasks.tagging.task import TaggingTask

from .conftest import ROOT

DEMO = ROOT / "recipes" / "demo"


def recipe(folder: Path, **data: object) -> object:
    return recipe_from_dict({"task": "tagging", "data": {"dir": str(folder), "dev": None, "test": None, **data},
                             "embeddings": {"dim": 8}})


def test_a_declared_scheme_the_data_contradicts(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        TaggingTask.from_recipe(recipe(DEMO, scheme="iob1"))
    assert "data.scheme says IOB1, but the training tags look like IOB2" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        TaggingTask.from_recipe(recipe(DEMO, scheme="iob2"))
    assert caplog.text == ""


def test_swapped_columns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = (DEMO / "train.txt").read_text(encoding="utf-8").splitlines()
    (tmp_path / "train.txt").write_text("\n".join(" ".join(reversed(line.split())) for line in lines) + "\n",
                                        encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        TaggingTask.from_recipe(recipe(tmp_path, scheme="none"))
    assert "are data.word_column and data.label_column swapped?" in caplog.text


def test_gold_labels_the_model_never_saw(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gold = tmp_path / "gold.txt"
    gold.write_text("Anna B-PER\nBerg I-PER\nflies O\nAirbus B-PRODUCT\n\n", encoding="utf-8")
    tagger = seqtag.load(ROOT / "tests" / "fixtures" / "compat" / "tagging.seqtag", device="cpu")
    with caplog.at_level(logging.WARNING):
        tagger.evaluate_file(gold)
    assert "labels the model never saw in training, so it cannot predict them: PRODUCT (1)" in caplog.text
