"""The tree-sentiment task end to end on a made-up treebank: training, model files, predictor, CLI."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
import torch

import seqtag
from seqtag.cli import main
from seqtag.data.trees import parse_tree, read_trees
from seqtag.errors import DataError
from seqtag.registry import load_recipe, recipe_from_dict
from seqtag.training.run import run

from .conftest import interrupt_in_epoch

ROOT = Path(__file__).resolve().parent.parent
SCORES = {"good": 1, "great": 2, "fun": 1, "bad": -1, "awful": -2, "dull": -1,
          "the": 0, "film": 0, "plot": 0, "is": 0, "was": 0, "a": 0}


def make_tree(rng: random.Random) -> str:
    """A random binarised tree whose node labels are 2 + the clipped sum of its word scores."""
    words = [rng.choice(list(SCORES)) for _ in range(rng.randint(2, 7))]
    nodes = [(str(max(0, min(4, 2 + SCORES[w]))), f"({max(0, min(4, 2 + SCORES[w]))} {w})", SCORES[w]) for w in words]
    while len(nodes) > 1:
        k = rng.randrange(len(nodes) - 1)
        (_, left, a), (_, right, b) = nodes[k], nodes[k + 1]
        label = str(max(0, min(4, 2 + a + b)))
        nodes[k : k + 2] = [(label, f"({label} {left} {right})", a + b)]
    return nodes[0][1]


@pytest.fixture(scope="module")
def treebank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("treebank")
    rng = random.Random(5)
    for name, count in (("train.txt", 400), ("dev.txt", 100), ("test.txt", 100)):
        (folder / name).write_text("\n".join(make_tree(rng) for _ in range(count)) + "\n", encoding="utf-8")
    return folder


def recipe_dict(folder: Path, **model: object) -> dict:
    return {
        "task": "tree-sentiment",
        "name": "tiny-trees",
        "seed": 2,
        "data": {"dir": str(folder)},
        "embeddings": {"dim": 12, "lr_scale": 1.0},
        "model": {"memory": 16, "dropout": 0.1, **model},
        "training": {"lr": 0.1, "max_epochs": 6, "batch_size": 10, "progress": False, "patience": None,
                     "eval_batch_size": 32, "threads": 1},
    }


@pytest.fixture(scope="module")
def trained(treebank: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run(recipe_from_dict(recipe_dict(treebank)), tmp_path_factory.mktemp("tree-model")).model_path


def test_training_learns_composition(trained: Path, treebank: Path) -> None:
    model = seqtag.load(trained)
    metrics = model.metrics
    assert metrics["test"]["root_accuracy"] > 60.0  # 5 classes; majority root class is far lower
    assert metrics["test"]["all_accuracy"] > 80.0
    assert set(metrics["test"]) >= {"root_accuracy", "all_accuracy", "trees", "nodes"}
    assert model.evaluate_file(treebank / "test.txt") == pytest.approx(metrics["test"])


def test_predict_api(trained: Path) -> None:
    model = seqtag.load(trained)
    prediction = model.predict("(3 (2 the) (4 (2 film) (4 great)))")
    assert prediction.label in model.labels and len(prediction.nodes) == 5
    assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert prediction.nodes[2].text == "film great"
    assert prediction.node_labels[4] in ("positive", "very positive")
    # the same tree without labels, as a Tree and as a plain structure (different node ids)
    same = [
        model.predict("((the) ((film) (great)))"),
        model.predict(parse_tree("(S (D the) (NP (N film) (A great)))")),
        model.predict({"children": [[], [], [4, 0], [1, 2], []], "words": ["great", "the", None, None, "film"]}),
    ]
    for other in same:
        assert other.label == prediction.label
        assert other.probabilities == pytest.approx(prediction.probabilities, abs=1e-6)
    batch = model.predict_batch(["(2 (2 awful) (2 plot))", "(2 great)"])
    assert batch[0].label in ("negative", "very negative") and batch[1].label == "very positive"
    with pytest.raises(DataError, match="two parents"):
        model.predict({"children": [[1, 2], [], [1]], "words": [None, "a", "b"]})
    with pytest.raises(DataError, match="missing"):
        model.predict("(2 (2 a)")


def test_cli_evaluate_and_predict(trained: Path, treebank: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", str(trained), str(treebank / "dev.txt")]) == 0
    assert "root_accuracy" in capsys.readouterr().out
    out = tmp_path / "pred.txt"
    assert main(["predict", str(trained), str(treebank / "dev.txt"), "-o", str(out)]) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 100
    label, probability, brackets = lines[0].split("\t")
    assert 0.0 < float(probability) <= 1.0
    predicted = parse_tree(brackets, labels=("0", "1", "2", "3", "4"))
    gold = read_trees(treebank / "dev.txt")[0]
    assert predicted.words == gold.words and predicted.children == gold.children
    assert ["very negative", "negative", "neutral", "positive", "very positive"][int(predicted.labels[0])] == label


@pytest.mark.parametrize("neutral_phrases", [True, False])
def test_binary_setting_drops_neutral_roots(treebank: Path, neutral_phrases: bool) -> None:
    from seqtag.tasks.tree_sentiment.task import TreeSentimentTask

    recipe = recipe_from_dict(recipe_dict(treebank))
    recipe.data.classes = "binary"
    recipe.data.neutral_phrases = neutral_phrases
    task, splits = TreeSentimentTask.from_recipe(recipe)
    dev = read_trees(treebank / "dev.txt")
    assert len(splits["dev"]) == sum(t.labels[0] != "2" for t in dev) < len(dev)
    batch = next(task.batches(splits["dev"], 1000))
    kept = [label for t in splits["dev"] for label in t.labels]
    expected = {"0": 0, "1": 0, "2": 1, "3": 2, "4": 2} if neutral_phrases else {"0": 0, "1": 0, "2": -100, "3": 1, "4": 1}
    assert sorted(batch.labels.tolist()) == sorted(expected[label] for label in kept)
    assert task.model.output.out_features == (3 if neutral_phrases else 2)
    metrics = task.evaluate(splits["dev"])
    assert metrics["trees"] == len(splits["dev"])
    assert metrics["nodes"] == sum(label != "2" for label in kept)  # neutral phrases are never scored
    probabilities = task.predict_probabilities([task.encode(t) for t in splits["dev"][:3]])
    assert all(p.shape[1] == 2 and torch.allclose(p.sum(dim=1), torch.ones(len(p))) for p in probabilities)


def test_childsum_cell_and_groups(treebank: Path) -> None:
    from seqtag.tasks.tree_sentiment.task import TreeSentimentTask

    recipe = recipe_from_dict(recipe_dict(treebank, cell="childsum", memory=None))
    task, splits = TreeSentimentTask.from_recipe(recipe)
    assert task.model.tree.hidden_size == 168
    groups = task.parameter_groups()
    assert groups[1]["lr_scale"] == 1.0 and groups[1]["weight_decay"] == 0.0 and not groups[1]["plain_sgd"]
    assert groups[1]["params"] == [task.model.words.embedding.weight]
    batch = next(task.batches(splits["train"], 10, shuffle=True, generator=torch.Generator().manual_seed(0)))
    task.model.eval()  # no dropout: the two reductions see the same scores
    assert task.loss(batch, "mean").item() == pytest.approx(task.loss(batch, "sum").item() / batch.num_trees, rel=1e-5)


def test_word_vectors_by_plain_sgd(treebank: Path, tmp_path: Path) -> None:
    """``embeddings.update: sgd`` (Tai et al.'s rule) trains the word table by SGD beside AdaGrad."""
    from seqtag.tasks.tree_sentiment.task import TreeSentimentTask

    recipe = recipe_dict(treebank)
    recipe["embeddings"].update({"update": "sgd", "lr_scale": 20.0})
    recipe["training"]["max_epochs"] = 4
    task, _ = TreeSentimentTask.from_recipe(recipe_from_dict(recipe))
    assert task.parameter_groups()[1]["plain_sgd"]
    result = run(recipe_from_dict(recipe), tmp_path / "sgd")
    assert len(result.history) == 4
    assert result.test["root_accuracy"] > 90.0 and result.test["all_accuracy"] > 95.0  # as with AdaGrad
    assert seqtag.load(result.model_path).evaluate_file(treebank / "test.txt") == pytest.approx(result.test)


def test_plain_sgd_run_resumes_to_the_same_weights(treebank: Path, tmp_path: Path) -> None:
    """Interrupted after its first epoch and resumed, a run with plain-SGD word vectors ends with
    exactly the weights of a run that was never stopped."""
    from seqtag.io import read_archive

    recipe = recipe_dict(treebank)
    recipe["embeddings"].update({"update": "sgd", "lr_scale": 20.0})
    recipe["training"]["max_epochs"] = 3
    whole = run(recipe_from_dict(recipe), tmp_path / "whole")
    interrupt_in_epoch(recipe_from_dict(recipe), tmp_path / "cut")
    resumed = run(recipe_from_dict(recipe), resume=tmp_path / "cut")
    first, second = read_archive(whole.model_path)["tensors"], read_archive(resumed.model_path)["tensors"]
    assert first.keys() == second.keys() and all(torch.equal(first[name], second[name]) for name in first)


def test_binary_cell_rejects_flat_trees(treebank: Path, tmp_path: Path) -> None:
    for name in ("train.txt", "dev.txt", "test.txt"):
        (tmp_path / name).write_text((treebank / name).read_text(encoding="utf-8"), encoding="utf-8")
    with open(tmp_path / "dev.txt", "a", encoding="utf-8") as out:
        out.write("(3 (2 a) (3 good) (2 film))\n")
    recipe = recipe_from_dict(recipe_dict(tmp_path))
    from seqtag.tasks.tree_sentiment.task import TreeSentimentTask

    task, splits = TreeSentimentTask.from_recipe(recipe)
    with pytest.raises(DataError, match=r"dev.txt:101: node 0 has 3 children; the binary Tree-LSTM takes at most 2"):
        task.evaluate(splits["dev"])
    recipe = recipe_from_dict(recipe_dict(tmp_path, cell="childsum"))
    task, splits = TreeSentimentTask.from_recipe(recipe)
    assert task.evaluate(splits["dev"])["trees"] == 101


def test_predict_output_is_readable_for_a_stream(trained: Path, treebank: Path) -> None:
    out = io.StringIO()
    seqtag.load(trained).predict_file(treebank / "test.txt", out, batch_size=7)
    assert len(out.getvalue().splitlines()) == 100


@pytest.mark.parametrize(
    ("name", "classes", "batch_size", "refit"),
    # fine: batch 20 chosen on dev, refit on a pseudo-test held out of train
    [("sst-treelstm.yaml", "fine", 20, True), ("sst-treelstm-binary.yaml", "binary", 25, False)],
)
def test_recipes_have_the_paper_settings(name: str, classes: str, batch_size: int, refit: bool) -> None:
    recipe = load_recipe(ROOT / "recipes" / name)
    assert recipe.task == "tree-sentiment" and recipe.data.classes == classes and recipe.data.dir == "data/sst"
    assert recipe.model.cell == "binary" and recipe.model.memory_size == 150 and recipe.model.dropout == 0.5
    t = recipe.training
    assert (t.optimizer, t.lr, t.weight_decay, t.batch_size, t.refit) == ("adagrad", 0.05, 1e-4, batch_size, refit)
    assert recipe.data.neutral_phrases
    emb = recipe.embeddings
    assert emb.pretrained == "glove-6b-50d" and emb.fine_tune
    # the word vectors have their own rule: AdaGrad at a fraction of the rate, or plain SGD (Tai et al.)
    assert (emb.update, emb.lr_scale < 1) in (("optimizer", True), ("sgd", False))
    other = load_recipe(ROOT / "recipes" / name, ["model.cell=childsum"])
    assert other.model.memory_size == 168


def test_training_defaults_follow_the_paper_when_keys_are_left_out() -> None:
    recipe = recipe_from_dict({"task": "tree-sentiment", "training": {"threads": 1, "max_epochs": 3}})
    t = recipe.training
    assert (t.optimizer, t.lr, t.weight_decay, t.batch_size, t.loss_reduction, t.clip_grad_norm) == (
        "adagrad", 0.05, 1e-4, 25, "mean", None)
    assert (t.threads, t.max_epochs) == (1, 3)
