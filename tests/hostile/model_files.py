"""Malformed model files, made from a good one (tests/fixtures/compat/tagging.seqtag), for the hostile suite.

Each case is a function ``(good members, folder) -> path`` writing one file; :data:`CASES`
maps a case name to it and to the message seqtag must give. ``python model_files.py OUT``
loads every case in this process and prints one JSON line per case (message, seconds),
so the test can bound the memory of all of them at once.
"""

from __future__ import annotations

import hashlib
import io
import json
import resource
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from seqtag.api import load
from seqtag.io import _alignment_padding

GOOD = Path(__file__).resolve().parent.parent / "fixtures" / "compat" / "tagging.seqtag"


def members(path: Path = GOOD) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write(path: Path, content: dict[str, bytes], fix_checksum: bool = True, mapped: bool = False) -> Path:
    """A zip of ``content``; the weights checksum in meta.json made to fit the weights. With ``mapped``
    the weights are stored aligned, as seqtag writes them, so loading maps them in place."""
    content = dict(content)
    if fix_checksum and "meta.json" in content and "weights.safetensors" in content:
        try:
            meta = json.loads(content["meta.json"])
            meta["weights_sha256"] = hashlib.sha256(content["weights.safetensors"]).hexdigest()
            content["meta.json"] = json.dumps(meta).encode()
        except (ValueError, RecursionError, TypeError):  # a broken meta.json stays as broken as it is
            pass
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in content.items():
            if mapped and name == "weights.safetensors":
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_STORED
                info.extra = _alignment_padding(buffer.tell(), info)
                archive.writestr(info, data)
            else:
                archive.writestr(name, data)
    path.write_bytes(buffer.getvalue())
    return path


def edited_json(name: str, change: Callable[[dict], object]) -> Callable[[dict[str, bytes], Path], Path]:
    def make(good: dict[str, bytes], folder: Path) -> Path:
        data = json.loads(good[name])
        changed = change(data)
        raw = changed if isinstance(changed, bytes) else json.dumps(data if changed is None else changed).encode()
        return write(folder / f"{name}.seqtag", {**good, name: raw})
    return make


def edited_tensors(change: Callable[[dict[str, torch.Tensor]], None], label: str) -> Callable[[dict[str, bytes], Path], Path]:
    def make(good: dict[str, bytes], folder: Path) -> Path:
        tensors = {k: v.clone() for k, v in load_safetensors(good["weights.safetensors"]).items()}
        change(tensors)
        return write(folder / f"{label}.seqtag", {**good, "weights.safetensors": save_safetensors(tensors)})
    return make


def raw_weights(change: Callable[[dict, bytes], tuple[dict, bytes] | bytes], label: str) -> Callable[[dict[str, bytes], Path], Path]:
    """The weights' safetensors header (a dict) and data changed by ``change``, which returns both
    (the header is written back with a consistent length) or the whole raw member; stored aligned."""
    def make(good: dict[str, bytes], folder: Path) -> Path:
        raw = good["weights.safetensors"]
        size = int.from_bytes(raw[:8], "little")
        changed = change(json.loads(raw[8 : 8 + size]), raw[8 + size :])
        if isinstance(changed, tuple):
            header = json.dumps(changed[0]).encode()
            header += b" " * (-len(header) % 8)
            changed = len(header).to_bytes(8, "little") + header + changed[1]
        return write(folder / f"{label}.seqtag", {**good, "weights.safetensors": changed}, mapped=True)
    return make


def first_tensor(key: str, value: object) -> Callable[[dict, bytes], tuple[dict, bytes]]:
    def change(header: dict, data: bytes) -> tuple[dict, bytes]:
        name = next(k for k in header if k != "__metadata__")
        header[name][key] = value
        return header, data
    return change


def nan_in_first_float32(header: dict, data: bytes) -> tuple[dict, bytes]:
    name = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32" and v["shape"])
    start = header[name]["data_offsets"][0]
    return header, data[:start] + b"\x00\x00\xc0\x7f" + data[start + 4 :]


