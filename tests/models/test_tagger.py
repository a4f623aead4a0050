"""Model construction, training, the model file and prediction on a tiny made-up corpus."""

import copy
import json
import zipfile

import pytest
import torch

import seqtag
from seqtag.errors import ArchiveError, DataError
from seqtag.io import read_archive
from seqtag.modules.recurrent import init_forget_bias
from seqtag.registry import recipe_from_dict
from seqtag.tasks.tagging.task import TaggingTask
from seqtag.training.run import run


def build(recipe_dict):
    recipe = recipe_from_dict(recipe_dict)
    torch.manual_seed(recipe.seed)
    return TaggingTask.from_recipe(recipe)


def test_forget_gate_bias_is_one():
    lstm = torch.nn.LSTM(4, 3, num_layers=2, bidirectional=True)
    init_forget_bias(lstm)
    for name, bias in lstm.named_parameters():
        if name.startswith("bias_"):
            total = bias[3:6].detach()
            assert torch.all(total == (1.0 if name.startswith("bias_ih") else 0.0))


def test_vocabulary_comes_from_train_only(tiny_recipe):
    task, splits = build(tiny_recipe)
    train_words = {tok for s in splits["train"] for tok in s.tokens}
    assert set(task.words.vocab.itos[2:]) == train_words
    assert task.corpus_scheme == "iob2" and task.train_scheme == "iobes"
    assert "S-LOC" in task.tags.itos and "E-PER" in task.tags.itos and "I-PER" not in task.tags.itos


@pytest.mark.parametrize("variant", [
    {"model": {"decoder": "softmax"}},
    {"model": {"char": {"encoder": "lstm", "dim": 8, "hidden_size": 8}, "encoder": {"cell": "gru", "num_layers": 2}}},
    {"model": {"crf": {"backend": "pytorch-crf"}, "casing_dim": 4, "word_dropout": 0.3, "tag_scheme": "bilou"}},
    {"model": {"char": {"encoder": "none"}, "crf": {"constrained": False}}, "training": {"optimizer": "adam", "lr": 0.01, "loss_reduction": "mean"}},
])
def test_variants_train_and_round_trip(tmp_path, tiny_recipe, variant):
    recipe = copy.deepcopy(tiny_recipe)
    for section, values in variant.items():
        recipe[section] = {**recipe.get(section, {}), **values}
    result = run(recipe_from_dict(recipe), tmp_path)
    assert result.model_path.exists()
    history = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"]
    tagger = seqtag.load(result.model_path)
    task, splits = build(recipe)
    sentences = splits["test"]
    reloaded = tagger.task.predict(sentences)
    assert tagger.evaluate(sentences)["f1"] == pytest.approx(result.test["f1"])
    again = seqtag.load(result.model_path).task.predict(sentences)
    assert reloaded == again


def test_training_learns_and_is_reproducible(tmp_path, tiny_recipe):
    recipe = copy.deepcopy(tiny_recipe)
    recipe["training"]["max_epochs"] = 8
    first = run(recipe_from_dict(recipe), tmp_path / "a")
    second = run(recipe_from_dict(recipe), tmp_path / "b")
    assert first.test["f1"] > 80.0
    weights_a = read_archive(first.model_path)["tensors"]
    weights_b = read_archive(second.model_path)["tensors"]
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


def test_early_stopping_keeps_the_best_epoch(tmp_path, tiny_recipe):
    recipe = copy.deepcopy(tiny_recipe)
    recipe["training"].update(max_epochs=30, patience=2, lr=0.5, lr_decay=0.0)
    result = run(recipe_from_dict(recipe), tmp_path)
    history = result.history
    assert len(history) < 30
    assert len(history) - result.best_epoch == 2
    best = max(r["dev"]["f1"] for r in history)
    assert result.best_dev["f1"] == best
    assert seqtag.load(result.model_path).metrics["best_epoch"] == result.best_epoch


def test_pretrained_vectors_reach_words_outside_training_vocab(tmp_path, tiny_recipe, tiny_corpus):
    path = tmp_path / "vectors.txt"
    words = ["oslo", "zanzibar", "visited"]
    path.write_text("\n".join(f"{w} " + " ".join(str(i + j * 0.1) for j in range(16)) for i, w in enumerate(words)) + "\n")
    recipe = copy.deepcopy(tiny_recipe)
    recipe["embeddings"] = {"pretrained": str(path), "lowercase": True}
    recipe["training"]["max_epochs"] = 1
    result = run(recipe_from_dict(recipe), tmp_path / "run")
    task = seqtag.load(result.model_path).task
    row = task.words.index("Zanzibar")
    assert row >= task.words.num_trainable  # not a training word ...
    vector = task.model.words(torch.tensor([[row]]))[0, 0]
    torch.testing.assert_close(vector, torch.tensor([1 + j * 0.1 for j in range(16)]), atol=1e-2, rtol=0)  # ... but has its vector
    assert task.words.index("never-seen-anywhere") == 1


