"""The spaCy component under hostile use (issue 22): ``nlp.pipe(n_process=2)`` after the parent tagged a
doc hung for ever (fork after torch's thread pool started), ``from_bytes`` left a model-sized
``/tmp/tmp*.seqtag`` per call, and a deleted model file, lone surrogates or ``batch_size: 0`` ended in
tracebacks. Each now works or gives one SeqtagError, when the component is made where it can be.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

spacy = pytest.importorskip("spacy")

from seqtag.errors import ArchiveError, DataError, SeqtagError  # noqa: E402

from .bounded import FIXTURES, ROOT  # noqa: E402

MODEL = FIXTURES / "tagging.seqtag"
TEXTS = ["Anna Berg visited Oslo .", "The Acme Group hired Tom Dahl .", "a quiet day in the markets ."] * 4

PIPE_SCRIPT = """
import json, multiprocessing, sys
import torch
import spacy

if __name__ == "__main__":
    multiprocessing.set_start_method(sys.argv[1], force=True)
    torch.set_num_threads(2)  # the parent's thread pool must have run for a fork to inherit it
    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag", config={"model": sys.argv[2], "batch_size": 2})
    # calls of 2,000 tokens or more run on all threads (smaller ones on one, seqtag.devices.threads_for):
    # documents of about 2,400 tokens, so that both the parent and the workers use the thread pool
    text = " ".join([sentence for sentence in json.loads(sys.argv[3])] * 100)
    alone = [(e.start_char, e.label_) for e in nlp(text).ents]  # tagged in the parent first
    together = [[(e.start_char, e.label_) for e in doc.ents] for doc in nlp.pipe([text, text], n_process=2, batch_size=1)]
    print(json.dumps({"alone": [alone, alone], "together": together}))
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pipe_with_two_processes_after_tagging_in_the_parent(tmp_path: Path, method: str) -> None:
    script = tmp_path / "pipe.py"
    script.write_text(textwrap.dedent(PIPE_SCRIPT), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(script), method, str(MODEL), json.dumps(TEXTS[:4])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the workers too: a regression fails, it does not hang
        process.communicate()
        pytest.fail(f"nlp.pipe(n_process=2) with the {method} start method hung")
    assert process.returncode == 0, err[-3000:]
    outcome = json.loads(out.strip().splitlines()[-1])
    assert outcome["together"] == outcome["alone"]
    assert any(outcome["alone"])  # the model does find entities


def left_behind(folder: Path) -> list[str]:
    """What is in ``folder``, less torch's own cache folder (torch makes it there when it first needs it)."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("torchinductor"))


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_from_bytes_leaves_no_files_and_round_trips(private_tmp: Path, tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    original = nlp.add_pipe("seqtag", config={"model": str(MODEL)})
    data = original.to_bytes()
    clones = [type(original)(nlp, f"copy{i}", None, False, 8).from_bytes(data) for i in range(3)]
    assert left_behind(private_tmp) == []
    expected = [(e.text, e.label_) for e in nlp(TEXTS[1]).ents]
    for clone in clones:
        assert clone.model_path is None and clone.to_bytes() == data
        assert [(e.text, e.label_) for e in clone(nlp.make_doc(TEXTS[1])).ents] == expected
    clones[0].to_disk(tmp_path / "saved")
    assert (tmp_path / "saved" / "model.seqtag").read_bytes() == data
    with pytest.raises(ArchiveError, match="^the model bytes: not a seqtag model file"):
        clones[1].from_bytes(b"not a model")
    assert left_behind(private_tmp) == []
    assert clones[1].to_bytes() == data  # a failed load keeps the model it had
    with pytest.raises(SeqtagError, match="takes the bytes of a model file"):
        clones[1].from_bytes("text")  # type: ignore[arg-type]


def test_a_pipeline_of_a_from_bytes_component_saves_and_loads(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag", config={"model": str(MODEL)})
    copy = spacy.blank("en")
    copy.add_pipe("seqtag").from_bytes(nlp.get_pipe("seqtag").to_bytes())
    copy.to_disk(tmp_path / "pipeline")
    again = spacy.load(tmp_path / "pipeline")
    assert [(e.text, e.label_) for e in again(TEXTS[0]).ents] == [(e.text, e.label_) for e in nlp(TEXTS[0]).ents]


def test_a_missing_model_file_is_an_error_when_the_component_is_made(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="no such model file"):
        spacy.blank("en").add_pipe("seqtag", config={"model": str(tmp_path / "gone.seqtag")})


def test_a_model_file_deleted_after_loading_is_a_clean_error_when_saving(tmp_path: Path) -> None:
    path = tmp_path / "model.seqtag"
    path.write_bytes(MODEL.read_bytes())
    nlp = spacy.blank("en")
    component = nlp.add_pipe("seqtag", config={"model": str(path)})
    path.unlink()
    assert nlp(TEXTS[0]).ents  # the model is in memory
    with pytest.raises(SeqtagError, match="cannot save its model: .*model.seqtag cannot be read .*moved or deleted"):
        nlp.to_disk(tmp_path / "pipeline")
    with pytest.raises(SeqtagError, match="cannot serialise its model"):
        component.to_bytes()


@pytest.mark.parametrize(("config", "message"), [
    ({"batch_size": 0}, "batch_size must be a whole number of at least 1, got 0"),
    ({"batch_size": -5}, "got -5"),
    ({"device": "quantum"}, "unknown device 'quantum'"),
])
def test_bad_settings_are_errors_when_the_component_is_made(config: dict, message: str) -> None:
    nlp = spacy.blank("en")
    with pytest.raises(SeqtagError, match=message):
        nlp.add_pipe("seqtag", config={"model": str(MODEL), **config})
    with pytest.raises(SeqtagError, match=message):
        spacy.blank("en").add_pipe("seqtag", config=config)  # without a model too


def test_a_model_of_another_task_is_refused() -> None:
    with pytest.raises(SeqtagError, match="runs tagging models, this is a 'tree-sentiment' model"):
        spacy.blank("en").add_pipe("seqtag", config={"model": str(FIXTURES / "trees.seqtag")})


def test_lone_surrogates_with_the_seqtag_tokenizer_are_a_data_error() -> None:
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "seqtag.Tokenizer.v1"}}})
    nlp.add_pipe("seqtag", config={"model": str(MODEL)})
    with pytest.raises(DataError, match=r"lone surrogate \(U\+D800\) at character 5, which spaCy cannot store"):
        nlp("Anna \ud800 Berg visited Oslo .")
    assert [e.text for e in nlp("Anna Berg visited Oslo .").ents]


def test_broken_tokenizer_settings_are_an_archive_error(tmp_path: Path) -> None:
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "seqtag.Tokenizer.v1"}}})
    for data in (b"\xff\xfe", b"{not json", json.dumps({"extra_abbreviations": ["a" * 1200]}).encode()):
        with pytest.raises(ArchiveError):
            nlp.tokenizer.from_bytes(data)
    with pytest.raises(ArchiveError, match="cannot read"):
        nlp.tokenizer.from_disk(tmp_path / "missing")
