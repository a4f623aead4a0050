"""``training.refit``: choose the number of epochs on dev, then train on train + dev."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest
import torch

from seqtag.cli import main
from seqtag.io import read_archive
from seqtag.registry import recipe_from_dict
from seqtag.training.run import run
from tests.conftest import TINY_RECIPE, interrupt_in_epoch, write_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny NER corpus, with a word ("Zanzibar") that only the dev file has."""
    folder = tmp_path_factory.mktemp("refit-corpus")
    write_corpus(folder / "train.txt", 60, seed=1)
    write_corpus(folder / "valid.txt", 20, seed=2)
    with open(folder / "valid.txt", "a", encoding="utf-8") as out:
        out.write("Zanzibar B-LOC\nwelcomes O\nfans O\n. O\n\n")
    write_corpus(folder / "test.txt", 20, seed=3)
    return folder


def recipe(corpus: Path, **training: object) -> dict:
    data = copy.deepcopy(TINY_RECIPE)
    data["data"] = {"dir": str(corpus), "label_column": 1}
    data["training"].update({"max_epochs": 4, "threads": 1, "refit": True, **training})
    return data


def weights(path: Path) -> dict[str, torch.Tensor]:
    return read_archive(path)["tensors"]


def test_refit_trains_on_train_and_dev_for_the_chosen_epochs(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(recipe_from_dict(recipe(corpus)), tmp_path / "refit")
    selection = result.selection
    assert selection is not None and selection.best_dev is not None
    assert result.best_epoch == selection.best_epoch and 1 <= result.best_epoch <= 4
    assert result.best_dev == selection.best_dev and result.test is not None
    assert len(result.history) == result.best_epoch  # the refit ran exactly the chosen epochs
    assert all("dev" not in record for record in result.history)
    summary = json.loads((tmp_path / "refit" / "selection" / "selection.json").read_text())
    assert summary["best_epoch"] == result.best_epoch and summary["test"] == selection.test
    assert (tmp_path / "refit" / "selection" / "model.seqtag").exists()
    stored = read_archive(result.model_path)["metrics"]["refit"]
    assert stored == {"epochs": result.best_epoch, "dev": selection.best_dev, "early_stopped_test": selection.test}
    assert main(["info", str(result.model_path)]) == 0
    assert f"refit on train + dev for the {result.best_epoch} epochs chosen on dev; dev F1" in capsys.readouterr().out
    assert not (tmp_path / "refit" / "selection" / "checkpoint.zip").exists()

    refit_words = read_archive(result.model_path)["vocab"]["words"]
    selection_words = read_archive(tmp_path / "refit" / "selection" / "model.seqtag")["vocab"]["words"]
    assert "Zanzibar" in json.dumps(refit_words) and "Zanzibar" not in json.dumps(selection_words)

    # The same as training on both files by hand for that many epochs: same seed, same weights.
    by_hand = recipe(corpus, refit=False, max_epochs=result.best_epoch)
    by_hand["data"].update({"train": ["train.txt", "valid.txt"], "dev": None})
    manual = run(recipe_from_dict(by_hand), tmp_path / "by-hand")
    assert manual.test == result.test
    expected, got = weights(manual.model_path), weights(result.model_path)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[name], got[name]) for name in expected)


@pytest.mark.parametrize("stop_at", [2, 6], ids=["in-selection", "in-refit"])
def test_refit_resumes_either_stage(corpus: Path, tmp_path: Path, stop_at: int) -> None:
    """Ctrl-C in the selection run (2nd epoch) or in the refit (its 2nd epoch: the selection
    runs all 4 epochs) and --resume end with the weights of an uninterrupted run."""
    data = recipe(corpus, patience=None)
    whole = run(recipe_from_dict(data), tmp_path / "whole")
    assert whole.best_epoch >= 2, "the refit must last two epochs for this test"

    interrupt_in_epoch(recipe_from_dict(data), tmp_path / "cut", epoch=stop_at)
    selection_done = (tmp_path / "cut" / "selection" / "selection.json").exists()
    assert selection_done == (stop_at > 4) and (tmp_path / "cut" / "checkpoint.zip").exists() == selection_done
    resumed = run(recipe_from_dict(data), resume=tmp_path / "cut")
    assert resumed.best_epoch == whole.best_epoch and resumed.test == whole.test
    expected, got = weights(whole.model_path), weights(resumed.model_path)
    assert all(torch.equal(expected[name], got[name]) for name in expected)


def test_refit_without_dev_warns_and_trains_as_usual(corpus: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = recipe(corpus, max_epochs=2)
    data["data"]["dev"] = None
    with caplog.at_level(logging.WARNING, logger="seqtag.training.run"):
        result = run(recipe_from_dict(data), tmp_path / "no-dev")
    assert "no dev split" in caplog.text
    assert result.selection is None and len(result.history) == 2
    assert not (tmp_path / "no-dev" / "selection").exists()
