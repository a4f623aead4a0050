"""torchrun / DistributedDataParallel on the CPU (gloo): the same weights as one process, rank 0 alone
writes, a dead process ends the run, a distributed run resumes (also after a rank was killed), and every
rank leaves cleanly (no gloo thread outlives the run)."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from seqtag.io import read_archive
from seqtag.registry import recipe_from_dict
from seqtag.training.distributed import Processes
from seqtag.training.run import run
from tests.conftest import TINY_RECIPE


def deterministic_recipe(corpus: Path, **training: object) -> dict:
    """The tiny recipe without dropout (each process draws its own masks), one thread per process."""
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(corpus), "label_column": 1}
    recipe["model"]["dropout"] = 0.0
    recipe["model"]["char"]["dropout"] = 0.0
    recipe["training"].update({"max_epochs": 2, "batch_size": 8, "threads": 1, "checkpoint_every_minutes": None,
                               **training})
    return recipe


def torchrun(recipe: Path, output: Path, *extra: str, processes: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes), "--master-port",
            str(29500 + os.getpid() % 1000), "-m", "seqtag.cli", "train", str(recipe), "--output", str(output), *extra]


def run_torchrun(recipe: Path, output: Path, *extra: str) -> subprocess.CompletedProcess:
    """torchrun to the end, once: any failure (a rank's C++ abort at exit included) fails the test."""
    return subprocess.run(torchrun(recipe, output, *extra), capture_output=True, text=True, timeout=300)


def assert_close_weights(a: Path, b: Path) -> None:
    first, second = read_archive(a)["tensors"], read_archive(b)["tensors"]
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], rtol=1e-4, atol=1e-4, msg=name)


def test_shards_split_every_batch_and_keep_every_process_busy() -> None:
    assert Processes(0, 2).shard([5, 1, 4, 2, 3]) == [5, 4, 3]
    assert Processes(1, 2).shard([5, 1, 4, 2, 3]) == [1, 2]
    assert Processes(1, 2).shard([7]) == []


def test_torchrun_gives_the_one_process_weights_and_only_rank_0_writes(tiny_corpus: Path, tmp_path: Path) -> None:
    data = deterministic_recipe(tiny_corpus)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    alone = run(recipe_from_dict(copy.deepcopy(data)), tmp_path / "alone")
    result = run_torchrun(path, tmp_path / "two")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("model: ") == 1  # rank 1 reports nothing
    assert "global batch 8 (about 4 per process)" in result.stderr
    folder = tmp_path / "two"
    files = sorted(p.name for p in folder.iterdir() if p.name != ".seqtag.lock")  # the run's folder lock stays
    assert files == ["checkpoint.zip", "metrics.jsonl", "model.seqtag", "recipe.yaml", "run.json", "training-curves.png"]
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]  # one writer
    assert_close_weights(alone.model_path, folder / "model.seqtag")
    assert records[-1]["dev"]["f1"] == pytest.approx(alone.history[-1]["dev"]["f1"], abs=0.5)


