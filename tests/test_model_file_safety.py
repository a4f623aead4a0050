"""Opening a model file never runs code: pickle payloads in any disguise are refused, unexecuted."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import zipfile
from pathlib import Path

import pytest
import torch

import seqtag
from seqtag.errors import ArchiveError
from seqtag.training.checkpoint import load_checkpoint
from tests.conftest import ROOT


class Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def _members(model: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(model) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_pickle_payloads_are_refused_without_running(tmp_path, tiny_model):
    marker = tmp_path / "payload-ran"
    evil = pickle.dumps({"weights": Payload(marker)})
    assert not marker.exists()
    pickle.loads(evil)  # the payload works: unpickling it does create the marker ...
    assert marker.exists()
    marker.unlink()

    members = _members(tiny_model)
    meta = json.loads(members["meta.json"])
    torch_file = tmp_path / "torch-save.pt"
    torch.save({"state": Payload(marker)}, torch_file)  # torch's own format: a zip with data.pkl inside
    assert not marker.exists()
    hostile = {
        "plain-pickle.seqtag": lambda p: p.write_bytes(evil),
        "torch-save.seqtag": lambda p: p.write_bytes(torch_file.read_bytes()),
        # A seqtag zip whose weights are a pickle, with a matching checksum so only the format check can stop it.
        "pickled-weights.seqtag": lambda p: _zip(p, {**members, "weights.safetensors": evil, "meta.json": json.dumps(
            {**meta, "weights_sha256": hashlib.sha256(evil).hexdigest()}).encode()}),
        "pickled-vocab.seqtag": lambda p: _zip(p, {**members, "vocab.json": evil}),
        "extra-pickle-member.seqtag": lambda p: _zip(p, {**members, "data.pkl": evil}),
    }
    for name, write in hostile.items():
        path = tmp_path / name
        write(path)
        try:
            loaded = seqtag.load(path)
        except ArchiveError as error:
            assert str(path) in str(error)
        else:  # an unknown extra member is ignored, never opened
            assert name == "extra-pickle-member.seqtag" and loaded.tag_tokens(["Oslo"]).tags
        assert not marker.exists(), f"{name}: the payload ran"

    checkpoint = tmp_path / "checkpoint.zip"
    _zip(checkpoint, {"state.json": evil, "tensors.safetensors": evil})
    with pytest.raises(ArchiveError, match="checkpoint"):
        load_checkpoint(checkpoint)
    assert not marker.exists()


def test_no_code_path_can_unpickle():
    """The package never imports pickle nor calls torch.load or np.load with pickles allowed."""
    forbidden = re.compile(r"^\s*(import pickle|from pickle|import dill|import joblib)|torch\.load\(|allow_pickle=True|"
                           r"KeyedVectors\.load\(|pd\.read_pickle", re.MULTILINE)
    offenders = [str(path) for path in (ROOT / "seqtag").rglob("*.py") if forbidden.search(path.read_text(encoding="utf-8"))]
    assert offenders == []
