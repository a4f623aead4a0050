"""Language models (``task: language_model``): recipes, truncated BPTT through the trainer, the lowest dev
figure kept, model files, generation, scoring by hand, every recurrent cell, exact resume, bad input."""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import torch

import seqtag
from seqtag.cli import main
from seqtag.errors import DataError, RecipeError
from seqtag.io import read_archive
from seqtag.modules.language_model import LanguageModel
from seqtag.modules.recurrent import CELLS
from seqtag.registry import TASKS, recipe_from_dict
from seqtag.tasks.language_model.task import LanguageModelTask, layout
from seqtag.training.checkpoint import load_checkpoint
from seqtag.training.run import run
from tests.conftest import interrupt_in_epoch

WORDS = "the cat sat on a mat while dog ran to big red house and small".split()


def write_text(path: Path, lines: int, seed: int) -> Path:
    rng = random.Random(seed)
    text = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(lines)]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lm-text")
    write_text(folder / "train.txt", 300, 1)
    write_text(folder / "valid.txt", 40, 2)
    write_text(folder / "test.txt", 40, 3)
    return folder


def lm_recipe(folder: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    recipe: dict[str, Any] = {
        "task": "language_model", "name": "tiny-lm", "seed": 2,
        "data": {"dir": str(folder)},
        "model": {"embedding_dim": 16, "hidden_size": 32},
        "training": {"max_epochs": 2, "batch_size": 8, "bptt": 25, "threads": 1, "progress": False,
                     "checkpoint_every_minutes": None},
    }
    for name, values in sections.items():
        recipe[name] = {**recipe.get(name, {}), **values}
    return recipe


@pytest.fixture(scope="module")
def char_run(corpus: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return run(recipe_from_dict(lm_recipe(corpus)), tmp_path_factory.mktemp("char-run"))


# ------------------------------------------------------------------------------------------ recipes


def test_recipe_validation_errors(corpus: Path) -> None:
    assert "language_model" in TASKS
    bad = lm_recipe(corpus, model={"level": "byte", "cell": "lstmm", "tie_weights": True})
    bad["embeddings"] = {"dim": 50}
    bad["training"]["bptt"] = 0
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(bad)
    message = str(caught.value)
    for expected in ("model.level: Input should be 'char' or 'word'", "model.cell: Value error, unknown recurrent cell",
                     "embeddings: Value error, a language model has no embeddings section", "training.bptt"):
        assert expected in message, message
    with pytest.raises(RecipeError, match="tie_weights needs hidden_size == embedding_dim"):
        recipe_from_dict(lm_recipe(corpus, model={"tie_weights": True}))
    with pytest.raises(RecipeError, match="data.test: nowhere.txt not found"):
        recipe_from_dict(lm_recipe(corpus, data={"test": "nowhere.txt"}), check=True)
    defaults = recipe_from_dict({"task": "language_model"})
    assert defaults.bptt == 100 and recipe_from_dict({"task": "language_model", "model": {"level": "word"}}).bptt == 35


# ------------------------------------------------------------------------------------------ training


def test_char_lm_trains_and_dev_bpc_decreases(char_run) -> None:  # type: ignore[no-untyped-def]
    history = char_run.history
    assert [r["metric"] for r in history] == ["bpc", "bpc"]
    assert history[1]["dev"]["bpc"] < history[0]["dev"]["bpc"] < 5
    assert char_run.best_epoch == 2 and char_run.test["tokens"] > 0
    folder = char_run.model_path.parent
    assert (folder / "metrics.jsonl").is_file() and (folder / "training-curves.png").is_file()


def test_word_lm_both_directions_trains_and_perplexity_decreases(corpus: Path, tmp_path: Path) -> None:
    recipe = lm_recipe(corpus, model={"level": "word", "direction": "both", "embedding_dim": 32, "tie_weights": True},
                       training={"batch_size": 4, "bptt": 10, "lr": 0.01})
    result = run(recipe_from_dict(recipe), tmp_path / "word")
    devs = [r["dev"] for r in result.history]
    assert devs[1]["perplexity"] < devs[0]["perplexity"] < len(WORDS) + 3
    assert {"forward_loss", "backward_loss"} <= devs[0].keys()
    lm = seqtag.load(result.model_path)
    text = lm.generate("the cat", max_tokens=12, temperature=0.7, seed=3)
    assert text.startswith("the cat ") and set(text.split()) <= set(WORDS)


def test_the_lowest_dev_figure_is_kept(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lower is better: with dev bpc 3, 1, 2, 4 the trainer keeps epoch 2 and patience counts from it."""
    figures = iter([3.0, 1.0, 2.0, 4.0, 9.0])

    def evaluate(self, examples, batch_size=256, streams=None):  # type: ignore[no-untyped-def]
        return {"bpc": next(figures), "loss": 0.0, "tokens": 1}

    monkeypatch.setattr(LanguageModelTask, "evaluate", evaluate)
    recipe = lm_recipe(corpus, data={"test": None}, training={"max_epochs": 5, "patience": 2})
    result = run(recipe_from_dict(recipe), tmp_path / "min")
    assert result.best_epoch == 2 and result.best_dev["bpc"] == 1.0
    assert len(result.history) == 4  # epochs 3 and 4 were no better: patience 2 stops before epoch 5
    assert [r["best_epoch"] for r in result.history] == [1, 2, 2, 2]


# ------------------------------------------------------------------------------- model files and use


def test_a_saved_model_loads_generates_and_scores(char_run, corpus: Path) -> None:  # type: ignore[no-untyped-def]
    lm = seqtag.load(char_run.model_path)
    first = lm.generate("the ", max_tokens=40, temperature=1.0, seed=7)
    assert first.startswith("the ") and len(first) == 44
    assert lm.generate("the ", max_tokens=40, temperature=1.0, seed=7) == first
    assert lm.generate("the ", max_tokens=40, temperature=1.0, seed=8) != first
    greedy = lm.generate("the ", max_tokens=30, temperature=0)
    assert greedy == lm.generate("the ", max_tokens=30, temperature=0, seed=99)
    assert lm.generate("", max_tokens=0) == ""
    with pytest.raises(seqtag.SeqtagError, match="temperature"):
        lm.generate("a", temperature=-1)
    metrics = lm.evaluate_file(corpus / "test.txt")
    assert metrics == pytest.approx(char_run.test) and metrics["bpc"] == pytest.approx(metrics["loss"] / math.log(2))
    assert "bits per character" in lm.report("test.txt", metrics)
    assert read_archive(char_run.model_path)["vocab"]["level"] == "char"


def _hand_loss(model: LanguageModel, ids: list[int]) -> float:
    """Mean negative log-likelihood of ids[1:] given everything before, by hand (one pass, no state carried)."""
    lm = model.forward_lm
    assert lm is not None
    with torch.no_grad():
        inputs = torch.tensor([ids[:-1]])
        outputs, _ = lm.rnn(lm.embedding(inputs))  # an nn.LSTM from a zero state
        log_probs = torch.log_softmax(lm.decoder(outputs)[0].double(), dim=1)
        return float(-log_probs[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].mean())


@pytest.mark.parametrize("level", ["char", "word"])
def test_evaluate_file_is_the_hand_computation(level: str, tmp_path: Path) -> None:
    text = ["a cat sat", "", "the mat ran to a dog", "big red zebra"]
    (tmp_path / "train.txt").write_text("\n".join(text[:3]) + "\n", encoding="utf-8")
    recipe = recipe_from_dict(lm_recipe(tmp_path, model={"level": level}, training={"bptt": 4},
                                        data={"dev": None, "test": None}))
    torch.manual_seed(0)
    task, _ = LanguageModelTask.from_recipe(recipe)
    predictor = TASKS["language_model"].predictor(task)
    (tmp_path / "eval.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    metrics = predictor.evaluate_file(tmp_path / "eval.txt", streams=1)
    separator = "\n" if level == "char" else "<eos>"
    symbols = [separator]
    for line in text:
        pieces = list(line) if level == "char" else line.split()
        if pieces or level == "char":
            symbols += [*pieces, separator]
    ids = task.ids(symbols)
    loss = _hand_loss(task.model, ids)
    assert metrics["tokens"] == len(ids) - 1
    assert metrics["loss"] == pytest.approx(loss, rel=1e-5)
    if level == "char":
        assert metrics["bpc"] == pytest.approx(loss / math.log(2), rel=1e-5)
    else:
        assert metrics["perplexity"] == pytest.approx(math.exp(loss), rel=1e-5)
        assert ids.count(task.symbols.unk_index) == 3  # "big", "red", "zebra" were not in train
    # more streams score the same symbols (each stream but the first starts without context)
    assert predictor.evaluate_file(tmp_path / "eval.txt")["tokens"] == len(ids) - 1
    # one line on its own, as seqtag predict scores it
    out = io.StringIO()
    assert predictor.predict_file(tmp_path / "eval.txt", out) == 4
    row = out.getvalue().splitlines()[3].split("\t")
    line_ids = task.ids([separator, *(list(text[2]) if level == "char" else text[2].split()), separator])
    assert int(row[1]) == len(line_ids) - 1 and float(row[2]) == pytest.approx(_hand_loss(task.model, line_ids), abs=1e-4)


def test_layout_predicts_every_symbol_once() -> None:
    sequence = torch.arange(12)
    inputs, targets, mask = layout(sequence, 3)  # 11 targets: streams of 4, 4, 3
    assert inputs.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 0]]
    assert sorted(targets[mask].tolist()) == list(range(1, 12))
    assert mask.sum() == 11 and layout(torch.arange(3), 10)[0].shape == (2, 1)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_cell_carries_its_state_across_windows(name: str) -> None:
    """Windows of 5 with the state carried give the states of one pass over the whole stream, and a
    training step runs (with a gradient for every weight)."""
    torch.manual_seed(1)
    model = LanguageModel(12, 6, 8, num_layers=2, cell=name, direction="both").eval()
    ids = torch.randint(1, 12, (3, 17))
    for direction in ("forward", "backward"):
        lm = model.lm(direction)
        whole, _ = lm(ids)
        state = None
        pieces = []
        for start in range(0, 17, 5):
            outputs, state = lm(ids[:, start : start + 5], state)
            pieces.append(outputs)
        torch.testing.assert_close(torch.cat(pieces, dim=1), whole, rtol=1e-5, atol=1e-6)
    model.train()
    lm = model.lm("forward")
    nll, state = lm.nll(ids[:, :-1], ids[:, 1:])
    nll.mean().backward()
    assert all(p.grad is not None for p in lm.parameters())
    assert all(t.shape == (2, 3, 8) for t in state)


def test_token_states_are_flair_style(char_run) -> None:  # type: ignore[no-untyped-def]
    task, _ = LanguageModelTask.load(char_run.model_path)
    states = task.model.token_states([["the", "cat"], ["a"]], task.symbols, "char")
    assert [tuple(s.shape) for s in states] == [(2, 32), (1, 32)]
    ids = torch.tensor([task.ids(["\n", *"the cat", "\n"])])
    forward = task.model.hidden_states(ids, torch.tensor([ids.size(1)]))["forward"]
    torch.testing.assert_close(states[0][1], forward[0, 7])  # after the "t" of "cat"


# ------------------------------------------------------------------------------------------ resume


def test_an_interrupted_run_resumes_exactly(corpus: Path, tmp_path: Path) -> None:
    """Stopped after the first window of epoch 2 (the state it carries goes into the checkpoint), resumed:
    the weights of a run that was never stopped."""
    recipe = recipe_from_dict(lm_recipe(corpus, training={"max_epochs": 2, "checkpoint_every_steps": 3}))
    whole = run(recipe, tmp_path / "whole")
    interrupt_in_epoch(recipe, tmp_path / "cut")
    tensors, state = load_checkpoint(tmp_path / "cut" / "checkpoint.zip")
    assert state["progress"]["epoch"] == 1 and state["progress"]["step"] == 1
    assert int(tensors["task.window"]) == 0 and tensors["task.forward.0"].shape == (1, 8, 32)
    resumed = run(recipe, resume=tmp_path / "cut")
    first, second = read_archive(whole.model_path)["tensors"], read_archive(resumed.model_path)["tensors"]
    for name in first:
        assert torch.equal(first[name], second[name]), name
    assert resumed.history[-1]["dev"] == whole.history[-1]["dev"]


# ------------------------------------------------------------------------------------------ data


def test_bad_input_files_are_data_errors_naming_the_file(corpus: Path, tmp_path: Path, char_run) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.txt").write_bytes(b"fine line\nbad \xff byte\n")
    with pytest.raises(DataError, match=r"bad/train.txt:2: not valid UTF-8"):
        LanguageModelTask.from_recipe(recipe_from_dict(lm_recipe(bad, data={"dev": None, "test": None})))
    (bad / "train.txt").write_bytes(b"")
    with pytest.raises(DataError, match=r"bad/train.txt: no lines of text in this file"):
        LanguageModelTask.from_recipe(recipe_from_dict(lm_recipe(bad, data={"dev": None, "test": None})))
    lm = seqtag.load(char_run.model_path)
    with pytest.raises(DataError, match="nowhere.txt: file not found"):
        lm.evaluate_file(tmp_path / "nowhere.txt")
    with pytest.raises(seqtag.SeqtagError, match="--label-column: not an option"):
        lm.evaluate_file(corpus / "test.txt", label_column=1)


def test_conll_files_are_read_as_text(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("-DOCSTART- O\n\nThe O\ncat B-X\n\nA O\ndog O\n.\tO\n", encoding="utf-8")
    recipe = recipe_from_dict(lm_recipe(tmp_path, data={"format": "conll", "dev": None, "test": None}))
    assert LanguageModelTask.read_splits(recipe)["train"] == ["The cat", "A dog ."]
    with pytest.raises(DataError, match=r"train.txt:3: the word column 5 does not exist"):
        LanguageModelTask.read_splits(recipe_from_dict(lm_recipe(tmp_path, data={"format": "conll", "word_column": 5,
                                                                                   "dev": None, "test": None})))


def test_cli_evaluate_info_and_predict(char_run, corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    model = str(char_run.model_path)
    assert main(["evaluate", model, str(corpus / "test.txt")]) == 0
    assert "bits per character" in capsys.readouterr().out
    assert main(["info", model]) == 0
    assert "language model: char level, forward" in capsys.readouterr().out
    assert main(["predict", model, str(corpus / "valid.txt")]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == "line\ttokens\tloss\tbpc\ttext" and len(rows) == 41


def test_a_backward_model_generates_the_text_before_the_prompt(corpus: Path, tmp_path: Path) -> None:
    recipe = copy.deepcopy(lm_recipe(corpus, model={"direction": "backward", "cell": "gru"}, training={"max_epochs": 1},
                                     data={"test": None}))
    result = run(recipe_from_dict(recipe), tmp_path / "backward")
    lm = seqtag.load(result.model_path)
    text = lm.generate(" cat", max_tokens=10, temperature=0, seed=1)
    assert text.endswith(" cat") and len(text) == 14
    assert json.loads(json.dumps(lm.evaluate(["the cat sat"]), allow_nan=False))["tokens"] == 12


# ------------------------------------------------------------------- contextual embeddings (tagging)


def test_a_tagger_with_contextual_language_model_embeddings(tiny_corpus: Path, tmp_path: Path) -> None:
    """embeddings.contextual: a character LM (both directions) trained on the corpus's word column feeds the
    tagger; frozen by default, stored in the tagger's model file, which then works without the LM file."""
    from tests.conftest import TINY_RECIPE

    lm = run(recipe_from_dict(lm_recipe(tiny_corpus, data={"format": "conll"},
                                        model={"direction": "both", "hidden_size": 24})), tmp_path / "lm")
    tagger_recipe = copy.deepcopy(TINY_RECIPE)
    tagger_recipe["data"] = {"dir": str(tiny_corpus), "label_column": 1}
    tagger_recipe["embeddings"]["contextual"] = str(tmp_path / "lm.seqtag")
    tagger_recipe["training"].update({"max_epochs": 1, "threads": 1})
    with pytest.raises(RecipeError, match="embeddings.contextual: no model file"):
        recipe_from_dict(tagger_recipe, check=True)
    lm.model_path.rename(tmp_path / "lm.seqtag")
    tagged = run(recipe_from_dict(tagger_recipe), tmp_path / "tagger")
    weights, stored = read_archive(tmp_path / "lm.seqtag")["tensors"], read_archive(tagged.model_path)["tensors"]
    assert all(torch.equal(weights[name], stored["contextual." + name]) for name in weights)  # frozen
    (tmp_path / "lm.seqtag").unlink()
    tagger = seqtag.load(tagged.model_path)
    assert [t.text for t in tagger.tag("Anna Berg visited Oslo .")[0].tokens] == ["Anna", "Berg", "visited", "Oslo", "."]
    if importlib.util.find_spec("onnxscript") is not None:
        with pytest.raises(seqtag.SeqtagError, match="ONNX export does not support contextual"):
            tagger.export_onnx(tmp_path / "tagger.onnx")
    # fine-tuned with the tagger, the language model's weights change
    lm_again = run(recipe_from_dict(lm_recipe(tiny_corpus, data={"format": "conll"}, model={"hidden_size": 24})),
                   tmp_path / "lm2")
    tagger_recipe["embeddings"].update({"contextual": str(lm_again.model_path), "contextual_trainable": True})
    tuned = run(recipe_from_dict(tagger_recipe), tmp_path / "tuned")
    stored = read_archive(tuned.model_path)["tensors"]
    before = read_archive(lm_again.model_path)["tensors"]
    assert not torch.equal(before["forward_lm.rnn.weight_hh_l0"], stored["contextual.forward_lm.rnn.weight_hh_l0"])
    assert torch.equal(before["forward_lm.decoder.weight"], stored["contextual.forward_lm.decoder.weight"])  # unused
    tagger_recipe["embeddings"]["contextual"] = str(tagged.model_path)
    with pytest.raises(RecipeError, match="is a 'tagging' model, not a language model"):
        run(recipe_from_dict(tagger_recipe), tmp_path / "wrong")


def test_init_from_a_tagger_with_contextual_embeddings(tiny_corpus: Path, tmp_path: Path) -> None:
    """The WNUT-17 chain with embeddings.contextual: a tagger with the same contextual language model starts
    from another's network (its BiLSTM reads the LM's states too); the frozen LM is the file's, unchanged."""
    from tests.conftest import TINY_RECIPE

    lm = run(recipe_from_dict(lm_recipe(tiny_corpus, data={"format": "conll"},
                                        model={"direction": "both", "hidden_size": 24})), tmp_path / "lm")
    tagger_recipe = copy.deepcopy(TINY_RECIPE)
    tagger_recipe["data"] = {"dir": str(tiny_corpus), "label_column": 1}
    tagger_recipe["embeddings"]["contextual"] = str(lm.model_path)
    tagger_recipe["training"].update({"max_epochs": 1, "threads": 1})
    source = run(recipe_from_dict(tagger_recipe), tmp_path / "source")
    tagger_recipe["model"]["init_from"] = str(source.model_path)
    tagger_recipe["seed"] = 7  # another initialisation than the source's
    tagger_recipe["training"]["lr"] = 1e-12  # next to no update: the copied network is what the model file holds
    target = run(recipe_from_dict(tagger_recipe), tmp_path / "target")
    before, after = read_archive(source.model_path)["tensors"], read_archive(target.model_path)["tensors"]
    lstm = [name for name in before if name.startswith("encoder.") and "weight_ih" in name]
    assert lstm and all(torch.allclose(before[name], after[name], atol=1e-6) for name in lstm)
    assert all(torch.equal(before[name], after[name]) for name in before if name.startswith("contextual."))


def test_a_datasets_source_gives_each_split_its_text_lines(tmp_path: Path) -> None:
    from seqtag.registry import recipe_from_dict
    from seqtag.tasks.language_model.task import read_dataset_text

    for split in ("train", "dev"):
        (tmp_path / f"{split}.json").write_text("\n".join(json.dumps({"text": f"{split} line {i}\nsecond"}) for i in range(3)),
                                               encoding="utf-8")
    data = {"format": "json", "dir": str(tmp_path), "train": "train.json", "dev": "dev.json", "test": None}
    lines = read_dataset_text(recipe_from_dict({"task": "language_model", "data": data}))
    assert lines == {split: [text for i in range(3) for text in (f"{split} line {i}", "second")] for split in ("train", "dev")}
    wrong = recipe_from_dict({"task": "language_model", "data": {**data, "text_field": "body"}})
    with pytest.raises(DataError, match=r"\[train\]: no field 'body'"):
        read_dataset_text(wrong)
