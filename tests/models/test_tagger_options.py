"""The accuracy levers of the tagging recipe (issue 24): the IntNet character encoder, locked dropout, the
global vector and the jointly trained character language model. Each trains, saves, loads and predicts
the same; each does what it says on the inputs where it differs from the plain model."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import seqtag
from seqtag.data.conll import read_conll
from seqtag.modules.char_encoders import CharIntNet, Highway
from seqtag.modules.dropout import LockedDropout
from seqtag.registry import recipe_from_dict
from seqtag.tasks.tagging.model import global_vector
from seqtag.tasks.tagging.task import TaggingTask
from seqtag.training.run import run
from tests.conftest import TINY_RECIPE
from tests.models.test_document_context import write_documents

OPTIONS = {
    "intnet": {"char": {"encoder": "intnet", "dim": 6, "filters": 5, "blocks": 2, "widths": [3, 5]}},
    "locked dropout": {"locked_dropout": True},
    "global max": {"global_vector": "max"},
    "global mean": {"global_vector": "mean"},
    "char lm": {"char_lm": {"hidden_size": 12, "embedding_dim": 8}, "document_context": 8},
}


def recipe_with(corpus: Path, options: dict) -> dict:
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(corpus), "label_column": 1}
    recipe["model"].update(copy.deepcopy(options))
    recipe["training"].update({"max_epochs": 2, "threads": 1, "checkpoint_every_minutes": None})
    return recipe


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("documents")
    write_documents(folder / "train.txt", 60, 1)
    write_documents(folder / "valid.txt", 12, 2)
    write_documents(folder / "test.txt", 12, 3)
    return folder


@pytest.mark.parametrize("name", list(OPTIONS))
def test_each_option_trains_saves_and_predicts_the_same_after_loading(name: str, corpus: Path, tmp_path: Path) -> None:
    result = run(recipe_from_dict(recipe_with(corpus, OPTIONS[name])), tmp_path / "run")
    assert result.model_path is not None and result.test is not None
    sentences = read_conll(corpus / "test.txt", 0, 1)
    loaded = seqtag.load(result.model_path)
    assert loaded.task.evaluate(sentences)["f1"] == pytest.approx(result.test["f1"])
    for key, value in OPTIONS[name].items():
        stored = getattr(loaded.task.recipe.model, key)
        assert (stored.model_dump() if hasattr(stored, "model_dump") else stored) == (
            {**stored.model_dump(), **value} if isinstance(value, dict) else value)


def test_intnet_is_wide_and_does_not_depend_on_the_padding() -> None:
    torch.manual_seed(0)
    encoder = CharIntNet(20, 6, 5, 3, blocks=2, widths=(3, 5), dropout=0.0).eval()
    assert encoder.output_dim == 5 * (1 + 2 * 2)
    chars = torch.randint(1, 20, (4, 7))
    chars[1, 3:] = 0
    alone = encoder(chars[1:2, :3])  # the word without padding
    with torch.no_grad():
        assert torch.allclose(encoder(chars)[1], alone[0], atol=1e-6)
        assert torch.allclose(encoder(torch.nn.functional.pad(chars, (0, 5))), encoder(chars), atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        CharIntNet(20, 6, 5, 3, widths=(2, 3))


def test_even_intnet_widths_and_two_language_models_are_recipe_errors(corpus: Path) -> None:
    recipe = recipe_with(corpus, {"char": {"encoder": "intnet", "widths": [4]}})
    assert any("odd widths" in problem for problem in recipe_from_dict(recipe).problems())
    recipe = recipe_with(corpus, {"char_lm": {"hidden_size": 8}})
    recipe["embeddings"]["contextual"] = str(corpus / "train.txt")
    assert any("one language model" in problem for problem in recipe_from_dict(recipe).problems())


def test_locked_dropout_keeps_one_mask_for_every_time_step() -> None:
    dropout = LockedDropout(0.5).train()
    out = dropout(torch.ones(3, 9, 40))
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(out, out[:, :1].expand_as(out))  # the same mask at every step
    assert not torch.equal(out[0], out[1])  # a different one per sequence
    assert torch.equal(dropout.eval()(out), out)


def test_global_vector_pools_only_real_positions() -> None:
    encoded = torch.tensor([[[1.0, -3.0], [5.0, 2.0], [9.0, 9.0]], [[-1.0, 0.0], [-2.0, 4.0], [-3.0, -4.0]]])
    lengths = torch.tensor([2, 3])
    maxed = global_vector(encoded, lengths, "max")
    assert maxed[0, 2].tolist() == [5.0, 2.0] and maxed[1, 0].tolist() == [-1.0, 4.0]
    mean = global_vector(encoded, lengths, "mean")
    assert mean[0, 0].tolist() == [3.0, -0.5] and mean[1, 1].tolist() == [-2.0, 0.0]


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_global_vector_does_not_depend_on_the_batch(corpus: Path, pooling: str) -> None:
    task, _ = TaggingTask.from_recipe(recipe_from_dict(recipe_with(corpus, {"global_vector": pooling})))
    assert task.model.emissions.in_features == 4 * task.recipe.model.encoder.hidden_size
    sentences = read_conll(corpus / "test.txt", 0, 1)[:4]
    short = min(sentences, key=len)
    task.model.eval()
    with torch.no_grad():
        alone = task.model(task.collate([task.encode(short)]))[0]  # (T, K)
        together = task.model(task.collate([task.encode(s) for s in sentences]))  # padded to the longest
    row = sentences.index(short)
    torch.testing.assert_close(together[row, : len(short)], alone)


def test_joint_language_model_adds_its_loss_and_learns_to_predict_characters(corpus: Path) -> None:
    recipe = recipe_from_dict(recipe_with(corpus, {"char_lm": {"hidden_size": 16, "embedding_dim": 8, "dropout": 0.0}}))
    task, splits = TaggingTask.from_recipe(recipe)
    model = task.model
    assert model.joint_lm and model.highway is not None and isinstance(model.highway, Highway)
    assert all(p.requires_grad for p in model.contextual.parameters())  # decoders included: the LM loss trains them
    batch = task.collate([task.encode(s) for s in splits["train"][:8]])
    model.train()
    torch.manual_seed(0)
    emissions, lm_nll = model._forward(batch, lm_loss=True)
    assert lm_nll is not None and lm_nll.shape == (8,)
    vocabulary = len(task.contextual.symbols)
    assert torch.allclose(lm_nll, torch.full_like(lm_nll, 2 * torch.log(torch.tensor(float(vocabulary)))), rtol=0.25)
    model.eval()
    assert model._forward(batch, lm_loss=False)[1] is None
    # training on the LM loss alone lowers it: the targets are aligned with the states
    optimizer = torch.optim.Adam(model.contextual.parameters(), lr=0.02)
    model.train()
    first = None
    for _ in range(60):
        optimizer.zero_grad()
        loss = model._forward(batch, lm_loss=True)[1].mean()
        first = float(loss.detach()) if first is None else first
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.6 * first
    # and model.loss includes it with its weight
    model.eval()
    with torch.no_grad():
        model.train()
        torch.manual_seed(1)
        with_lm = model.loss(batch)
        model.config.char_lm.loss_weight = 0.0
        torch.manual_seed(1)
        without = model.loss(batch)
    assert with_lm > without


def test_init_from_carries_the_joint_character_lm_over_by_symbol(corpus: Path, tmp_path: Path) -> None:
    """model.init_from (the WNUT-17 recipe starts from the CoNLL-03 model) copies a jointly trained
    character LM of the same architecture: its LSTMs as they are, its symbol rows by symbol, so a
    corpus with other characters keeps what the LM learned; without a joint LM on both sides it
    starts fresh."""
    options = {"char_lm": {"hidden_size": 12, "embedding_dim": 8}}
    source_run = run(recipe_from_dict(recipe_with(corpus, options)), tmp_path / "source")
    assert source_run.model_path is not None
    source = seqtag.load(source_run.model_path).task
    other = tmp_path / "other"
    other.mkdir()
    write_documents(other / "train.txt", 20, 5)
    with (other / "train.txt").open("a", encoding="utf-8") as out:
        out.write("\n\nZürich B-LOC\nwäre O\n")  # characters the source never saw
    recipe = recipe_with(other, {**options, "char_lm": {**options["char_lm"], "dropout": 0.2}, "init_from": str(source_run.model_path)})
    recipe["data"].update({"dev": None, "test": None})
    task, _ = TaggingTask.from_recipe(recipe_from_dict(recipe))
    mine, theirs = task.model.contextual, source.model.contextual
    assert task.contextual.symbols.itos != source.contextual.symbols.itos
    for direction in ("forward", "backward"):
        assert torch.equal(mine.lm(direction).rnn.weight_hh_l0, theirs.lm(direction).rnn.weight_hh_l0)
        for symbol in ("J", "o", " "):
            row, other_row = task.contextual.symbols.stoi[symbol], source.contextual.symbols.stoi[symbol]
            assert torch.equal(mine.lm(direction).embedding.weight[row], theirs.lm(direction).embedding.weight[other_row])
            assert torch.equal(mine.lm(direction).decoder.weight[row], theirs.lm(direction).decoder.weight[other_row])
            assert mine.lm(direction).decoder.bias[row] == theirs.lm(direction).decoder.bias[other_row]
    assert torch.equal(task.model.highway.state_dict()["layers.0.weight"], source.model.highway.state_dict()["layers.0.weight"])
    recipe["model"]["char_lm"]["hidden_size"] = 10  # another architecture: the LM starts fresh
    task, _ = TaggingTask.from_recipe(recipe_from_dict(recipe))
    assert not torch.equal(task.model.contextual.lm("forward").embedding.weight[1:3],
                           theirs.lm("forward").embedding.weight[1:3])