def padded(good: dict[str, bytes], name: str, spaces: int, path: Path) -> Path:
    """The good file with ``spaces`` spaces before member ``name``'s JSON, written in chunks (a few
    hundred KB on disk, whatever it unpacks to)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in good.items():
            if member != name:
                archive.writestr(member, data)
        with archive.open(name, "w", force_zip64=True) as out:
            chunk = b" " * 2**22
            for _ in range(spaces // len(chunk)):
                out.write(chunk)
            out.write(good[name])
    return path


def zip_bomb(good: dict[str, bytes], folder: Path) -> Path:
    """meta.json that unpacks to 4 GB of spaces before the real object."""
    return padded(good, "meta.json", 2**32, folder / "bomb.seqtag")


def big_vocabulary(good: dict[str, bytes], folder: Path) -> Path:
    """A vocab.json that unpacks to 516 MB."""
    return padded(good, "vocab.json", 2**29 + 2**22, folder / "big.seqtag")


def no_checksum(good: dict[str, bytes], folder: Path) -> Path:
    meta = {k: v for k, v in json.loads(good["meta.json"]).items() if k != "weights_sha256"}
    return write(folder / "no-checksum.seqtag", {**good, "meta.json": json.dumps(meta).encode()}, fix_checksum=False)


def nested(depth: int) -> Callable[[dict], object]:
    return lambda data: b"[" * depth + b"]" * depth


def set_path(keys: list[str], value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        node = data
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return change


def poison(name: str, value: float) -> Callable[[dict[str, torch.Tensor]], None]:
    def change(tensors: dict[str, torch.Tensor]) -> None:
        tensors[name].view(-1)[0] = value
    return change


def retype(name: str, dtype: torch.dtype) -> Callable[[dict[str, torch.Tensor]], None]:
    def change(tensors: dict[str, torch.Tensor]) -> None:
        tensors[name] = tensors[name].to(dtype)
    return change


#: case name -> (maker, a regular expression the one-line message must match)
CASES: dict[str, tuple[Callable[[dict[str, bytes], Path], Path], str]] = {
    "zip-bombed meta.json": (zip_bomb, r"meta.json is larger than 64 KB; not a model file seqtag wrote"),
    "vocab.json of 513 MB": (big_vocabulary, r"vocab.json is larger than 512 MB"),
    "meta.json nested 30,000 deep": (edited_json("meta.json", nested(30_000)), r"meta.json is corrupted \(nested too deeply\)"),
    "vocab.json nested 100,000 deep": (edited_json("vocab.json", nested(100_000)), r"vocab.json is corrupted \(nested too deeply\)"),
    "vocab.json a list": (edited_json("vocab.json", lambda data: [1, 2]), r"vocab.json is corrupted \(a JSON object expected"),
    "metrics.json a string": (edited_json("metrics.json", lambda data: "x" * 10**6), r"metrics.json is corrupted \(a JSON object"),
    "meta.json without a checksum": (no_checksum, r"meta.json is corrupted \(weights_sha256: Field required"),
    "hidden_size 8000": (edited_json("recipe.json", set_path(["model", "encoder", "hidden_size"], 8000)),
                         r"encoder.weight_ih_l0 is torch.float32 \(48, .*need torch.float32 \(32000, "),
    "20,000 layers": (edited_json("recipe.json", set_path(["model", "encoder", "num_layers"], 20_000)),
                      r"model.encoder.num_layers: Input should be less than or equal to 64"),
    "10 million training words": (edited_json("vocab.json", set_path(["num_trainable_words"], 10**7)),
                                  r"num_trainable_words is 10000000, not between 2 and the 938 words"),
    "10 million words": (edited_json("vocab.json", lambda data: data["words"]["items"].extend(map(str, range(10**6)))),
                         r"words.frozen is torch.float(?:16|32) \(0, 12\), .* needs? torch.float32 \(\d{6}, 12\)"),
    "a word that is not a string": (edited_json("vocab.json", lambda data: data["words"]["items"].__setitem__(5, 17)),
                                    r"inconsistent model file \(TypeError: a word list holds strings, not int\)"),
    "a word twice": (edited_json("vocab.json", lambda data: data["words"]["items"].__setitem__(5, data["words"]["items"][4])),
                     r"num_trainable_words is 938, not between 2 and the 937 words"),  # kept once, as always
    "task disagrees with the recipe": (edited_json("meta.json", set_path(["task"], "tree-sentiment")),
                                       r"meta.json says task 'tree-sentiment', recipe.json is a 'tagging' recipe"),
    "unknown task": (edited_json("meta.json", set_path(["task"], "x" * 10_000)), r"unknown task 'xxxx.*characters\)"),
    "NaN weight": (edited_tensors(poison("emissions.weight", float("nan")), "nan"), r"emissions.weight holds NaN or infinite"),
    "infinite weight": (edited_tensors(poison("crf.transitions", float("inf")), "inf"), r"crf.transitions holds NaN or infinite"),
    "int64 weight": (edited_tensors(retype("emissions.weight", torch.int64), "int64"),
                     r"emissions.weight is torch.int64 .* need torch.float32"),
    "bool mask stored as float": (edited_tensors(retype("replaceable", torch.float32), "float-mask"),
                                  r"replaceable is torch.float32 .* need torch.bool"),
    "missing tensor": (edited_tensors(lambda t: t.pop("crf.transitions"), "missing"), r"1 tensor\(s\) missing \(crf.transitions\)"),
    "mapped weights: header length beyond the file": (raw_weights(lambda h, d: (2**40).to_bytes(8, "little") + d, "hlen"),
                                                      r"weights cannot be read \(header larger than the file\)"),
    "mapped weights: data outside the file": (raw_weights(first_tensor("data_offsets", [0, 10**12]), "offsets"),
                                              r"weights cannot be read \(tensor .* data outside the file\)"),
    "mapped weights: shape and size disagree": (raw_weights(first_tensor("shape", [10**9, 10**9]), "shape"),
                                                r"weights cannot be read \(tensor .* shape and data size disagree\)"),
    "mapped weights: unknown dtype": (raw_weights(first_tensor("dtype", "F8_E9"), "dtype"),
                                      r"weights cannot be read \(tensor .* unknown dtype\)"),
    "mapped weights: header not JSON": (raw_weights(lambda h, d: (16).to_bytes(8, "little") + b"\xff" * 16 + d, "json"),
                                        r"weights cannot be read"),
    "mapped weights: NaN": (raw_weights(nan_in_first_float32, "nan-mapped"), r"holds NaN or infinite values"),
}


def run_all(folder: Path) -> None:
    """Load every case in this process; one JSON line each: name, error type, message, seconds."""
    good = members()
    for name, (make, _) in CASES.items():
        path = make(good, folder)
        started = time.perf_counter()
        try:
            load(path, device="cpu")
            outcome = {"error": None, "message": "loaded"}
        except Exception as error:  # the test checks that it is a SeqtagError
            outcome = {"error": type(error).__name__, "mro": [c.__name__ for c in type(error).__mro__],
                       "message": str(error)}
        outcome.update({"case": name, "seconds": time.perf_counter() - started})
        print(json.dumps(outcome), flush=True)
        path.unlink()
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)
    run_all(Path(sys.argv[1]))
