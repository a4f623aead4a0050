"""Sharing models on the Hugging Face Hub: ``seqtag.load("hf://OWNER/NAME")`` and ``seqtag push``.

A shared model is the same safe model file (``model.seqtag``: JSON and safetensors,
no pickle) in a hub model repository, with a model card (``README.md``) written from
its recipe and metrics. Downloads go through ``huggingface_hub`` and its cache, so a
model fetched once loads offline afterwards (``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

from seqtag.errors import ArchiveError, SeqtagError, shorten
from seqtag.io import MEMBER_LIMITS, read_header, read_member
from seqtag.version import __version__

PREFIX = "hf://"
MODEL_FILE = "model.seqtag"
_NAME = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)(?:@(?P<revision>[\w./-]+))?$")


def is_hub_name(path: str | Path) -> bool:
    """Whether ``path`` names a hub model (``hf://OWNER/NAME[@REVISION]``)."""
    return isinstance(path, str) and path.startswith(PREFIX)


def parse(name: str) -> tuple[str, str | None]:
    """``hf://OWNER/NAME[@REVISION]`` -> (``OWNER/NAME``, revision or None); SeqtagError otherwise."""
    match = _NAME.match(name[len(PREFIX):])
    if match is None:
        raise SeqtagError(f"{shorten(name)}: a hub model is named hf://OWNER/NAME or hf://OWNER/NAME@REVISION")
    return match["repo"], match["revision"]


def download(name: str) -> Path:
    """The local path of the hub model ``name`` (from the cache when it is there, else downloaded)."""
    from huggingface_hub import hf_hub_download  # an optional dependency (it comes with datasets)
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    repo, revision = parse(name)
    try:
        return Path(hf_hub_download(repo, MODEL_FILE, revision=revision))
    except LocalEntryNotFoundError:
        raise SeqtagError(f"{name}: not in the local hub cache and the hub cannot be reached (offline?). Download "
                          f"{MODEL_FILE} from https://huggingface.co/{repo} elsewhere and load it as a file: "
                          f"seqtag.load('path/to/{MODEL_FILE}')") from None
    except (RepositoryNotFoundError, EntryNotFoundError) as error:
        raise SeqtagError(f"{name}: no {MODEL_FILE} there ({type(error).__name__})") from None
    except Exception as error:  # network and HTTP errors of many kinds
        raise SeqtagError(f"{name}: cannot download ({type(error).__name__}: {shorten(str(error))}); load a "
                          f"downloaded {MODEL_FILE} as a file instead") from None


def model_card(path: str | Path, repo: str) -> str:
    """A model card (``README.md``) for the model file ``path``: task, recipe, data and scores."""
    header = read_header(path)
    meta, recipe = header["meta"], header["recipe"]
    metrics = _metrics(path)
    lines = [
        "---", "library_name: seqtag", f"tags: [seqtag, {meta['task']}]", "---", "",
        f"# {repo}", "",
        f"A seqtag {meta['task']} model (seqtag {meta.get('seqtag_version', '?')}, model format "
        f"{meta['format_version']}). Load it with:", "",
        "```python", "import seqtag", "", f'model = seqtag.load("hf://{repo}")', "```", "",
        "The file is a zip of JSON and safetensors: loading it runs no code.", "",
        "## Data and scores", "",
        f"- recipe: `{recipe.get('name')}`, seed {recipe.get('seed')}; data: `{json.dumps(recipe.get('data', {}))}`",
    ]
    for split in ("dev", "test"):
        figures = metrics.get(split) or {}
        shown = ", ".join(f"{k} {v:.2f}" for k, v in figures.items() if isinstance(v, float))
        if shown:
            lines.append(f"- {split}: {shown}")
    if metrics.get("best_epoch") is not None:
        lines.append(f"- trained {metrics.get('epochs')} epochs, best epoch {metrics['best_epoch']}")
    lines += ["", "## Recipe", "", "```json", json.dumps(recipe, indent=2), "```", "",
              f"Card written by seqtag {__version__}."]
    return "\n".join(lines) + "\n"


def _metrics(path: str | Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(read_member(archive, "metrics.json", MEMBER_LIMITS["metrics.json"], path))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, ArchiveError):
        return {}
    return data if isinstance(data, dict) else {}


def push(path: str | Path, repo: str, private: bool = False, api: Any = None) -> str:
    """Upload the model file ``path`` and a model card to the hub repository ``repo`` (created
    if needed; needs a token, e.g. from ``huggingface-cli login``); returns its address."""
    from huggingface_hub import HfApi

    path = Path(path)
    read_header(path)  # a seqtag model file, or a clear ArchiveError before anything is sent
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
        raise ArchiveError(f"{shorten(repo)}: a hub repository is named OWNER/NAME")
    api = api or HfApi()
    try:
        api.create_repo(repo, private=private, exist_ok=True)
        api.upload_file(path_or_fileobj=str(path), path_in_repo=MODEL_FILE, repo_id=repo)
        api.upload_file(path_or_fileobj=model_card(path, repo).encode(), path_in_repo="README.md", repo_id=repo)
    except Exception as error:  # network, authentication and HTTP errors of many kinds
        raise SeqtagError(f"cannot push to {repo} ({type(error).__name__}: {shorten(str(error))})") from None
    return f"https://huggingface.co/{repo}"
