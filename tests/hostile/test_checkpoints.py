"""Hostile checkpoints: resuming from a malformed checkpoint.zip gives one clean error, in bounded memory."""

from __future__ import annotations

import copy
import io
import json
import resource
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from seqtag.errors import SeqtagError
from seqtag.registry import recipe_from_dict
from seqtag.training.run import run
from tests.fixtures.compat.make_fixtures import TAGGING, TAGGING_SOURCE

RUN = Path(__file__).resolve().parent.parent / "fixtures" / "compat" / "tagging-run"


def rewrite(folder: Path, state: Callable[[dict], object] | None = None,
            tensors: Callable[[dict[str, torch.Tensor]], None] | None = None, raw_state: bytes | None = None) -> None:
    path = folder / "checkpoint.zip"
    with zipfile.ZipFile(path) as archive:
        content = {name: archive.read(name) for name in archive.namelist()}
    if state is not None:
        data = json.loads(content["state.json"])
        changed = state(data)
        content["state.json"] = json.dumps(data if changed is None else changed).encode()
    if raw_state is not None:
        content["state.json"] = raw_state
    if tensors is not None:
        loaded = dict(load_safetensors(content["tensors.safetensors"]))
        tensors(loaded)
        content["tensors.safetensors"] = save_safetensors(loaded)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in content.items():
            archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())


def bomb(folder: Path) -> None:
    path = folder / "checkpoint.zip"
    with zipfile.ZipFile(path) as archive:
        content = {name: archive.read(name) for name in archive.namelist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("tensors.safetensors", content["tensors.safetensors"])
        with archive.open("state.json", "w", force_zip64=True) as out:
            for _ in range(2**10):
                out.write(b" " * 2**22)  # 4 GB
            out.write(content["state.json"])


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "4 GB state.json (a zip bomb)": (bomb, r"state.json is larger than 128 MB"),
    "no progress": (lambda f: rewrite(f, state=lambda d: d.pop("progress") and None), r"corrupted \(progress: Field required"),
    "state.json a list": (lambda f: rewrite(f, raw_state=b"[1, 2]"), r"not a seqtag checkpoint"),
    "state.json nested deeply": (lambda f: rewrite(f, raw_state=b"[" * 50_000 + b"]" * 50_000), r"nested too deeply"),
    "step past the epoch": (lambda f: rewrite(f, state=lambda d: d["progress"].update(step=10**6)),
                            r"at step 1000000 of epoch 2, but the epoch has \d+ batches"),
    "negative epoch": (lambda f: rewrite(f, state=lambda d: d["progress"].update(epoch=-3)),
                       r"progress.epoch: Input should be greater than or equal to 0"),
    "torch random state of the wrong size": (lambda f: rewrite(f, tensors=lambda t: t.update({"rng.torch": t["rng.torch"][:100]})),
                                             r"random states are corrupted"),
    "python random state garbage": (lambda f: rewrite(f, state=lambda d: d["rng"].update(python=[3, [1, 2], None])),
                                    r"random states are corrupted"),
    "optimizer groups missing": (lambda f: rewrite(f, state=lambda d: d["optimizer"].update(param_groups=[])),
                                 r"does not fit this recipe's model"),
    "weights missing": (lambda f: rewrite(f, tensors=lambda t: [t.pop(k) for k in list(t) if k.startswith("model.")]),
                        r"does not fit this recipe's model"),
    "tensors not safetensors": (lambda f: rewrite(f, tensors=None) or _replace_member(f, "tensors.safetensors", b"junk"),
                                r"tensors cannot be read"),
    "not a zip": (lambda f: (f / "checkpoint.zip").write_bytes(b"PK\x03\x04 broken"), r"not a readable seqtag checkpoint"),
}


def _replace_member(folder: Path, name: str, data: bytes) -> None:
    path = folder / "checkpoint.zip"
    with zipfile.ZipFile(path) as archive:
        content = {n: archive.read(n) for n in archive.namelist()}
    content[name] = data
    with zipfile.ZipFile(path, "w") as archive:
        for n, d in content.items():
            archive.writestr(n, d)


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_checkpoint_gives_one_clean_error(case: str, tmp_path: Path) -> None:
    folder = tmp_path / "run"
    shutil.copytree(RUN, folder)
    make, message = CASES[case]
    make(folder)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SeqtagError, match=message) as caught:
        run(recipe_from_dict(copy.deepcopy(TAGGING), str(TAGGING_SOURCE)), resume=folder)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200  # a bomb never gets unpacked
