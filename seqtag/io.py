"""Writing files safely, and model files: one zip holding JSON and safetensors, never pickle.

This module knows no task: it stores and returns a task's name, recipe, vocabularies and
weights as given (seqtag.registry turns them back into a task).

Layout of ``model.seqtag``::

    meta.json            format name and version, seqtag version, task, weights checksum
    recipe.json          the fully resolved recipe
    vocab.json           vocabularies and whatever else the task needs to rebuild itself
    weights.safetensors  the model's tensors
    metrics.json         training history and final scores

Loading parses JSON and safetensors only, so opening a file runs no code
from it. Files are written to a temporary name and renamed, so a crash
never leaves a half-written model behind.

PyTorch (with safetensors' PyTorch module) and pydantic are imported by the functions that need
them: writing files, reading the JSON members and the weights' bytes (:func:`read_raw`,
:func:`safetensors_index`, :func:`stored_array`) need neither, so the PyTorch-free prediction path
(:mod:`seqtag.tasks.tagging.lite`) reads model files with this module.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import mmap
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from seqtag.errors import ArchiveError, shorten
from seqtag.version import __version__

if TYPE_CHECKING:
    import numpy as np
    import torch
    from pydantic import BaseModel

FORMAT = "seqtag-model"
FORMAT_VERSION = 1
MEMBERS = ("meta.json", "recipe.json", "vocab.json", "weights.safetensors", "metrics.json")
#: The most bytes each member may unpack to (far above what any model needs; a guard against zip bombs).
MEMBER_LIMITS = {"meta.json": 2**16, "recipe.json": 2**20, "vocab.json": 2**29, "metrics.json": 2**26,
                 "weights.safetensors": 2**34}
# Float tensors stored in half precision (big, frozen tables) are listed in meta.json.
HALF_PRECISION_SUFFIXES = ("words.frozen",)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """A file to write ``path`` through: a temporary file in the same folder, renamed to ``path``
    when the block ends without an error (removed when it fails), so readers never see a
    half-written file. ``mode`` is ``"wb"`` or ``"w"`` (UTF-8 text)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files :func:`atomic_open` left in ``folder`` when a process was killed
    while writing (``.NAME.*.tmp``); returns them. Call it only while no other process writes there."""
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "wb") as out:
        out.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w") as out:
        out.write(text)


def write_model_file(
    path: str | Path,
    task: str,
    recipe: dict[str, Any],
    vocab: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    metrics: dict[str, Any] | None = None,
) -> Path:
    """Write one model file: the task's name, its resolved recipe and vocabularies (JSON), its
    weights (safetensors; big frozen tables in half precision) and ``metrics``."""
    from safetensors.torch import save as save_safetensors

    state = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    halved = [name for name in state if name.endswith(HALF_PRECISION_SUFFIXES) and state[name].is_floating_point()]
    for name in halved:
        state[name] = state[name].half()
    weights = save_safetensors(state)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "seqtag_version": __version__,
        "task": task,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "half_precision": halved,
    }
    files = {
        "meta.json": json.dumps(meta, indent=2),
        "recipe.json": json.dumps(recipe, indent=2),
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        "metrics.json": json.dumps(metrics or {}, indent=2),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        info = zipfile.ZipInfo("weights.safetensors")
        info.compress_type = zipfile.ZIP_STORED
        info.extra = _alignment_padding(buffer.tell(), info)
        archive.writestr(info, weights)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


#: The weights of a model file start at a multiple of this many bytes of the file, so that they can
#: be memory-mapped as tensors in place.
WEIGHTS_ALIGNMENT = 64
_PADDING_FIELD = 0xD935  # the zip extra-field id zipalign uses for padding; zip readers skip it


def _alignment_padding(header_offset: int, info: zipfile.ZipInfo) -> bytes:
    """An extra field that makes a stored member's data (after its 30-byte local header, its name
    and this field) start at a multiple of :data:`WEIGHTS_ALIGNMENT`."""
    start = header_offset + 30 + len(info.filename.encode("utf-8")) + 4
    size = -start % WEIGHTS_ALIGNMENT
    return _PADDING_FIELD.to_bytes(2, "little") + size.to_bytes(2, "little") + bytes(size)


#: safetensors dtype name -> (numpy dtype, None for bfloat16, which numpy lacks; PyTorch dtype name; bytes a value).
SAFETENSORS_DTYPES: dict[str, tuple[str | None, str, int]] = {
    "F64": ("<f8", "float64", 8), "F32": ("<f4", "float32", 4), "F16": ("<f2", "float16", 2),
    "BF16": (None, "bfloat16", 2), "I64": ("<i8", "int64", 8), "I32": ("<i4", "int32", 4), "I16": ("<i2", "int16", 2),
    "I8": ("i1", "int8", 1), "U8": ("u1", "uint8", 1), "BOOL": ("?", "bool", 1),
}


def _mapped_member(path: Path, archive: zipfile.ZipFile, name: str) -> memoryview | None:
    """Member ``name`` as a copy-on-write memory map of the file, when it is stored uncompressed and
    aligned (what :func:`write_model_file` writes); None otherwise (older files: read as bytes)."""
    info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED or info.file_size > MEMBER_LIMITS[name]:
        return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        local = handle.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            return None
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
        if start % WEIGHTS_ALIGNMENT or start + info.file_size > os.fstat(handle.fileno()).st_size:
            return None
        if info.file_size == 0:
            return memoryview(b"")
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)  # writable, private, paged in on use
    return memoryview(mapped)[start : start + info.file_size]


def _drop_pages(view: memoryview) -> None:
    """Unmap the resident pages of a memory-mapped member from this process, keeping the mapping
    (``MADV_DONTNEED``; Linux only). The checksum and the finite check read every page, and only
    those the model reads later (the rows prediction looks up) need to be resident. Nothing has
    written to the copy-on-write mapping yet, so every page is a clean copy of the file: the next
    access reads it again from the page cache, where the other processes of a worker pool share it.
    """
    mapped = view.obj
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if isinstance(mapped, mmap.mmap) and advice is not None and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, ValueError):
            mapped.madvise(advice)


@dataclass(frozen=True)
class StoredTensor:
    """Where a tensor of a safetensors buffer is: its bytes ``[start, end)``, its shape and its dtype
    (a key of :data:`SAFETENSORS_DTYPES`)."""

    start: int
    end: int
    shape: tuple[int, ...]
    dtype: str


def safetensors_index(data: memoryview) -> dict[str, StoredTensor]:
    """Where each tensor of safetensors ``data`` is, every entry checked against the buffer. ValueError
    (RecursionError, UnicodeDecodeError for a broken header) for anything that is not well-formed
    safetensors of the dtypes of :data:`SAFETENSORS_DTYPES`."""
    if len(data) < 8:
        raise ValueError("too short")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8 or size > 2**26:
        raise ValueError("header larger than the file")
    header = json.loads(bytes(data[8 : 8 + size]).decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    body = 8 + size
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(spec, dict) or spec.get("dtype") not in SAFETENSORS_DTYPES:
            raise ValueError(f"tensor {shorten(name, 60)}: unknown dtype")
        shape, offsets = spec.get("shape"), spec.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(n, int) and 0 <= n < 2**40 for n in shape):
            raise ValueError(f"tensor {shorten(name, 60)}: bad shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(n, int) for n in offsets)
                and 0 <= offsets[0] <= offsets[1] <= len(data) - body):
            raise ValueError(f"tensor {shorten(name, 60)}: data outside the file")
        if math.prod(shape) * SAFETENSORS_DTYPES[spec["dtype"]][2] != offsets[1] - offsets[0]:
            raise ValueError(f"tensor {shorten(name, 60)}: shape and data size disagree")
        tensors[name] = StoredTensor(body + offsets[0], body + offsets[1], tuple(shape), spec["dtype"])
    return tensors


def stored_array(data: memoryview, tensor: StoredTensor) -> np.ndarray:
    """Tensor ``tensor`` of safetensors ``data`` (:func:`safetensors_index`) as a numpy view of its bytes (no
    copy: read-only where ``data`` is); ValueError for bfloat16, which numpy lacks."""
    import numpy as np

    dtype = SAFETENSORS_DTYPES[tensor.dtype][0]
    if dtype is None:
        raise ValueError(f"numpy has no {SAFETENSORS_DTYPES[tensor.dtype][1]}")
    return np.frombuffer(data[tensor.start : tensor.end], dtype=dtype).reshape(tensor.shape)


def _tensors_in_place(data: memoryview) -> dict[str, torch.Tensor]:
    """The tensors of safetensors ``data`` as views of it (no copy; a misaligned tensor is copied).
    ValueError for anything that is not well-formed safetensors (:func:`safetensors_index`)."""
    import torch

    tensors = {}
    for name, stored in safetensors_index(data).items():
        dtype, itemsize = getattr(torch, SAFETENSORS_DTYPES[stored.dtype][1]), SAFETENSORS_DTYPES[stored.dtype][2]
        shape, count = list(stored.shape), math.prod(stored.shape)
        if count == 0:
            tensor = torch.empty(shape, dtype=dtype)
        else:
            tensor = torch.frombuffer(data, dtype=dtype, count=count, offset=stored.start).view(shape)
            if stored.start % itemsize:
                tensor = tensor.clone()
        tensors[name] = tensor
    return tensors


def _all_finite(tensor: torch.Tensor, chunk: int = 1 << 18, after_chunk: Callable[[], None] = lambda: None) -> bool:
    """Whether a floating-point tensor holds no NaN or infinity, checked in chunks of 256K values
    (temporaries of at most 2 MB, not of the tensor's size); ``after_chunk`` runs after each.

    A chunk's sum, accumulated in float64, is finite exactly when every value is unless
    finite values overflow it (float64 values near its limit): only then are the values
    tested one by one. The sum is ten times faster than ``isfinite`` on every value, which
    matters for the start-up of every command that opens a model."""
    import torch

    flat = tensor.reshape(-1)
    for start in range(0, flat.numel(), chunk):
        values = flat[start : start + chunk]
        finite = math.isfinite(float(values.sum(dtype=torch.float64))) or bool(torch.isfinite(values).all())
        after_chunk()
        if not finite:
            return False
    return True


def sha256_of(data: memoryview, after_chunk: Callable[[], None] = lambda: None, chunk: int = 1 << 22) -> str:
    """The SHA-256 of ``data`` (hex), read in chunks of 4 MB; ``after_chunk`` runs after each."""
    digest = hashlib.sha256()
    for start in range(0, len(data), chunk):
        digest.update(data[start : start + chunk])
        after_chunk()
    return digest.hexdigest()


@functools.cache
def _model_meta() -> type[BaseModel]:
    """:class:`ModelMeta`, made when first used (pydantic is imported then)."""
    from pydantic import BaseModel, ConfigDict

    class ModelMeta(BaseModel):
        """``meta.json`` of a model file (other keys are kept: later versions may add some)."""

        model_config = ConfigDict(extra="allow")

        format: str
        format_version: int
        seqtag_version: str = "?"
        task: str
        weights_sha256: str
        half_precision: list[str] = []

    ModelMeta.__qualname__ = "ModelMeta"  # seqtag.io.ModelMeta, as pickle and reprs name it (see __getattr__)
    return ModelMeta


def __getattr__(name: str) -> Any:
    """``ModelMeta`` (PEP 562): the pydantic schema of ``meta.json`` is built when first used, so that
    reading a model file without validating it (:func:`read_raw`) imports no pydantic."""
    if name == "ModelMeta":
        return _model_meta()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def plain_meta(meta: dict[str, Any]) -> bool:
    """Whether ``meta`` holds each field of :class:`ModelMeta` with exactly its type (an ``int`` that is no
    ``bool``, a list of strings): what ModelMeta accepts unchanged, told without pydantic."""
    return (type(meta.get("format_version")) is int and isinstance(meta.get("format"), str)
            and isinstance(meta.get("task"), str) and isinstance(meta.get("weights_sha256"), str)
            and isinstance(meta.get("seqtag_version", ""), str) and isinstance(meta.get("half_precision", []), list)
            and all(isinstance(name, str) for name in meta.get("half_precision", [])))


def read_archive(path: str | Path) -> dict[str, Any]:
    """Open and verify a model file; returns its parsed members (``meta``, ``recipe``, ``vocab``,
    ``metrics``, ``tensors``).

    Every member is read with a size limit (:data:`MEMBER_LIMITS`) before it is parsed, and
    ``meta.json`` is checked against :class:`ModelMeta`. Raises :class:`ArchiveError` with one
    clear message for a missing, truncated, corrupted, oversized, wrong-format or too-new file,
    and for weights that are not finite.
    """
    path = Path(path)
    with open_model_file(path) as archive:
        meta = _read_meta(archive, path)
        weights = read_weights(path, archive)
        members = {name: read_json_member(archive, name, path) for name in ("recipe.json", "vocab.json", "metrics.json")}
    # Mapped weights: the pages each chunk of the checks brought in are unmapped again at once, so
    # loading never holds them all (prediction maps back in only the rows it reads). Weights read into
    # memory have no pages to drop.
    release = lambda: _drop_pages(weights)
    if sha256_of(weights, release) != meta["weights_sha256"]:
        raise ArchiveError(f"{path}: the weights are corrupted (checksum mismatch)")
    try:
        tensors = _tensors_in_place(weights)
    except (ValueError, RecursionError, UnicodeDecodeError) as error:
        raise ArchiveError(f"{path}: the weights cannot be read ({shorten(str(error))})") from None
    # Tables stored in half precision (meta's half_precision) stay so in memory; the modules that
    # hold them widen the rows they look up.
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not _all_finite(tensor, after_chunk=release):
            raise ArchiveError(f"{path}: the weights are broken: {shorten(name)} holds NaN or infinite values")
    release()
    for name, value in members.items():
        if not isinstance(value, dict):
            raise ArchiveError(f"{path}: {name} is corrupted (a JSON object expected, found {type(value).__name__})")
    return {"meta": meta, "recipe": members["recipe.json"], "vocab": members["vocab.json"],
            "metrics": members["metrics.json"], "tensors": tensors}


def read_header(path: str | Path) -> dict[str, Any]:
    """The ``meta`` and ``recipe`` of a model file, without reading its weights (cheap: to decide
    how to run a model before loading it). Raises :class:`ArchiveError` as :func:`read_archive` does
    for a missing, non-model or too-new file; the weights are checked only by :func:`read_archive`."""
    path = Path(path)
    with open_model_file(path) as archive:
        meta = _read_meta(archive, path)
        recipe = read_json_member(archive, "recipe.json", path)
    return {"meta": meta, "recipe": recipe if isinstance(recipe, dict) else {}}


def read_raw(path: str | Path) -> dict[str, Any]:
    """The ``meta``, ``recipe`` and ``weights`` of a model file, read without PyTorch or pydantic: each member
    within its size limit and ``meta``'s format and version checked as :func:`read_archive` reads them
    (:class:`ArchiveError` as it raises it), nothing else checked. ``meta`` and ``recipe`` are the JSON as
    stored (:func:`plain_meta` tells whether ModelMeta would accept ``meta`` as it is), ``weights`` the bytes
    of ``weights.safetensors`` (:func:`read_weights`; their checksum is :func:`sha256_of`, their tensors
    :func:`safetensors_index`)."""
    path = Path(path)
    with open_model_file(path) as archive:
        meta = _checked_format(read_json_member(archive, "meta.json", path), path)
        recipe = read_json_member(archive, "recipe.json", path)
        weights = read_weights(path, archive)
    return {"meta": meta, "recipe": recipe, "weights": weights}


def read_weights(path: Path, archive: zipfile.ZipFile) -> memoryview:
    """``weights.safetensors`` of the model file ``path`` (open as ``archive``): a copy-on-write memory map
    of its bytes in the file when stored uncompressed and aligned (what :func:`write_model_file` writes),
    else read into memory within its size limit (:class:`ArchiveError` beyond)."""
    mapped = _mapped_member(path, archive, "weights.safetensors")
    return mapped if mapped is not None else memoryview(bytearray(_member(archive, "weights.safetensors", path)))


@contextlib.contextmanager
def open_model_file(path: Path) -> Iterator[zipfile.ZipFile]:
    """The model file's zip, with every member present; errors of the zip layer as ArchiveError."""
    if not path.is_file():
        raise ArchiveError(f"{path}: no such model file")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = [m for m in MEMBERS if m not in names]
            if missing:
                raise ArchiveError(f"{path}: not a seqtag model file (missing {', '.join(missing)})")
            yield archive
    except zipfile.BadZipFile as error:
        raise ArchiveError(f"{path}: not a seqtag model file or truncated ({error})") from None
    except (zipfile.LargeZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as error:
        raise ArchiveError(f"{path}: cannot read model file ({shorten(str(error))})") from None


def _read_meta(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    """``meta.json``, its format and version checked and validated by :class:`ModelMeta`."""
    from pydantic import ValidationError

    meta = _checked_format(read_json_member(archive, "meta.json", path), path)
    try:
        return _model_meta().model_validate(meta).model_dump()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
        raise ArchiveError(f"{path}: meta.json is corrupted ({shorten(problems, 300)})") from None


def _checked_format(meta: Any, path: Path) -> dict[str, Any]:
    """``meta`` (the JSON of ``meta.json``) when it is a seqtag model's, of a format version this seqtag reads;
    ArchiveError otherwise."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ArchiveError(f"{path}: not a seqtag model file (format {shorten(repr(found))})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArchiveError(
            f"{path}: written by seqtag {shorten(str(meta.get('seqtag_version')))} in model format "
            f"{shorten(str(version))}; this seqtag ({__version__}) reads format {FORMAT_VERSION} and older: upgrade seqtag"
        )
    return meta


def _member(archive: zipfile.ZipFile, name: str, path: Path) -> bytes:
    return read_member(archive, name, MEMBER_LIMITS[name], path)


def read_member(archive: zipfile.ZipFile, name: str, limit: int, path: str | Path) -> bytes:
    """Member ``name`` of a zip, refused (ArchiveError naming ``path``) when it is, or unpacks to,
    more than ``limit`` bytes: a zip bomb never gets further than ``limit`` bytes into memory."""
    shown = f"{limit // 2**20} MB" if limit >= 2**20 else f"{limit // 2**10} KB"
    if archive.getinfo(name).file_size > limit:
        raise ArchiveError(f"{path}: {name} is larger than {shown}; not a model file seqtag wrote")
    with archive.open(name) as member:
        data = member.read(limit + 1)
    if len(data) > limit:  # the zip's size field lied: a zip bomb
        raise ArchiveError(f"{path}: {name} unpacks to more than {shown}; not a model file seqtag wrote")
    return data


def read_json_member(archive: zipfile.ZipFile, name: str, path: Path) -> Any:
    """The JSON of member ``name`` (one of :data:`MEMBERS`) of the model file ``path``, open as ``archive``,
    read within its size limit; ArchiveError for one too large or not JSON."""
    try:
        return json.loads(_member(archive, name, path).decode("utf-8"))
    except RecursionError:
        raise ArchiveError(f"{path}: {name} is corrupted (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ArchiveError(f"{path}: {name} is corrupted ({shorten(str(error))})") from None
