"""Transfer learning: model.init_from starts from another trained tagger; data.train may list several files."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import pytest
import torch

from seqtag.errors import SeqtagError
from seqtag.registry import load_task, recipe_from_dict
from seqtag.tasks.tagging.task import TaggingTask
from seqtag.training.run import run
from tests.conftest import TINY_RECIPE, write_corpus

RENAME = {"PER": "person", "LOC": "location", "ORG": "corporation", "MISC": "product"}


@pytest.fixture(scope="module")
def other_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second corpus with other sentences, other tag names and one extra word ("zyzzyva")."""
    folder = tmp_path_factory.mktemp("other")
    for name, count, seed in (("train.txt", 60, 11), ("valid.txt", 20, 12), ("test.txt", 20, 13)):
        write_corpus(folder / name, count, seed)
        lines = []
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            if line:
                word, tag = line.split(" ")
                tag = tag if tag == "O" else f"{tag[:2]}{RENAME[tag[2:]]}"
                line = f"{word} {tag}"
            lines.append(line)
        lines += ["zyzzyva O", ""]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _target(folder: Path, source: Path, **model: object) -> TaggingTask:
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(folder), "label_column": 1}
    recipe["model"].update(model)
    recipe["model"]["init_from"] = str(source)
    task, _ = TaggingTask.from_recipe(recipe_from_dict(recipe))
    return task


def _word_vector(task: TaggingTask, word: str) -> torch.Tensor:
    index = task.words.vocab.stoi[word]
    embedder = task.model.words
    if index < embedder.num_trainable:
        return embedder.embedding.weight[index]
    return embedder.frozen[index - embedder.num_trainable].float()


def test_copies_encoder_and_vectors_by_symbol_and_leaves_a_new_tag_set_fresh(
    tiny_model: Path, other_corpus: Path
) -> None:
    source, _ = load_task(tiny_model)
    assert isinstance(source, TaggingTask)
    target = _target(other_corpus, tiny_model)
    src_state, state = source.model.state_dict(), target.model.state_dict()
    for name in ("encoder.weight_ih_l0", "encoder.weight_hh_l0_reverse", "encoder.bias_ih_l0", "chars.conv.weight"):
        assert torch.equal(state[name], src_state[name]), name
    # The vocabularies differ, so rows are matched by symbol, not by index.
    assert target.words.vocab.itos != source.words.vocab.itos
    for word in ("Oslo", "visited", "<unk>"):
        assert torch.equal(_word_vector(target, word), _word_vector(source, word)), word
    shared_chars = [c for c in target.chars.itos[1:] if c in source.chars.stoi]
    assert shared_chars
    for char in shared_chars:
        assert torch.equal(target.model.chars.embedding.weight[target.chars.stoi[char]],  # type: ignore[union-attr]
                           source.model.chars.embedding.weight[source.chars.stoi[char]])  # type: ignore[union-attr]
    # A word the source never saw keeps its fresh vector; the new tag set gets a fresh output layer and CRF.
    assert "zyzzyva" not in source.words.vocab.stoi and "zyzzyva" in target.words.vocab.stoi
    assert target.tags.itos != source.tags.itos
    assert not torch.equal(state["emissions.weight"], src_state["emissions.weight"])
    assert not torch.equal(state["crf.transitions"][:3, :3], src_state["crf.transitions"][:3, :3])


def test_same_tags_copy_the_output_layer_and_crf(tiny_model: Path, tiny_corpus: Path) -> None:
    source, _ = load_task(tiny_model)
    target = _target(tiny_corpus, tiny_model)
    for name in ("emissions.weight", "emissions.bias", "crf.transitions", "crf.start_transitions", "crf.end_transitions"):
        assert torch.equal(target.model.state_dict()[name], source.model.state_dict()[name]), name


def test_other_shapes_are_left_fresh_with_a_warning(
    tiny_model: Path, other_corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source, _ = load_task(tiny_model)
    with caplog.at_level(logging.WARNING):
        target = _target(other_corpus, tiny_model, encoder={"hidden_size": 12})
    assert "no encoder weight has the same shape" in caplog.text
    assert target.model.encoder.weight_hh_l0.shape != source.model.encoder.weight_hh_l0.shape
    assert torch.equal(_word_vector(target, "Oslo"), _word_vector(source, "Oslo"))


def test_bad_sources_are_clear_errors(tiny_model: Path, other_corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(SeqtagError, match="init_from.*no such model file.*train"):
        _target(other_corpus, tmp_path / "missing.seqtag")
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(other_corpus), "label_column": 1}
    recipe["embeddings"] = {"dim": 20}
    recipe["model"]["init_from"] = str(tiny_model)
    with pytest.raises(SeqtagError, match="word vectors have 16 dimensions, this recipe's 20"):
        TaggingTask.from_recipe(recipe_from_dict(recipe))


def test_training_from_a_warm_start_learns_the_new_tags(tiny_model: Path, other_corpus: Path, tmp_path: Path) -> None:
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(other_corpus), "label_column": 1}
    recipe["model"]["init_from"] = str(tiny_model)
    recipe["training"]["max_epochs"] = 6
    result = run(recipe_from_dict(recipe), tmp_path / "run")
    task, metrics = load_task(result.model_path)
    assert isinstance(task, TaggingTask)
    assert "B-person" in task.tags.stoi
    assert metrics["test"]["f1"] > 80.0


def test_train_on_a_list_of_files_without_dev_keeps_the_last_epoch(tiny_corpus: Path, tmp_path: Path) -> None:
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(tiny_corpus), "label_column": 1, "train": ["train.txt", "valid.txt"], "dev": None}
    parsed = recipe_from_dict(recipe)
    _, splits = TaggingTask.from_recipe(parsed)  # type: ignore[arg-type]
    assert len(splits["train"]) == 120 + 30 and "dev" not in splits
    assert Path(splits["train"][-1].path).name == "valid.txt"  # errors still name the right file
    result = run(parsed, tmp_path / "run")
    assert result.best_epoch == recipe["training"]["max_epochs"]


def test_a_missing_file_in_a_list_is_named(tiny_corpus: Path) -> None:
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(tiny_corpus), "label_column": 1, "train": ["train.txt", "extra.txt"]}
    with pytest.raises(SeqtagError, match="extra.txt"):
        recipe_from_dict(recipe, check=True)
    with pytest.raises(SeqtagError, match="train file extra.txt is missing"):
        TaggingTask.from_recipe(recipe_from_dict(recipe))  # type: ignore[arg-type]