def test_missing_corpus_says_where_to_put_it(tiny_recipe, tmp_path):
    recipe = copy.deepcopy(tiny_recipe)
    recipe["data"]["dir"] = str(tmp_path / "nothing")
    with pytest.raises(DataError, match="--set data.dir"):
        build(recipe)


def test_bad_model_files_are_refused(tmp_path, tiny_recipe):
    result = run(recipe_from_dict({**tiny_recipe, "training": {**tiny_recipe["training"], "max_epochs": 1}}), tmp_path)
    good = result.model_path.read_bytes()
    truncated = tmp_path / "truncated.seqtag"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ArchiveError, match="truncated"):
        seqtag.load(truncated)
    not_zip = tmp_path / "text.seqtag"
    not_zip.write_text("hello")
    with pytest.raises(ArchiveError, match="not a seqtag model file"):
        seqtag.load(not_zip)
    with zipfile.ZipFile(result.model_path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    def rewrite(name, **changes):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as archive:
            for member, data in {**members, **changes}.items():
                archive.writestr(member, data)
        return path
    weights = bytearray(members["weights.safetensors"])
    weights[-1] ^= 0xFF
    with pytest.raises(ArchiveError, match="checksum"):
        seqtag.load(rewrite("corrupt.seqtag", **{"weights.safetensors": bytes(weights)}))
    meta = json.loads(members["meta.json"])
    with pytest.raises(ArchiveError, match="upgrade seqtag"):
        seqtag.load(rewrite("future.seqtag", **{"meta.json": json.dumps({**meta, "format_version": 99})}))
    with pytest.raises(ArchiveError, match="no such model file"):
        seqtag.load(tmp_path / "missing.seqtag")


def test_model_file_holds_json_and_safetensors_only(tmp_path, tiny_recipe):
    task, _ = build(tiny_recipe)
    path = task.save(tmp_path / "m.seqtag", {"note": 1})
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["meta.json", "metrics.json", "recipe.json", "vocab.json", "weights.safetensors"]
        meta = json.loads(archive.read("meta.json"))
    assert meta["format"] == "seqtag-model" and meta["seqtag_version"] == seqtag.__version__
    content = read_archive(path)
    assert content["metrics"] == {"note": 1} and content["recipe"]["name"] == "tiny"


def test_predictor_api(tiny_model):
    tagger = seqtag.load(tiny_model)
    result = tagger.tag_tokens(["Anna", "Berg", "visited", "Oslo", "."])
    assert result.tags == ["B-PER", "I-PER", "O", "B-LOC", "O"]
    assert [(e.text, e.label, e.start_char, e.end_char) for e in result.entities] == [("Anna Berg", "PER", 0, 9), ("Oslo", "LOC", 18, 22)]
    text = "Yesterday  Anna Berg visited Oslo."
    (tagged,) = tagger.tag(text)
    assert [text[t.start:t.end] for t in tagged.tokens] == [t.text for t in tagged.tokens]
    assert tagged.tokens[-1].text == "."
    assert sorted(tagger.labels) == ["LOC", "MISC", "ORG", "PER"]


def test_feature_columns_are_embedded_and_required_at_prediction(tmp_path, tiny_corpus):
    """A third input column (here a made-up 'shape' tag, as POS would be for chunking) feeds the model."""
    from tests.conftest import TINY_RECIPE, write_three_column_corpus

    folder = write_three_column_corpus(tiny_corpus, tmp_path / "three-columns")
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(folder), "label_column": 2, "feature_columns": [1]}
    recipe["model"]["feature_dim"] = 4
    recipe["training"]["max_epochs"] = 3
    result = run(recipe_from_dict(recipe), tmp_path / "run")
    tagger = seqtag.load(result.model_path)
    assert [sorted(v.itos[2:]) for v in tagger.task.features] == [["CAP", "LOW"]]  # after <pad>, <unk>
    assert tagger.task.model.features[0].weight.shape == (4, 4)
    from seqtag.data.conll import read_conll

    test = read_conll(folder / "test.txt", 0, 2)
    assert tagger.evaluate(test)["f1"] == result.test["f1"]
    with pytest.raises(DataError, match="input column 1"):
        tagger.tag("Anna Berg visited Oslo .")
    from seqtag.errors import RecipeError

    with pytest.raises(RecipeError, match="feature_columns: column 2 is the word or label column"):
        recipe_from_dict({**recipe, "data": {**recipe["data"], "feature_columns": [2]}}, check=True)
