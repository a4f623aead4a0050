"""Hostile input at the edges: the CLI, recipes, corpora to evaluate, vector files and ONNX graphs each
end in one line on stderr with a documented exit code (or a SeqtagError from the API), never a traceback."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from seqtag.cli import main
from seqtag.embeddings import load_vectors
from seqtag.errors import SeqtagError
from seqtag.registry import load_recipe

COMPAT = Path(__file__).resolve().parent.parent / "fixtures" / "compat"
MODEL = COMPAT / "tagging.seqtag"


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip()


@pytest.mark.parametrize(("content", "message"), [
    (b"", "no sentences to evaluate"),
    (b"-DOCSTART- -X- O O\n\n", "no sentences to evaluate"),
    (b"Anna FOO\nBerg O\n\n", r":1: tag 'FOO' is not valid in the IOB2 scheme"),
    (b"Anna B-PER\n\nBerg S-PER\n", r":3: tag 'S-PER' is not valid in the IOB2 scheme"),
    (b"Anna\xff B-PER\n", r":1: not valid UTF-8"),
])
def test_evaluate_on_broken_gold_files(tmp_path: Path, capsys: pytest.CaptureFixture, content: bytes, message: str) -> None:
    path = tmp_path / "gold.txt"
    path.write_bytes(content)
    code, err = cli(capsys, "evaluate", str(MODEL), str(path))
    assert code == 2 and err.count("\n") == 0
    assert err.startswith("seqtag: error: ") and re.search(message, err), err


def test_predict_input_and_output_problems(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = cli(capsys, "predict", str(MODEL), str(tmp_path / "missing.txt"))
    assert code == 2 and "missing.txt: file not found" in err
    code, err = cli(capsys, "predict", str(MODEL), str(tmp_path))
    assert code == 2 and ("folder" in err or "not a file" in err), err
    lines = tmp_path / "lines.txt"
    lines.write_text("Anna Berg visited Oslo .\n", encoding="utf-8")
    code, err = cli(capsys, "predict", str(MODEL), str(lines), "-o", "/proc/no/such/place/out.txt")
    assert code == 2 and err.startswith("seqtag: error: ")
    with pytest.raises(SystemExit) as stopped:
        main(["predict", str(MODEL), str(lines), "--batch-size", "0"])
    assert stopped.value.code == 2 and "0 is not a positive number" in capsys.readouterr().err


def test_model_file_problems_at_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = cli(capsys, "info", str(tmp_path / "missing.seqtag"))
    assert code == 2 and "no such model file" in err
    junk = tmp_path / "junk.seqtag"
    junk.write_bytes(os.urandom(1000))
    code, err = cli(capsys, "predict", str(junk), str(COMPAT / "target" / "test.raw"))
    assert code == 2 and "not a seqtag model file" in err


@pytest.mark.parametrize(("content", "message"), [
    (b"task: [x]\n", r"task: a task name expected, got list"),
    (b"\x00\x01\x02\xff\xfe binary", r"not UTF-8 text \(byte 3\); save the recipe as UTF-8"),
    ("task: tagging\n".encode("utf-16"), r"not UTF-8 text"),
    (b"- just\n- a list\n", r"a recipe is a YAML mapping, got list"),
    (b"task: tagging\nseed: [" + b"x, " * 50_000 + b"]\n", r"seed: Input should be a valid integer \(got \['x', 'x'"),
    (b"a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     b"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
     b"f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
     r"expands to more than 100,000 values"),
    (b"[" * 100_000 + b"]" * 100_000, r"nested too deeply|not valid YAML"),
])
def test_hostile_recipes(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "recipe.yaml"
    path.write_bytes(content)
    started = time.perf_counter()
    with pytest.raises(SeqtagError, match=message) as caught:
        load_recipe(path)
    assert time.perf_counter() - started < 10
    assert len(str(caught.value)) < 1000


def test_a_folder_as_recipe(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = cli(capsys, "train", str(tmp_path))
    assert code == 2 and "a folder, not a recipe file" in err


@pytest.mark.parametrize(("content", "message"), [
    ("2 0\na\nb\n", "the header says the vectors have 0 dimensions"),
    ("100000000 50\n", "the header claims 100,000,000 vectors of 50 dimensions"),
    ("a\nb\n", "no vectors in this file"),
    ("2 2\na 1 nan\nb 1 2\n", "NaN or infinite"),
])
def test_hostile_vector_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "vectors.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SeqtagError, match=message):
        load_vectors(str(path))


def test_a_broken_onnx_graph_with_the_right_fingerprint(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from seqtag.api import load
    from seqtag.tasks.tagging.onnx import FINGERPRINT_KEY, fingerprint

    tagger = load(MODEL, device="cpu")
    graph = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("NoSuchOperator", ["words"], ["emissions"])], "broken",
        [onnx.helper.make_tensor_value_info("words", onnx.TensorProto.INT64, [None, None])],
        [onnx.helper.make_tensor_value_info("emissions", onnx.TensorProto.FLOAT, [None, None, None])]))
    entry = graph.metadata_props.add()
    entry.key, entry.value = FINGERPRINT_KEY, fingerprint(tagger.task.model)
    path = tmp_path / "broken.onnx"
    onnx.save_model(graph, str(path))
    with pytest.raises(SeqtagError, match="ONNX Runtime cannot run this graph"):
        load(MODEL, runtime="onnx", onnx=path)


def test_n_best_is_bounded() -> None:
    from seqtag.api import load

    tagger = load(MODEL, device="cpu")
    with pytest.raises(SeqtagError, match="n_best is 1000000; ask for 0 to 100"):
        tagger.tag("Anna visited Oslo.", n_best=10**6)
    assert len(tagger.tag("Anna visited Oslo.", n_best=3)[0].n_best) == 3


def test_a_relative_data_dir_is_one_folder_for_every_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, train.txt came from the working directory and valid.txt from the recipe's folder."""
    from seqtag.errors import DataError
    from seqtag.registry import recipe_from_dict

    recipes, work = tmp_path / "recipes", tmp_path / "work"
    for folder, names in ((recipes / "corpus", ("train.txt", "valid.txt", "test.txt")), (work / "corpus", ("train.txt",))):
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_text("Anna B-PER\n\n", encoding="utf-8")
    monkeypatch.chdir(work)
    recipe = recipe_from_dict({"task": "tagging", "data": {"dir": "corpus"}, "embeddings": {"dim": 4}},
                              str(recipes / "r.yaml"))
    assert recipe.data_dir() == Path("corpus")
    with pytest.raises(DataError, match="the dev file valid.txt is missing. Put the corpus files .* in corpus"):
        recipe.split_files("dev")
    (work / "corpus" / "train.txt").unlink()
    assert recipe.data_dir() == recipes / "corpus"
    assert [p.parent for p in recipe.split_files("dev") + recipe.split_files("train")] == [recipes / "corpus"] * 2
