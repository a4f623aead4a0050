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
"""

from __future__ import annotations

import contextlib
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
from pathlib import Path
from typing import IO, Any

import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from safetensors.torch import save as save_safetensors

from seqtag.errors import ArchiveError, shorten
from seqtag.version import __version__

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


#: safetensors dtype names.
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


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


def _tensors_in_place(data: memoryview) -> dict[str, torch.Tensor]:
    """The tensors of safetensors ``data`` as views of it (no copy; a misaligned tensor is copied).
    ValueError for anything that is not well-formed safetensors."""
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
        if not isinstance(spec, dict) or spec.get("dtype") not in _DTYPES:
            raise ValueError(f"tensor {shorten(name, 60)}: unknown dtype")
        dtype, shape, offsets = _DTYPES[spec["dtype"]], spec.get("shape"), spec.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(n, int) and 0 <= n < 2**40 for n in shape):
            raise ValueError(f"tensor {shorten(name, 60)}: bad shape")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(n, int) for n in offsets)
                and 0 <= offsets[0] <= offsets[1] <= len(data) - body):
            raise ValueError(f"tensor {shorten(name, 60)}: data outside the file")
        count = 1
        for n in shape:
            count *= n
        itemsize = torch.empty((), dtype=dtype).element_size()
        if count * itemsize != offsets[1] - offsets[0]:
            raise ValueError(f"tensor {shorten(name, 60)}: shape and data size disagree")
        start = body + offsets[0]
        if count == 0:
            tensor = torch.empty(shape, dtype=dtype)
        else:
            tensor = torch.frombuffer(data, dtype=dtype, count=count, offset=start).view(shape)
            if start % itemsize:
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
    flat = tensor.reshape(-1)
    for start in range(0, flat.numel(), chunk):
        values = flat[start : start + chunk]
        finite = math.isfinite(float(values.sum(dtype=torch.float64))) or bool(torch.isfinite(values).all())
        after_chunk()
        if not finite:
            return False
    return True


def _sha256(data: memoryview, after_chunk: Callable[[], None], chunk: int = 1 << 22) -> str:
    """The SHA-256 of ``data``, read in chunks of 4 MB; ``after_chunk`` runs after each."""
    digest = hashlib.sha256()
    for start in range(0, len(data), chunk):
        digest.update(data[start : start + chunk])
        after_chunk()
    return digest.hexdigest()


class ModelMeta(BaseModel):
    """``meta.json`` of a model file (other keys are kept: later versions may add some)."""

    model_config = ConfigDict(extra="allow")

    format: str
    format_version: int
    seqtag_version: str = "?"
    task: str
    weights_sha256: str
    half_precision: list[str] = []


def read_archive(path: str | Path) -> dict[str, Any]:
    """Open and verify a model file; returns its parsed members (``meta``, ``recipe``, ``vocab``,
    ``metrics``, ``tensors``).

    Every member is read with a size limit (:data:`MEMBER_LIMITS`) before it is parsed, and
    ``meta.json`` is checked against :class:`ModelMeta`. Raises :class:`ArchiveError` with one
    clear message for a missing, truncated, corrupted, oversized, wrong-format or too-new file,
    and for weights that are not finite.
    """
    path = Path(path)
    with _open_model_file(path) as archive:
        meta = _read_meta(archive, path)
        mapped = _mapped_member(path, archive, "weights.safetensors")
        weights = mapped if mapped is not None else memoryview(bytearray(_member(archive, "weights.safetensors", path)))
        members = {name: _json(archive, name, path) for name in ("recipe.json", "vocab.json", "metrics.json")}
    # Mapped weights: the pages each chunk of the checks brought in are unmapped again at once, so
    # loading never holds them all (prediction maps back in only the rows it reads).
    release = (lambda: _drop_pages(mapped)) if mapped is not None else (lambda: None)
    if _sha256(weights, release) != meta["weights_sha256"]:
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
    with _open_model_file(path) as archive:
        meta = _read_meta(archive, path)
        recipe = _json(archive, "recipe.json", path)
    return {"meta": meta, "recipe": recipe if isinstance(recipe, dict) else {}}


@contextlib.contextmanager
def _open_model_file(path: Path) -> Iterator[zipfile.ZipFile]:
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
    meta = _json(archive, "meta.json", path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise ArchiveError(f"{path}: not a seqtag model file (format {shorten(repr(found))})")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ArchiveError(
            f"{path}: written by seqtag {shorten(str(meta.get('seqtag_version')))} in model format "
            f"{shorten(str(version))}; this seqtag ({__version__}) reads format {FORMAT_VERSION} and older: upgrade seqtag"
        )
    try:
        return ModelMeta.model_validate(meta).model_dump()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
        raise ArchiveError(f"{path}: meta.json is corrupted ({shorten(problems, 300)})") from None


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


def _json(archive: zipfile.ZipFile, name: str, path: Path) -> Any:
    try:
        return json.loads(_member(archive, name, path).decode("utf-8"))
    except RecursionError:
        raise ArchiveError(f"{path}: {name} is corrupted (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ArchiveError(f"{path}: {name} is corrupted ({shorten(str(error))})") from None