def test_a_distributed_run_resumes(tiny_corpus: Path, tmp_path: Path) -> None:
    """Stopped after epoch 1, resumed under torchrun for epoch 2: the weights of an uninterrupted run."""
    data = deterministic_recipe(tiny_corpus)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    whole = run_torchrun(path, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    first = run_torchrun(path, tmp_path / "parts", "--set", "training.max_epochs=1")
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_torchrun(path, tmp_path / "ignored", "--resume", str(tmp_path / "parts"))
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming" in second.stderr
    assert_close_weights(tmp_path / "whole" / "model.seqtag", tmp_path / "parts" / "model.seqtag")


def _rank_pid(parent: int, rank: int) -> int | None:
    """The worker process of ``rank`` among the descendants of ``parent`` (torchrun)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and "TORCHELASTIC_RUN_ID".encode() in b"\0".join(environ) \
                and int(stat[1]) == parent:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes through /proc")
def test_a_dead_process_ends_the_run_with_a_clear_message(tiny_corpus: Path, tmp_path: Path) -> None:
    data = deterministic_recipe(tiny_corpus, max_epochs=500)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    process = subprocess.Popen(torchrun(path, tmp_path / "run"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "run" / "checkpoint.zip").exists():  # training is under way
            assert process.poll() is None and time.monotonic() < deadline, "training did not start"
            time.sleep(0.1)
        victim = _rank_pid(process.pid, 1)
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = process.communicate(timeout=60)  # bounded: no hang
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode != 0
    assert time.monotonic() - killed < 60
    assert "Root Cause" in stderr and "rank      : 1" in stderr and "SIGKILL" in stderr


def _kill_rank_once_training_is_under_way(process: subprocess.Popen, run_dir: Path, rank: int) -> None:
    """SIGKILL the worker of ``rank`` once epoch 1 is logged and a checkpoint exists."""
    deadline = time.monotonic() + 120
    metrics = run_dir / "metrics.jsonl"
    while not ((run_dir / "checkpoint.zip").exists() and metrics.exists() and metrics.read_text(encoding="utf-8").strip()):
        assert process.poll() is None and time.monotonic() < deadline, "training did not get under way"
        time.sleep(0.05)
    victim = _rank_pid(process.pid, rank)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes through /proc")
def test_a_run_whose_rank_was_killed_resumes_to_the_weights_of_an_uninterrupted_run(tiny_corpus: Path,
                                                                                   tmp_path: Path) -> None:
    """Rank 1 killed mid-run (once epoch 1 is logged; checkpoints every 3 steps, so the last one is
    inside epoch 1 or 2), then ``--resume`` under torchrun: the run continues from rank 0's last
    checkpoint and ends with the weights and the metrics of a run that was never stopped."""
    data = deterministic_recipe(tiny_corpus, max_epochs=5, checkpoint_every_steps=3)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    whole = run_torchrun(path, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]

    parts = tmp_path / "parts"
    process = subprocess.Popen(torchrun(path, parts), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        _kill_rank_once_training_is_under_way(process, parts, rank=1)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode != 0 and "SIGKILL" in stderr, stderr[-3000:]
    assert not (parts / "model.seqtag").exists()  # it really stopped before the end

    resumed = run_torchrun(path, tmp_path / "ignored", "--resume", str(parts))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    where = re.search(r"resuming \S+ after epoch (\d+), step (\d+)", resumed.stderr)
    assert where is not None, resumed.stderr[-3000:]
    epoch, step = int(where.group(1)), int(where.group(2))
    assert (0, 0) < (epoch, step) and epoch < 5  # from a checkpoint inside the run, not from the start
    assert_close_weights(tmp_path / "whole" / "model.seqtag", parts / "model.seqtag")
    epochs = [json.loads(line) for line in (parts / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    reference = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4, 5]
    assert [r["dev"]["f1"] for r in epochs] == pytest.approx([r["dev"]["f1"] for r in reference], abs=1e-6)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="lists the threads of the workers through /proc")
def test_the_process_group_ends_with_the_run(tiny_corpus: Path, tmp_path: Path) -> None:
    """Issue 21: after a distributed run no gloo thread is left (destroy_process_group really ended the
    group), so nothing can free a collective's tensors while the interpreter shuts down."""
    data = deterministic_recipe(tiny_corpus, max_epochs=1)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    script = tmp_path / "threads_after_run.py"
    script.write_text(
        "import os, sys\n"
        "from seqtag.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "names = sorted(open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task'))\n"
        "print(f\"rank {os.environ['RANK']} threads after the run: {names}\", file=sys.stderr)\n"
        "sys.exit(code)\n", encoding="utf-8")
    command = torchrun(path, tmp_path / "run")
    command[command.index("-m", command.index("--master-port")):command.index("seqtag.cli") + 1] = [str(script)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = re.findall(r"rank (\d) threads after the run: (.*)", result.stderr)
    assert sorted(rank for rank, _ in lines) == ["0", "1"], result.stderr[-3000:]
    for _, names in lines:
        assert "gloo" not in names, names
