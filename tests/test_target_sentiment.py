"""Target-dependent sentiment: the 3-line reader, LSTM/TD-LSTM/TC-LSTM, the task, recipes, API and CLI."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
import torch

import seqtag
from seqtag.cli import main
from seqtag.data.target import (
    POLARITIES,
    TargetExample,
    holdout_split,
    label_counts,
    read_target_file,
    write_target_file,
)
from seqtag.errors import DataError, RecipeError
from seqtag.evaluation import classification_metrics
from seqtag.modules.embedders import WordEmbedder
from seqtag.registry import load_recipe, recipe_from_dict
from seqtag.tasks.target_sentiment.model import TargetBatch, TargetLSTM
from seqtag.tasks.target_sentiment.predictor import TargetSentimentClassifier
from seqtag.tasks.target_sentiment.recipe import TargetSentimentRecipe
from seqtag.tasks.target_sentiment.task import TargetSentimentTask, class_weights
from seqtag.training.run import run

from .conftest import ROOT, shared

NAMES = ["alpha", "bravo", "carol", "delta", "echo", "foxtrot", "golf", "hotel"]
GOOD = ["great", "lovely", "superb", "fine"]
BAD = ["awful", "terrible", "poor", "bad"]


def make_examples(count: int, seed: int) -> list[tuple[str, str, str]]:
    """(template, target, polarity) triples where only the target tells the polarity apart.

    Every sentence appears twice, once per name as the target; in polar sentences the
    two names get opposite polarities, so a model that ignores the target gets at most
    half of those right.
    """
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        a, b = rng.sample(NAMES, 2)
        good, bad = rng.choice(GOOD), rng.choice(BAD)
        kind = rng.randrange(3)
        if kind == 0:
            words, polarity = f"{a} is {good} but {b} is {bad} .".split(), {a: "1", b: "-1"}
        elif kind == 1:
            words, polarity = f"i think {a} was {bad} , {b} was {good} today".split(), {a: "-1", b: "1"}
        else:
            words, polarity = f"{a} met {b} in town .".split(), {a: "0", b: "0"}
        for target in (a, b):
            template = " ".join("$T$" if w == target else w for w in words)
            out.append((template, target, polarity[target]))
    return out


def write_examples(path: Path, examples: list[tuple[str, str, str]]) -> Path:
    path.write_text("".join(f"{s}\n{t}\n{p}\n" for s, t, p in examples), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def target_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("target")
    write_examples(folder / "train.raw", make_examples(100, seed=1))
    write_examples(folder / "test.raw", make_examples(40, seed=2))
    return folder


def tiny_recipe(folder: Path, architecture: str = "td-lstm", **training: object) -> dict:
    return {
        "task": "target-sentiment",
        "name": f"tiny-{architecture}",
        "seed": 1,
        "data": {"dir": str(folder), "dev_fraction": 0.15},
        "embeddings": {"dim": 16},
        "model": {"architecture": architecture, "hidden_size": 24},
        "training": {"optimizer": "adam", "lr": 0.02, "batch_size": 16, "max_epochs": 5, "patience": None,
                     "loss_reduction": "mean", "progress": False, "threads": 1, **training},
    }


@pytest.fixture(scope="module")
def trained(target_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """TD-LSTM, TC-LSTM and the LSTM baseline trained on the tiny corpus."""
    results = {}
    for architecture in ("td-lstm", "tc-lstm", "lstm"):
        out = tmp_path_factory.mktemp(architecture)
        results[architecture] = run(recipe_from_dict(tiny_recipe(target_corpus, architecture)), out)
    return results


# ---------------------------------------------------------------------------- reader


def test_reader_puts_targets_back_and_splits_contexts(tmp_path):
    path = tmp_path / "a.raw"
    path.write_bytes("\ufeffi love $T$ but $T$ hates me\r\nnew york\r\n1\r\n\r\n$T$ is ok\nbus\n0\n".encode())
    first, second = read_target_file(path)
    assert first.tokens == "i love new york but new york hates me".split()
    assert first.mentions == [(2, 4), (5, 7)] and first.label == "1" and first.line == 1
    assert first.left == "i love new york but new york".split()
    assert first.right == "new york but new york hates me".split()
    assert first.template == "i love $T$ but $T$ hates me"
    assert (second.line, second.label, second.mentions) == (5, "0", [(0, 1)])
    assert label_counts([first, second]) == {"-1": 0, "0": 1, "1": 1}


def test_write_read_round_trip(tmp_path):
    examples = [TargetExample.from_template("a $T$ b".split(), ["x", "y"], "-1"), TargetExample.from_template(["$T$"], ["z"], "0")]
    write_target_file(examples, tmp_path / "out.raw")
    again = read_target_file(tmp_path / "out.raw")
    assert [(e.tokens, e.target, e.mentions, e.label) for e in again] == [(e.tokens, e.target, e.mentions, e.label) for e in examples]
    write_target_file(examples, tmp_path / "pred.raw", labels=["1", "1"])
    assert [e.label for e in read_target_file(tmp_path / "pred.raw")] == ["1", "1"]


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("no target here\nx\n1\n", 1, "replaced by $T$"),
        ("a $T$ b\nx\n1\nfine $T$\nx\n", 5, "polarity (-1, 0 or 1) of the example starting on line 4 is missing"),
        ("a $T$ b\nx\n1\nfine $T$\nx\npositive\n", 6, "found 'positive'"),
        ("a $T$ b\nx\n2\n", 3, "found '2'"),
        ("a $T$ b\n\n1\n", 2, "empty"),
        ("a $T$ b\n", 1, "target line is missing"),
        ("a $T$ b\na $T$ c\n1\n", 2, "found another sentence"),
        ("a $T$'s b\nx\n1\n", 1, "token of its own"),
        ("a $T$ b\nx\n1\n-1\n", 4, "found the polarity '-1'"),
        ("a $T$ b\nx\n1\nc d\nx\n1\n", 4, "is a line missing or extra"),
    ],
)
def test_reader_errors_name_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "bad.raw"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as caught:
        read_target_file(path)
    assert caught.value.path == str(path) and caught.value.line == line
    assert message in str(caught.value)


def test_reader_rejects_bad_bytes_and_missing_files(tmp_path):
    path = tmp_path / "latin.raw"
    path.write_bytes(b"a $T$ b\ncaf\xe9\n1\n")
    with pytest.raises(DataError, match="UTF-8") as caught:
        read_target_file(path)
    assert caught.value.line == 2
    with pytest.raises(DataError, match="not found"):
        read_target_file(tmp_path / "missing.raw")


def test_unlabelled_input_for_prediction(tmp_path):
    path = tmp_path / "mixed.raw"
    path.write_text("a $T$ b\nx\n$T$ c\ny\n-1\nd $T$\nz\n", encoding="utf-8")
    examples = read_target_file(path, labelled=None)
    assert [(e.label, e.line) for e in examples] == [(None, 1), ("-1", 3), (None, 6)]
    assert len(read_target_file(tmp_path / "mixed.raw", labelled=None)) == 3
    (tmp_path / "two.raw").write_text("a $T$ b\n1\n$T$ c\n0\n", encoding="utf-8")
    assert [e.target for e in read_target_file(tmp_path / "two.raw", labelled=False)] == [["1"], ["0"]]


def test_holdout_is_stratified_seeded_and_disjoint():
    examples = [TargetExample.from_template(["$T$", str(i)], ["t"], str(i % 3 - 1)) for i in range(300)]
    train, dev = holdout_split(examples, 0.1, seed=7)
    assert len(dev) == 30 and len(train) == 270
    assert label_counts(dev) == {"-1": 10, "0": 10, "1": 10}
    assert {id(e) for e in train}.isdisjoint(id(e) for e in dev)
    assert [e.tokens for e in holdout_split(examples, 0.1, seed=7)[1]] == [e.tokens for e in dev]
    assert [e.tokens for e in holdout_split(examples, 0.1, seed=8)[1]] != [e.tokens for e in dev]


NAMES_OF_CLASSES = ["negative", "neutral", "positive"]


def test_classification_metrics_by_hand():
    # gold:      neg neg neu neu pos pos ; predicted: neg neu neu neu pos neg
    metrics = classification_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], NAMES_OF_CLASSES)
    assert metrics["accuracy"] == pytest.approx(100 * 4 / 6)
    # F1: neg p=1/2 r=1/2 -> 1/2; neu p=2/3 r=1 -> 4/5; pos p=1 r=1/2 -> 2/3
    assert metrics["macro_f1"] == pytest.approx(100 * (1 / 2 + 4 / 5 + 2 / 3) / 3)
    assert metrics["per_class"]["neutral"]["support"] == 2
    assert classification_metrics([1, 1], [1, 1], NAMES_OF_CLASSES)["macro_f1"] == pytest.approx(100 / 3)  # absent classes count 0


# ----------------------------------------------------------------------------- model


def small_model(architecture: str) -> TargetLSTM:
    torch.manual_seed(0)
    return TargetLSTM(architecture, WordEmbedder.create(20, 5, 6), hidden_size=5, num_classes=3).eval()


def make_task(architecture: str) -> TargetSentimentTask:
    from seqtag.data.vocab import Vocabulary, WordIndex

    recipe = TargetSentimentRecipe.model_validate({"embeddings": {"dim": 6}, "model": {"architecture": architecture, "hidden_size": 5}})
    vocab = Vocabulary("a b c d e f x y".split())
    torch.manual_seed(0)
    return TargetSentimentTask(recipe, WordIndex(vocab, len(vocab), False), 6)


def test_td_lstm_reads_left_context_forwards_and_right_context_backwards():
    task = make_task("td-lstm")
    model = task.model.eval()
    example = TargetExample.from_template("a b $T$ c d e".split(), ["x", "y"], "1")
    batch = task.collate([task.encode(example)])
    index = task.words.index
    left_ids = torch.tensor([[index(w) for w in "a b x y".split()]])
    right_ids = torch.tensor([[index(w) for w in "e d c y x".split()]])
    with torch.no_grad():
        _, (left, _) = model.left(model.words(left_ids))
        _, (right, _) = model.right(model.words(right_ids))
        expected = model.output(torch.cat([left[-1], right[-1]], dim=1))
        assert torch.allclose(model(batch), expected, atol=1e-6)


def test_tc_lstm_appends_the_mean_target_vector_to_every_word():
    task = make_task("tc-lstm")
    model = task.model.eval()
    example = TargetExample.from_template("a $T$ b".split(), ["x", "y"], "0")
    batch = task.collate([task.encode(example)])
    index = task.words.index
    with torch.no_grad():
        target = model.words(torch.tensor([[index("x"), index("y")]])).mean(1)  # (1, D)
        assert torch.allclose(model.target_vector(batch), target, atol=1e-6)
        words = model.words(torch.tensor([[index(w) for w in "a x y".split()]]))
        inputs = torch.cat([words, target.unsqueeze(1).expand(-1, 3, -1)], dim=2)
        _, (left, _) = model.left(inputs)
        assert model.left.input_size == 12
        right_words = model.words(torch.tensor([[index(w) for w in "b y x".split()]]))
        _, (right, _) = model.right(torch.cat([right_words, target.unsqueeze(1).expand(-1, 3, -1)], dim=2))
        assert torch.allclose(model(batch), model.output(torch.cat([left[-1], right[-1]], 1)), atol=1e-6)


@pytest.mark.parametrize("architecture", ["lstm", "td-lstm", "tc-lstm"])
def test_padding_does_not_change_scores(architecture):
    task = make_task(architecture)
    examples = [
        TargetExample.from_template("a $T$ b c d e f a b".split(), ["x"], "1"),
        TargetExample.from_template("$T$ b".split(), ["x", "y"], "0"),
        TargetExample.from_template("a b c $T$".split(), ["y"], "-1"),
    ]
    together = task.predict_probabilities(examples)
    alone = torch.cat([task.predict_probabilities([e]) for e in examples])
    assert together.shape == (3, 3)
    assert torch.allclose(together, alone, atol=1e-6)
    assert torch.allclose(together.sum(1), torch.ones(3))


def test_lstm_baseline_ignores_the_target_and_td_lstm_does_not():
    sentence = "a b c d e".split()
    first = TargetExample(list(sentence), ["b"], [(1, 2)])
    second = TargetExample(list(sentence), ["d"], [(3, 4)])
    baseline = make_task("lstm").predict_probabilities([first, second])
    assert torch.allclose(baseline[0], baseline[1])
    td = make_task("td-lstm").predict_probabilities([first, second])
    assert not torch.allclose(td[0], td[1])


def test_uniform_init_range():
    model = TargetLSTM("td-lstm", WordEmbedder.create(10, 0, 4), 3, 3, init_range=0.003)
    assert float(model.left.weight_ih_l0.detach().abs().max()) <= 0.003
    assert float(model.output.bias.detach().abs().max()) == 0.0
    with pytest.raises(ValueError, match="architecture"):
        TargetLSTM("bi-lstm", WordEmbedder.create(10, 0, 4), 3, 3)


def test_word_dropout_reads_words_as_unknown_in_training_only():
    model = TargetLSTM("td-lstm", WordEmbedder.create(20, 0, 6), 5, 3, word_dropout=0.999999)
    task = make_task("td-lstm")
    first = task.collate([task.encode(TargetExample.from_template("a b $T$ c".split(), ["x"], "1"))])
    second = task.collate([task.encode(TargetExample.from_template("d e $T$ f".split(), ["y"], "1"))])
    model.train()
    torch.manual_seed(1)
    assert torch.allclose(model(first), model(second))  # every word became <unk>
    model.eval()
    assert not torch.allclose(model(first), model(second))


def test_tc_lstm_input_dropout_spares_the_target_vector_unless_asked():
    task = make_task("tc-lstm")

    def encode(words: str, target: str) -> TargetBatch:
        return task.collate([task.encode(TargetExample.from_template(words.split(), [target], "1"))])

    first, same_target, other_target = encode("a b $T$ c", "x"), encode("d e $T$ f", "x"), encode("a b $T$ c", "y")
    model = TargetLSTM("tc-lstm", WordEmbedder.create(20, 0, 6), 5, 3, dropout=0.999999)
    model.train()
    # Every word vector is dropped, the target vector is not: only the target (and lengths) count.
    assert torch.allclose(model(first), model(same_target))
    assert not torch.allclose(model(first), model(other_target))
    model.target_dropout.p = 0.999999
    assert torch.allclose(model(first), model(other_target))
    model.target_dropout.p = 0.5
    torch.manual_seed(0)
    dropped = model(first)
    torch.manual_seed(0)
    keep = torch.rand(1, 6) >= 0.5  # the first draw: one (B, D) mask for the target vector
    model.eval()
    with torch.no_grad():
        vector = (model.target_vector(first) * keep * 2.0).unsqueeze(1)  # (1, 1, D), the same at every step
        _, (left, _) = model.left(torch.cat([torch.zeros(1, 3, 6), vector.expand(-1, 3, -1)], 2))  # "a b x", words dropped
        _, (right, _) = model.right(torch.cat([torch.zeros(1, 2, 6), vector.expand(-1, 2, -1)], 2))  # "c x"
        assert torch.allclose(dropped, model.output(torch.cat([left[-1], right[-1]], 1)), atol=1e-5)


def test_word_table_gets_its_own_learning_rate():
    recipe = TargetSentimentRecipe.model_validate({"embeddings": {"dim": 6}, "model": {"word_lr_scale": 0.1}})
    task = make_task("td-lstm")
    task.recipe = recipe
    groups = task.parameter_groups()
    assert groups[1]["params"] == [task.model.words.embedding.weight] and groups[1]["lr_scale"] == 0.1
    assert not groups[1]["plain_sgd"]
    task.recipe = TargetSentimentRecipe.model_validate({"embeddings": {"dim": 6}, "model": {"word_update": "sgd"}})
    assert task.parameter_groups()[1]["plain_sgd"]
    counted = sum(p.numel() for g in groups for p in g["params"])
    assert counted == sum(p.numel() for p in task.model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------- training


def test_td_and_tc_lstm_learn_what_the_baseline_cannot(trained):
    for architecture in ("td-lstm", "tc-lstm"):
        result = trained[architecture]
        assert result.test["accuracy"] >= 90.0, (architecture, result.test)
        assert result.test["macro_f1"] >= 88.0, (architecture, result.test)
    # identical sentences with opposite polarities: the baseline gets at most half of the polar ones
    polar_share = sum(p != "0" for _, _, p in make_examples(40, seed=2)) / 80
    assert trained["lstm"].test["accuracy"] <= 100 * (1 - polar_share / 2) + 1e-6


def test_training_log_has_both_metrics_and_held_out_dev(trained):
    folder = trained["td-lstm"].model_path.parent
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 5
    assert {"accuracy", "macro_f1", "per_class"} <= set(records[0]["dev"]) and "test" in records[0]
    metrics = json.loads(json.dumps(trained["td-lstm"].best_dev))
    assert 0 <= metrics["macro_f1"] <= 100


def test_select_by_macro_f1(target_corpus, tmp_path):
    recipe = recipe_from_dict({**tiny_recipe(target_corpus), "select_by": "macro_f1"})
    recipe.training.max_epochs = 2
    task, splits = TargetSentimentTask.from_recipe(recipe)
    assert task.main_metric == "macro_f1" and set(splits) == {"train", "dev", "test"}
    everything = read_target_file(target_corpus / "train.raw")
    assert len(splits["dev"]) == sum(round(0.15 * n) for n in label_counts(everything).values())
    assert len(splits["train"]) + len(splits["dev"]) == len(everything)


def test_class_balance_weights_the_loss_by_inverse_class_frequency(target_corpus):
    examples = [TargetExample(["a", "x"], ["x"], [(1, 2)], label) for label in ["-1"] * 2 + ["0"] * 6 + ["1"] * 4]
    assert class_weights(examples, POLARITIES, 1.0).tolist() == pytest.approx([2.0, 2 / 3, 1.0])
    assert class_weights(examples, POLARITIES, 0.5).tolist() == pytest.approx([2.0**0.5, (2 / 3) ** 0.5, 1.0])
    with pytest.raises(DataError, match="no training example is negative"):
        class_weights(examples[2:], POLARITIES, 1.0)

    recipe = tiny_recipe(target_corpus)
    recipe["model"]["class_balance"] = 1.0
    task, splits = TargetSentimentTask.from_recipe(recipe_from_dict(recipe))
    counts = label_counts(splits["train"])
    weights = task.class_weights
    assert weights is not None
    # Every class then carries the same total weight.
    assert [weights[i].item() * counts[p] for i, p in enumerate(POLARITIES)] == pytest.approx([len(splits["train"]) / 3] * 3)
    batch = next(task.batches(splits["train"], 8))
    scores = task.model(batch)  # (B, 3)
    by_hand = -(weights[batch.labels] * scores.log_softmax(1)[torch.arange(len(batch)), batch.labels]).sum()
    assert task.loss(batch).item() == pytest.approx(by_hand.item(), rel=1e-5)
    unweighted, _ = TargetSentimentTask.from_recipe(recipe_from_dict(tiny_recipe(target_corpus)))
    assert unweighted.class_weights is None


def test_label_smoothing_spreads_part_of_the_target_over_all_classes(target_corpus):
    recipe = tiny_recipe(target_corpus)
    recipe["model"]["label_smoothing"] = 0.1
    task, splits = TargetSentimentTask.from_recipe(recipe_from_dict(recipe))
    batch = next(task.batches(splits["train"], 8))
    log_probabilities = task.model(batch).log_softmax(1)  # (B, 3)
    target = torch.full_like(log_probabilities, 0.1 / 3)
    target[torch.arange(len(batch)), batch.labels] += 0.9
    assert task.loss(batch).item() == pytest.approx(-(target * log_probabilities).sum().item(), rel=1e-5)


def test_dev_fraction_zero_trains_on_all_of_train_and_keeps_the_last_epoch(target_corpus, tmp_path):
    recipe = tiny_recipe(target_corpus)
    recipe["data"]["dev_fraction"] = 0
    recipe["training"]["max_epochs"] = 3
    task, splits = TargetSentimentTask.from_recipe(recipe_from_dict(recipe))
    assert set(splits) == {"train", "test"} and len(splits["train"]) == len(read_target_file(target_corpus / "train.raw"))
    result = run(recipe_from_dict(recipe), tmp_path / "all")
    assert result.best_dev is None and result.best_epoch == 3
    records = [json.loads(line) for line in (tmp_path / "all" / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 3 and "dev" not in records[-1]
    model = seqtag.load(result.model_path)
    assert model.evaluate_file(target_corpus / "test.raw")["accuracy"] == pytest.approx(result.test["accuracy"])


# --------------------------------------------------------------------- API, CLI


def test_load_returns_the_classifier_with_the_same_scores(trained, target_corpus):
    model = seqtag.load(trained["td-lstm"].model_path)
    assert isinstance(model, TargetSentimentClassifier) and model.task.name == "target-sentiment"
    assert model.labels == ["negative", "neutral", "positive"]
    metrics = model.evaluate_file(target_corpus / "test.raw")
    assert metrics["accuracy"] == pytest.approx(trained["td-lstm"].test["accuracy"])
    assert metrics["examples"] == 80


def test_predict_text_tokens_placeholder_and_batches(trained):
    model = seqtag.load(trained["td-lstm"].model_path)
    good = model.predict("Alpha is great but bravo is awful .", target="alpha")
    bad = model.predict("Alpha is great but bravo is awful .", target="bravo")
    assert (good.label, good.polarity, bad.label, bad.polarity) == ("positive", 1, "negative", -1)
    assert set(good.probabilities) == {"negative", "neutral", "positive"}
    assert sum(good.probabilities.values()) == pytest.approx(1.0)
    assert good.confidence == max(good.probabilities.values()) and good.mentions == [(0, 1)]
    same = model.predict("$T$ is great but bravo is awful .", target="alpha")
    assert same.probabilities == pytest.approx(good.probabilities)
    tokens = model.predict("alpha is great but bravo is awful .".split(), target=["bravo"])
    assert tokens.probabilities == pytest.approx(bad.probabilities)
    twice = model.predict("alpha is great , alpha is superb but bravo is awful", target="alpha")
    assert twice.mentions == [(0, 1), (4, 5)]
    batch = model.predict_batch([("Alpha is great but bravo is awful .", "alpha"), ("Alpha is great but bravo is awful .", "bravo")])
    assert [p.probabilities for p in batch] == [pytest.approx(good.probabilities), pytest.approx(bad.probabilities)]
    with pytest.raises(DataError, match="does not occur"):
        model.predict("alpha is great", target="zulu")
    with pytest.raises(DataError, match="give the target"):
        model.predict("alpha is great")


def test_cli_evaluate_and_predict_three_line_files(trained, target_corpus, tmp_path, capsys):
    path = str(trained["tc-lstm"].model_path)
    assert main(["evaluate", path, str(target_corpus / "test.raw"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"] == pytest.approx(trained["tc-lstm"].test["accuracy"])
    unlabelled = tmp_path / "in.raw"
    unlabelled.write_text("alpha is great but $T$ is awful .\nbravo\n$T$ met bravo in town .\nalpha\n0\n", encoding="utf-8")
    out = tmp_path / "pred.tsv"
    assert main(["predict", path, str(unlabelled), "--output", str(out)]) == 0
    header, *rows = [line.split("\t") for line in out.read_text(encoding="utf-8").splitlines()]
    assert header[:4] == ["line", "gold", "polarity", "label"] and len(rows) == 2
    assert rows[0][:4] == ["1", "-", "-1", "negative"] and rows[0][-1] == "alpha is great but [bravo] is awful ."
    assert rows[1][1] == "0" and rows[1][3] == "neutral"
    broken = tmp_path / "broken.raw"
    broken.write_text("alpha is great\nbravo\n1\n", encoding="utf-8")
    assert main(["evaluate", path, str(broken)]) == 2
    assert f"{broken}:1:" in capsys.readouterr().err


# ----------------------------------------------------------------------- recipes

RECIPES = ["twitter-tdlstm", "twitter-tclstm", "semeval14-restaurant-tdlstm", "semeval14-laptop-tdlstm"]


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_validate(name):
    recipe = load_recipe(ROOT / "recipes" / f"{name}.yaml")
    assert isinstance(recipe, TargetSentimentRecipe) and recipe.name == name
    assert recipe.embeddings.pretrained == "glove-6b-50d" and recipe.data.dev is None
    assert recipe.model.architecture == ("tc-lstm" if "tclstm" in name else "td-lstm")
    assert recipe.data.dir.startswith("data/")
    assert recipe.training.refit  # epochs chosen on the held-out dev, then all of train
    assert recipe.model.label_smoothing == 0.1 and recipe.model.class_balance == 0
    text = (ROOT / "recipes" / f"{name}.yaml").read_text()
    assert text.startswith("#") and "Measured" in text


def test_recipe_errors_are_reported():
    with pytest.raises(RecipeError, match="did you mean 'model.architecture'"):
        recipe_from_dict({"task": "target-sentiment", "model": {"architectur": "td-lstm"}})
    with pytest.raises(RecipeError, match="architecture"):
        recipe_from_dict({"task": "target-sentiment", "model": {"architecture": "bilstm"}})


def test_missing_corpus_names_the_folder(tmp_path):
    recipe = recipe_from_dict({"task": "target-sentiment", "data": {"dir": str(tmp_path)}, "embeddings": {"dim": 4}})
    with pytest.raises(DataError, match="--set data.dir"):
        TargetSentimentTask.from_recipe(recipe)


# --------------------------------------------------------------- transfer (init_from)


def test_init_from_copies_lstms_softmax_and_vectors_by_symbol(trained, tmp_path):
    source = seqtag.load(trained["td-lstm"].model_path).task
    other = tmp_path / "other"
    other.mkdir()
    write_examples(other / "train.raw", make_examples(60, seed=7) + [("zulu $T$ zulu", "alpha", "0")])
    recipe = tiny_recipe(other)
    recipe["data"]["test"] = None
    recipe["model"]["init_from"] = str(trained["td-lstm"].model_path)
    task, _ = TargetSentimentTask.from_recipe(recipe_from_dict(recipe))
    for name in ("left.weight_ih_l0", "right.weight_hh_l0", "output.weight", "output.bias"):
        assert torch.equal(task.model.state_dict()[name], source.model.state_dict()[name]), name
    assert task.words.vocab.itos != source.words.vocab.itos
    for word in ("great", "alpha"):
        mine, theirs = task.words.vocab.stoi[word], source.words.vocab.stoi[word]
        assert torch.equal(task.model.words.embedding.weight[mine], source.model.words.embedding.weight[theirs])
    recipe["model"]["architecture"] = "tc-lstm"  # LSTM inputs twice as wide: only the vectors and softmax fit
    task, _ = TargetSentimentTask.from_recipe(recipe_from_dict(recipe))
    assert task.model.left.weight_ih_l0.shape != source.model.left.weight_ih_l0.shape
    assert torch.equal(task.model.output.weight, source.model.output.weight)
    recipe["model"]["init_from"] = str(tmp_path / "missing.seqtag")
    with pytest.raises(RecipeError, match="init_from.*no such model file"):
        TargetSentimentTask.from_recipe(recipe_from_dict(recipe))


# --------------------------------------------------------------------- real data


@pytest.mark.slow
def test_real_corpora_read_and_short_twitter_run(tmp_path):
    """All real files parse; TD-LSTM with GloVe trains briefly on part of Twitter and beats the majority class."""
    twitter = shared("twitter-td")
    semeval = shared("semeval14")
    sizes = {name: len(read_target_file(semeval / f"{name}.raw")) for name in
             ("restaurant_train", "restaurant_test", "laptop_train", "laptop_test")}
    assert sizes == {"restaurant_train": 3608, "restaurant_test": 1120, "laptop_train": 2328, "laptop_test": 638}
    train = read_target_file(twitter / "train.raw")
    assert len(train) == 6248 and sum(len(e.mentions) > 1 for e in train) == 368
    write_target_file(train[:2000], tmp_path / "train.raw")  # a subset keeps the run short
    write_target_file(read_target_file(twitter / "test.raw"), tmp_path / "test.raw")
    recipe = load_recipe(ROOT / "recipes" / "twitter-tdlstm.yaml", [
        f"data.dir={tmp_path}", "training.max_epochs=2", "training.threads=1", "training.progress=false",
        "embeddings.limit=60000", "training.average_decay=null",
    ])
    result = run(recipe, tmp_path / "run")
    assert result.test is not None and result.test["accuracy"] > 52.0  # the majority class (neutral) is 50.0
    model = seqtag.load(result.model_path)
    assert model.evaluate_file(twitter / "test.raw")["accuracy"] == pytest.approx(result.test["accuracy"])
    assert model.predict("i love my iphone but $T$ is awful", target="the battery").label in model.labels


def test_refit_trains_on_all_of_train_after_the_held_out_choice(target_corpus: Path, tmp_path: Path, caplog) -> None:
    """With a held-out dev (no dev file), ``training.refit`` trains the kept model on all of train."""
    with caplog.at_level(logging.INFO, logger="seqtag.training.run"):
        result = run(recipe_from_dict(tiny_recipe(target_corpus, refit=True, max_epochs=3)), tmp_path / "refit")
    assert result.selection is not None and len(result.history) == result.best_epoch
    assert "train + dev (169 + 31 examples)" in caplog.text  # 200 training examples, 15% of each label held out
    assert seqtag.load(result.model_path).metrics["test"] == result.test
