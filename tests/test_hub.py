"""Sharing models: hf:// names load from the hub cache offline, a clear error says what to do when a
model is not cached, and push uploads the model file with a model card."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import seqtag
from seqtag.errors import SeqtagError
from seqtag.hub import model_card, push

COMPAT = Path(__file__).resolve().parent / "fixtures" / "compat"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hub cache laid out as huggingface_hub lays it out, holding acme/tiny-ner; no network."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--acme--tiny-ner" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    shutil.copy(COMPAT / "tagging.seqtag", snapshot / "model.seqtag")
    (cache / "models--acme--tiny-ner" / "refs").mkdir()
    (cache / "models--acme--tiny-ner" / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_load_a_hub_model_offline_from_the_cache(offline_cache: Path) -> None:
    from_hub = seqtag.load("hf://acme/tiny-ner", device="cpu")
    from_file = seqtag.load(COMPAT / "tagging.seqtag", device="cpu")
    text = "Anna Berg visited Oslo."
    assert [s.tags for s in from_hub.tag(text)] == [s.tags for s in from_file.tag(text)]


def test_a_model_not_in_the_cache_says_how_to_load_a_file(offline_cache: Path) -> None:
    with pytest.raises(SeqtagError, match=r"hf://acme/missing: not in the local hub cache .* seqtag.load\('path/to/model.seqtag'\)"):
        seqtag.load("hf://acme/missing")
    with pytest.raises(SeqtagError, match="a hub model is named hf://OWNER/NAME"):
        seqtag.load("hf://no-slash")


class FakeApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, repo: str, **options: object) -> None:
        self.calls.append(("create_repo", {"repo": repo, **options}))

    def upload_file(self, **options: object) -> None:
        self.calls.append(("upload_file", options))


def test_push_uploads_the_model_and_a_card() -> None:
    api = FakeApi()
    address = push(COMPAT / "tagging.seqtag", "acme/tiny-ner", api=api)
    assert address == "https://huggingface.co/acme/tiny-ner"
    uploaded = {options["path_in_repo"]: options for name, options in api.calls if name == "upload_file"}
    assert set(uploaded) == {"model.seqtag", "README.md"}
    card = model_card(COMPAT / "tagging.seqtag", "acme/tiny-ner")
    assert 'seqtag.load("hf://acme/tiny-ner")' in card and "compat-tagging" in card and "test: " in card
    with pytest.raises(SeqtagError, match="not a seqtag model file|no such model file"):
        push(COMPAT / "target" / "test.raw", "acme/x", api=FakeApi())
