"""Files written by an earlier seqtag keep working: model files load and predict the same, a run resumes.

The fixtures in tests/fixtures/compat were written by ``make_fixtures.py`` there, with the
code before the package-layout refactor (issue 20).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch

import seqtag
from seqtag.data.conll import read_conll
from seqtag.io import read_archive
from seqtag.registry import recipe_from_dict
from seqtag.training.run import run
from tests.fixtures.compat.make_fixtures import TAGGING, TAGGING_SOURCE, TEXT

from .conftest import ROOT

COMPAT = Path(__file__).resolve().parent / "fixtures" / "compat"
EXPECTED = json.loads((COMPAT / "expected.json").read_text(encoding="utf-8"))


def close(a: object, b: object) -> bool:
    """Equal up to float rounding (1e-5), recursively through lists and dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-5  # type: ignore[arg-type]
    return a == b


def test_tagging_model_file_predicts_as_before() -> None:
    tagger = seqtag.load(COMPAT / "tagging.seqtag")
    expected = EXPECTED["tagging"]
    sentences = tagger.tag(TEXT, n_best=3)
    assert [[t.text for t in s.tokens] for s in sentences] == expected["tokens"]
    assert [s.tags for s in sentences] == expected["tags"]
    assert close([[t.confidence for t in s.tokens] for s in sentences], expected["confidences"])
    assert [[[e.text, e.label, e.start_char, e.end_char] for e in s.entities] for s in sentences] == expected["entities"]
    assert close([[[q.tags, q.probability] for q in s.n_best] for s in sentences], expected["n_best"])
    test = tagger.task.evaluate(read_conll(ROOT / "recipes" / "demo" / "test.txt", 0, 1))
    assert close(test, expected["test"])


def test_target_sentiment_model_file_predicts_as_before() -> None:
    classifier = seqtag.load(COMPAT / "target.seqtag")
    pairs = [("alpha is great but bravo is awful .", "alpha"), ("alpha is great but bravo is awful .", "bravo"),
             ("i think $T$ was bad , delta was fine today", "carol")]
    predictions = [[p.label, p.probabilities] for p in classifier.predict_batch(pairs)]
    assert close(predictions, EXPECTED["target"]["predictions"])
    assert close(classifier.evaluate_file(COMPAT / "target" / "test.raw"), EXPECTED["target"]["test"])


def test_tree_sentiment_model_file_predicts_as_before() -> None:
    trees = seqtag.load(COMPAT / "trees.seqtag")
    prediction = trees.predict("(3 (2 the) (4 (3 film) (4 great)))")
    assert close([prediction.label, prediction.probabilities], EXPECTED["trees"]["root"])
    assert close([[n.label, n.probabilities] for n in prediction.nodes], EXPECTED["trees"]["nodes"])
    assert close(trees.evaluate_file(COMPAT / "trees" / "test.txt"), EXPECTED["trees"]["test"])


def test_checkpoint_written_before_resumes_to_the_same_model(tmp_path: Path) -> None:
    """The run folder was stopped in epoch 2 of 3; resuming it gives the model of the whole run."""
    folder = tmp_path / "run"
    shutil.copytree(COMPAT / "tagging-run", folder)
    result = run(recipe_from_dict(copy.deepcopy(TAGGING), str(TAGGING_SOURCE)), resume=folder)
    assert result.best_epoch == EXPECTED["resume"]["best_epoch"]
    assert close([r.get("dev") for r in result.history], EXPECTED["resume"]["dev_history"])
    resumed, whole = read_archive(result.model_path)["tensors"], read_archive(COMPAT / "tagging.seqtag")["tensors"]
    assert resumed.keys() == whole.keys()
    for name in whole:
        assert torch.allclose(resumed[name], whole[name], atol=1e-5), name


@pytest.mark.parametrize("name", ["tagging.seqtag", "target.seqtag", "trees.seqtag"])
def test_fixture_model_files_are_current_format(name: str) -> None:
    assert read_archive(COMPAT / name)["meta"]["format_version"] == 1
