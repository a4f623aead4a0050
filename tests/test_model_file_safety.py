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
from safetensors.torch import load as load_safetensors

import seqtag
from seqtag.errors import ArchiveError
from seqtag.io import read_archive
from seqtag.training.checkpoint import load_checkpoint
from tests.conftest import ROOT

COMPAT_TAGGER = ROOT / "tests" / "fixtures" / "compat" / "tagging.seqtag"


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


def _resident_kb(path: Path) -> int:
    """Kilobytes of this process's mappings of ``path`` that are resident (/proc/self/smaps)."""
    total, inside = 0, False
    target = str(path.resolve())
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and ":" not in fields[0]:  # a mapping's header line
            inside = len(fields) >= 6 and " ".join(fields[5:]) == target
        elif inside and fields[:1] == ["Rss:"]:
            total += int(fields[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="reads /proc/self/smaps (Linux)")
def test_mapped_weights_are_checked_then_left_to_the_page_cache(tmp_path):
    """The checksum and finite check read every page of the mapped weights; loading then unmaps
    them from the process (they stay in the page cache), and a tensor read afterwards reads the
    file again: the same values, nothing zeroed."""
    tagger = seqtag.load(COMPAT_TAGGER, device="cpu")
    copy = tagger.task.save(tmp_path / "copy.seqtag")
    content = read_archive(copy)
    assert _resident_kb(copy) == 0
    with zipfile.ZipFile(copy) as archive:
        stored = load_safetensors(archive.read("weights.safetensors"))
    assert stored.keys() == content["tensors"].keys()
    assert all(torch.equal(content["tensors"][name], tensor) for name, tensor in stored.items())
    assert _resident_kb(copy) > 0  # read again, from the file
    again = seqtag.load(copy, device="cpu")
    text = "Peter Blackburn visited the European Commission in Brussels on Monday."
    assert [s.tags for s in again.tag(text)] == [s.tags for s in tagger.tag(text)]
    assert again.task.words.vocab.is_compact  # a loaded word index holds its words compactly


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
def test_the_finiteness_check_is_exact_for_every_float_type(dtype):
    """The check sums each chunk first: values whose sum overflows are still finite, and a NaN
    or infinity anywhere, even in a sum of opposite infinities, is found."""
    from seqtag.io import _all_finite

    big = torch.finfo(dtype).max
    assert _all_finite(torch.full((1000,), big, dtype=dtype), chunk=64)
    assert _all_finite(torch.tensor([big, -big, big], dtype=dtype))
    for poison in ([float("nan")], [float("inf"), float("-inf")], [float("-inf")]):
        values = torch.zeros(1000, dtype=dtype)
        values[700 : 700 + len(poison)] = torch.tensor(poison, dtype=dtype)
        assert not _all_finite(values, chunk=64)
