"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is one zip file, written atomically (temp file + rename), with
``state.json`` (epoch, step, scores, history, optimiser hyper-parameters,
Python and NumPy random states) and ``tensors.safetensors`` (weights, best
weights, optimiser buffers, torch random states). Like model files it holds
no pickle, so reading one never runs code.
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, Field, ValidationError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from seqtag.errors import ArchiveError, shorten
from seqtag.io import atomic_write_bytes, read_member

CHECKPOINT_NAME = "checkpoint.zip"
CHECKPOINT_FORMAT = "seqtag-checkpoint"
CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Write ``tensors`` and the JSON-able ``state`` to ``path`` atomically."""
    weights = save_safetensors({name: t.detach().cpu().contiguous() for name, t in tensors.items()})
    header = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, **state}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("state.json", json.dumps(header))
        archive.writestr("tensors.safetensors", weights)
    atomic_write_bytes(path, buffer.getvalue())


class Progress(BaseModel):
    """Where a run stood (the trainer's ``_Progress``)."""

    epoch: int = Field(ge=0)
    step: int = Field(ge=0)
    epoch_loss: float
    epoch_seen: int = Field(ge=0)
    epoch_seconds: float
    elapsed: float
    best_score: float | None
    best_epoch: int
    best_dev: dict[str, Any] | None
    history: list[dict[str, Any]]


class OptimizerState(BaseModel):
    param_groups: list[dict[str, Any]]
    scalars: dict[str, dict[str, Any]]


class RandomStates(BaseModel):
    python: tuple[int, list[int], float | None]
    numpy: tuple[str, list[int], int, int, float]


class CheckpointState(BaseModel):
    """``state.json`` of a checkpoint, checked before any of it is used."""

    format: Literal["seqtag-checkpoint"]
    format_version: int
    progress: Progress
    optimizer: OptimizerState
    rng: RandomStates
    seed: int


#: The most bytes each member of a checkpoint may unpack to.
CHECKPOINT_LIMITS = {"state.json": 2**27, "tensors.safetensors": 2**35}


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`; returns (tensors, state).

    Members are read with size limits and ``state.json`` is checked against
    :class:`CheckpointState`; anything wrong is one :class:`ArchiveError`.
    """
    path = Path(path)
    if not path.is_file():
        raise ArchiveError(f"{path}: no checkpoint to resume from")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if not set(CHECKPOINT_LIMITS) <= names:
                raise ArchiveError(f"{path}: not a seqtag checkpoint (members {shorten(', '.join(sorted(names)))})")
            state = json.loads(read_member(archive, "state.json", CHECKPOINT_LIMITS["state.json"], path).decode("utf-8"))
            weights = read_member(archive, "tensors.safetensors", CHECKPOINT_LIMITS["tensors.safetensors"], path)
    except RecursionError:
        raise ArchiveError(f"{path}: not a readable seqtag checkpoint (state.json nested too deeply)") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, UnicodeDecodeError, OSError, EOFError,
            NotImplementedError, RuntimeError) as error:
        raise ArchiveError(f"{path}: not a readable seqtag checkpoint ({shorten(str(error))})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or not isinstance(state.get("format_version"), int):
        raise ArchiveError(f"{path}: not a seqtag checkpoint")
    if state["format_version"] > CHECKPOINT_VERSION:
        raise ArchiveError(f"{path}: written by a newer seqtag (checkpoint format {state['format_version']}); upgrade seqtag")
    try:
        CheckpointState.model_validate(state)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:3])
        raise ArchiveError(f"{path}: the checkpoint is corrupted ({shorten(problems, 300)})") from None
    try:
        tensors = load_safetensors(weights)
    except Exception as error:  # safetensors raises its own error types
        raise ArchiveError(f"{path}: the checkpoint's tensors cannot be read ({shorten(str(error))})") from None
    return tensors, state


def prefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{name: t}`` -> ``{prefix + name: t}``."""
    return {prefix + name: tensor for name, tensor in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors whose names start with ``prefix``, with the prefix removed."""
    return {name[len(prefix):]: tensor for name, tensor in tensors.items() if name.startswith(prefix)}


def optimizer_to_checkpoint(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser's state dict into tensors and JSON."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, slots in state_dict["state"].items():
        for key, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def optimizer_from_checkpoint(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`optimizer_to_checkpoint`: load into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    for index, slots in meta["scalars"].items():
        state.setdefault(int(index), {}).update(slots)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def random_states(generator: torch.Generator) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The torch (global and batch-order), Python and NumPy random states."""
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout masks drawn on GPUs
        tensors.update({f"cuda.{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())})
    return tensors, {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)],
    }


def restore_random_states(generator: torch.Generator, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Inverse of :func:`random_states`."""
    torch.set_rng_state(tensors["torch"])
    generator.set_state(tensors["generator"])
    cuda = [tensors[f"cuda.{i}"] for i in range(len(tensors)) if f"cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = meta["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
