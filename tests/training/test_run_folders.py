"""A run folder belongs to one run: a second run refuses it (unless --force), a live run locks it,
recipe.yaml is written once, and temporary files of a killed save are cleaned up."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from filelock import FileLock

from seqtag.cli import main
from seqtag.errors import RecipeError
from seqtag.registry import recipe_from_dict
from seqtag.training.run import LOCK_NAME, run
from tests.conftest import TINY_RECIPE


def one_epoch(corpus: Path, **training: object) -> dict:
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(corpus), "label_column": 1}
    recipe["training"].update({"max_epochs": 1, "threads": 1, **training})
    return recipe


def test_a_second_run_refuses_a_folder_that_holds_a_run(tiny_corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "run"
    first = run(recipe_from_dict(one_epoch(tiny_corpus)), folder)
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    with pytest.raises(RecipeError, match=r"holds a run already \(checkpoint.zip, metrics.jsonl, model.seqtag, "
                                          r"recipe.yaml\)\. Continue it with --resume .* or replace it with --force"):
        run(recipe_from_dict(one_epoch(tiny_corpus, lr=0.5)), folder)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before  # nothing touched
    replaced = run(recipe_from_dict(one_epoch(tiny_corpus, lr=0.5)), folder, force=True)
    assert replaced.model_path == first.model_path
    assert "lr: 0.5" in (folder / "recipe.yaml").read_text(encoding="utf-8")


def test_the_cli_says_how_to_go_on(tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(one_epoch(tiny_corpus)), encoding="utf-8")
    assert main(["-q", "train", str(recipe), "-o", str(tmp_path / "run")]) == 0
    assert main(["-q", "train", str(recipe), "-o", str(tmp_path / "run")]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["-q", "train", str(recipe), "-o", str(tmp_path / "run"), "--force"]) == 0


def test_a_live_run_locks_its_folder(tiny_corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    with FileLock(folder / LOCK_NAME, timeout=0):  # another process's run holds it
        with pytest.raises(RecipeError, match="another seqtag run is using this folder"):
            run(recipe_from_dict(one_epoch(tiny_corpus)), folder)
    assert not (folder / "recipe.yaml").exists()
    run(recipe_from_dict(one_epoch(tiny_corpus)), folder)  # free again


def test_resume_keeps_the_recipe_the_run_started_with_and_removes_stale_temporaries(
    tiny_corpus: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "run"
    run(recipe_from_dict(one_epoch(tiny_corpus)), folder)
    written = (folder / "recipe.yaml").read_text(encoding="utf-8")
    stale = folder / ".model.seqtag.x1y2z3.tmp"
    stale.write_bytes(b"half a model")
    run(recipe_from_dict(one_epoch(tiny_corpus, max_epochs=2)), resume=folder)
    assert (folder / "recipe.yaml").read_text(encoding="utf-8") == written
    assert not stale.exists()
