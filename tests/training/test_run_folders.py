"""A run folder belongs to one run: a second run refuses it (unless --force), a live run locks it,
recipe.yaml is written once, and temporary files of a killed save are cleaned up."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from filelock import FileLock

from seqtag.cli import main
from seqtag.errors import RecipeError
from seqtag.io import read_archive
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
                                          r"recipe.yaml, run.json, training-curves.png\)\. Continue it with --resume .* or replace it with --force"):
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


def test_resume_needs_no_recipe(tiny_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``seqtag train --resume RUN_DIR`` takes the run's own recipe and overrides; a relative data
    folder still resolves against the recipe file the run came from."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    shutil.copytree(tiny_corpus, folder / "corpus")
    recipe = one_epoch(Path("corpus"), max_epochs=3)  # relative to the recipe's folder
    (folder / "tiny.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main(["-q", "train", str(folder / "tiny.yaml"), "-o", str(whole), "--set", "training.lr=0.04"]) == 0
    assert main(["-q", "train", str(folder / "tiny.yaml"), "-o", str(parts), "--set", "training.lr=0.04",
                 "--set", "training.max_epochs=1"]) == 0
    capsys.readouterr()
    assert main(["-q", "train", "--resume", str(parts), "--set", "training.max_epochs=3"]) == 0
    assert "test F1" in capsys.readouterr().out
    first, second = read_archive(whole / "model.seqtag")["tensors"], read_archive(parts / "model.seqtag")["tensors"]
    assert all(torch.equal(first[name], second[name]) for name in first)  # the lr override was kept
    assert main(["-q", "train"]) == 2  # no recipe and no run: one clear error


def test_training_curves_and_tensorboard(tiny_corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    folder = tmp_path / "run"
    run(recipe_from_dict(one_epoch(tiny_corpus, max_epochs=2, loggers=["tensorboard"])), folder)
    assert (folder / "training-curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = list((folder / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder / "tensorboard"))
    accumulator.Reload()
    assert {"loss", "lr", "dev/f1", "test/f1"} <= set(accumulator.Tags()["scalars"])
    assert [event.step for event in accumulator.Scalars("dev/f1")] == [1, 2]
    assert main(["plot", str(folder), str(folder), "-o", str(tmp_path / "both.png")]) == 0
    assert (tmp_path / "both.png").stat().st_size > 10_000


def test_mlflow_logger_offline(tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    folder = tmp_path / "run"
    run(recipe_from_dict(one_epoch(tiny_corpus, max_epochs=2, loggers=["mlflow"])), folder)
    client = mlflow.tracking.MlflowClient((folder / "mlruns").resolve().as_uri())
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    assert runs[0].data.params["training.max_epochs"] == "2"
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "dev.f1")] == [1, 2]
