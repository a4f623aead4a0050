"""Devices: names resolve or fail clearly, every task's model and batches move between the devices this
machine has (CPU everywhere; CUDA where present) and predict the same there."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch

import seqtag
from seqtag.cli import main
from seqtag.data.batching import to_device
from seqtag.devices import resolve_device
from seqtag.errors import SeqtagError
from seqtag.registry import load_task, recipe_from_dict
from seqtag.training.run import run
from tests.conftest import ROOT, TINY_RECIPE

COMPAT = Path(__file__).resolve().parent / "fixtures" / "compat"
CUDA = torch.cuda.is_available()
TEXT = "George Washington went to Washington. The Acme Group hired Anna Berg in Oslo on Monday!"


def visible_devices() -> list[str]:
    return ["cpu", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]


def test_device_names() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == (torch.device("cuda", 0) if CUDA else resolve_device("auto"))
    with pytest.raises(SeqtagError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not CUDA:
        with pytest.raises(SeqtagError, match="no CUDA GPU .*available: cpu"):
            resolve_device("cuda:1")


def test_recipe_and_cli_check_the_device(tiny_model: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SeqtagError, match="training.device.*unknown device 'gpu'"):
        recipe_from_dict({"task": "tagging", "training": {"device": "gpu"}, "embeddings": {"dim": 4}})
    if not CUDA:
        assert main(["predict", str(tiny_model), str(COMPAT / "target" / "test.raw"), "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err


def _tensors(value: object) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if dataclasses.is_dataclass(value):
        return [t for f in dataclasses.fields(value) for t in _tensors(getattr(value, f.name))]
    if isinstance(value, list):
        return [t for item in value for t in _tensors(item)]
    return []


@pytest.mark.parametrize("name", ["tagging", "target", "trees"])
def test_every_tensor_of_every_batch_moves(name: str) -> None:
    """The ``meta`` device stands in for a GPU: every tensor of a training batch gets there."""
    task, _ = load_task(COMPAT / f"{name}.seqtag")
    files = {"tagging": ROOT / "recipes" / "demo" / "test.txt", "target": COMPAT / "target" / "test.raw",
             "trees": COMPAT / "trees" / "test.txt"}
    examples = task.read_file(task.recipe, files[name])
    batch = task.collate([task.encode(e) for e in examples[:5]])
    moved = to_device(batch, torch.device("meta"))
    tensors = _tensors(moved)
    assert len(tensors) == len(_tensors(batch)) >= 4
    assert all(t.device.type == "meta" for t in tensors)
    assert to_device(batch, torch.device("cpu")) is batch


@pytest.mark.parametrize("device", visible_devices())
def test_every_task_predicts_the_same_on_every_device(device: str) -> None:
    """Model files written on the CPU load on each device and back, with the same predictions."""
    tagger = seqtag.load(COMPAT / "tagging.seqtag", device="cpu")
    moved = seqtag.load(COMPAT / "tagging.seqtag", device=device)
    assert next(moved.task.model.parameters()).device == torch.device(device)
    expected, actual = tagger.tag(TEXT, n_best=2), moved.tag(TEXT, n_best=2)
    assert [s.tags for s in actual] == [s.tags for s in expected]
    for a, b in zip(actual, expected, strict=True):
        assert [t.confidence for t in a.tokens] == pytest.approx([t.confidence for t in b.tokens], abs=1e-5)
    moved.task.to("cpu")
    assert [s.tags for s in moved.tag(TEXT)] == [s.tags for s in expected]

    classifier, on_device = seqtag.load(COMPAT / "target.seqtag", device="cpu"), seqtag.load(COMPAT / "target.seqtag", device=device)
    pairs = [("alpha is great but bravo is awful .", "alpha"), ("i think $T$ was bad , delta was fine today", "carol")]
    for a, b in zip(classifier.predict_batch(pairs), on_device.predict_batch(pairs), strict=True):
        assert a.label == b.label and a.probabilities == pytest.approx(b.probabilities, abs=1e-5)

    trees, on_device_trees = seqtag.load(COMPAT / "trees.seqtag", device="cpu"), seqtag.load(COMPAT / "trees.seqtag", device=device)
    tree = "(3 (2 the) (4 (3 film) (4 great)))"
    a, b = trees.predict(tree), on_device_trees.predict(tree)
    assert a.node_labels == b.node_labels and a.probabilities == pytest.approx(b.probabilities, abs=1e-5)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
def test_a_gpu_trained_model_loads_on_the_cpu(tiny_corpus: Path, tmp_path: Path) -> None:


    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(tiny_corpus), "label_column": 1}
    recipe["training"].update({"device": "cuda", "precision": "bf16", "max_epochs": 2})
    result = run(recipe_from_dict(recipe), tmp_path / "gpu")
    on_cpu, on_gpu = seqtag.load(result.model_path, device="cpu"), seqtag.load(result.model_path, device="cuda")
    assert [s.tags for s in on_cpu.tag(TEXT)] == [s.tags for s in on_gpu.tag(TEXT)]
