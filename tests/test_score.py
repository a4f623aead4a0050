"""seqtag score: a predictions file scored without a model, the same figures as seqtag evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqtag.cli import main

from .conftest import ROOT

MODEL = ROOT / "tests" / "fixtures" / "compat" / "tagging.seqtag"
GOLD = ROOT / "recipes" / "demo" / "test.txt"


def test_score_equals_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    predictions = tmp_path / "pred.conll"
    assert main(["-q", "predict", str(MODEL), str(GOLD), "--format", "conll", "-o", str(predictions)]) == 0
    assert main(["evaluate", str(MODEL), str(GOLD), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)
    assert main(["score", str(GOLD), str(predictions), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["f1"] == pytest.approx(expected["f1"]) and scored["per_type"] == expected["per_type"]
    conlleval = tmp_path / "conlleval.txt"  # token gold predicted
    conlleval.write_text("".join(line.replace("\t", " ") + "\n" for line in
                                 predictions.read_text(encoding="utf-8").splitlines()), encoding="utf-8")
    assert main(["score", str(conlleval), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["f1"] == pytest.approx(expected["f1"])


def test_score_refuses_misaligned_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    predictions = tmp_path / "pred.conll"
    predictions.write_text("Anna B-PER\n\n", encoding="utf-8")
    assert main(["score", str(GOLD), str(predictions)]) == 2
    assert "1 sentences, but" in capsys.readouterr().err
