"""The seqtag command end to end on the demo corpus that ships with the project."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seqtag.cli import main

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "recipes" / "demo.yaml"
FAST = ["--set", "training.max_epochs=2", "--set", "training.progress=false", "--set", "embeddings.pretrained=null",
        "--set", "embeddings.dim=24", "--set", "model.encoder.hidden_size=32"]


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo-run")
    assert main(["train", str(DEMO), "--output", str(out), *FAST]) == 0
    return out / "model.seqtag"


def test_train_writes_run_folder(demo_model):
    folder = demo_model.parent
    assert {p.name for p in folder.iterdir()} >= {"model.seqtag", "metrics.jsonl", "recipe.yaml"}
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "f1" in json.loads(lines[0])["dev"]


def test_evaluate_reproduces_training_figure(demo_model, capsys):
    assert main(["evaluate", str(demo_model), str(ROOT / "recipes/demo/test.txt"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    stored = json.loads(subprocess.run([sys.executable, "-m", "seqtag.cli", "info", str(demo_model), "--json"],
                                       capture_output=True, text=True, check=True).stdout)["metrics"]["test"]
    assert metrics["f1"] == pytest.approx(stored["f1"])
    assert main(["evaluate", str(demo_model), str(ROOT / "recipes/demo/test.txt")]) == 0
    report = capsys.readouterr().out
    assert "micro avg" in report and "PER" in report


def test_predict_conll_and_token_lines(demo_model, tmp_path, capsys):
    out = tmp_path / "pred.conll"
    assert main(["predict", str(demo_model), str(ROOT / "recipes/demo/test.txt"), "--output", str(out)]) == 0
    rows = [line.split("\t") for line in out.read_text().splitlines() if line]
    assert len(rows) == sum(1 for line in (ROOT / "recipes/demo/test.txt").read_text().splitlines() if line)
    assert all(len(row) == 3 for row in rows)
    lines = tmp_path / "sentences.txt"
    lines.write_text("Maria Lopez flew to Paris .\nthe markets were quiet .\n")
    assert main(["predict", str(demo_model), str(lines)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 2 and printed[0].startswith("Maria/")


def test_info(demo_model, capsys):
    assert main(["info", str(demo_model)]) == 0
    text = capsys.readouterr().out
    assert "task tagging" in text and "B-PER" in text and "test: F1" in text


def test_errors_are_one_line_not_tracebacks(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: tagging\nmodel: {dropuot: 0.1}\n")
    assert main(["train", str(bad)]) == 2
    assert "did you mean 'model.dropout'" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "missing.seqtag")]) == 2
    assert "no such model file" in capsys.readouterr().err


def test_help_for_every_command():
    for command in ("train", "evaluate", "predict", "info"):
        result = subprocess.run([sys.executable, "-m", "seqtag.cli", command, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "usage: seqtag " + command in result.stdout


def test_evaluate_writes_a_confusion_table(demo_model, tmp_path, capsys):
    table = tmp_path / "confusion.tsv"
    assert main(["evaluate", str(demo_model), str(ROOT / "recipes/demo/test.txt"), "--confusion", str(table)]) == 0
    rows = [line.split("\t") for line in table.read_text().splitlines()]
    labels = rows[0][1:]
    assert "O" in labels and "B-PER" in labels and len(rows) == len(labels) + 1
    total = sum(int(count) for row in rows[1:] for count in row[1:])
    assert total == sum(1 for line in (ROOT / "recipes/demo/test.txt").read_text().splitlines() if line)


def test_seqtag_lab_runs_the_lab_with_its_own_options(tmp_path, capsys):
    assert main(["lab", "--problem", "adding", "--lengths", "10", "--cells", "lstm", "--seeds", "1", "--budget", "256",
                 "--hidden", "4", "--out", str(tmp_path), "--plot", str(tmp_path / "lab.png")]) == 0
    assert (tmp_path / "adding.json").is_file() and (tmp_path / "lab.png").is_file()
    assert "| lstm |" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stopped:  # --help is the lab's, not seqtag's
        main(["lab", "--help"])
    assert stopped.value.code == 0 and "--problem" in capsys.readouterr().out
