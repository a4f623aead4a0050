"""Corpora through the datasets library, built locally (never the network)."""

import copy
import json

import pytest

datasets = pytest.importorskip("datasets")

import seqtag  # noqa: E402
from seqtag.errors import DataError  # noqa: E402
from seqtag.registry import recipe_from_dict  # noqa: E402
from seqtag.tasks.tagging.task import TaggingTask  # noqa: E402
from seqtag.training.run import run  # noqa: E402
from tests.conftest import TINY_RECIPE, make_sentence  # noqa: E402

NAMES = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]


def examples(count: int, seed: int) -> dict:
    import random

    rng = random.Random(seed)
    rows = [make_sentence(rng) for _ in range(count)]
    return {"tokens": [[w for w, _ in row] for row in rows], "ner_tags": [[NAMES.index(t) for _, t in row] for row in rows]}


def hub_style(tmp_path):
    """A DatasetDict shaped like conll2003 on the hub: ClassLabel tags, train/validation/test."""
    features = datasets.Features(
        {"tokens": datasets.Sequence(datasets.Value("string")), "ner_tags": datasets.Sequence(datasets.ClassLabel(names=NAMES))}
    )
    dataset = datasets.DatasetDict(
        {split: datasets.Dataset.from_dict(examples(n, seed), features=features)
         for split, n, seed in (("train", 120, 1), ("validation", 30, 2), ("test", 30, 3))}
    )
    dataset.save_to_disk(str(tmp_path / "saved"))
    return tmp_path / "saved"


def recipe_with(data: dict) -> dict:
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {**data}
    recipe["training"]["max_epochs"] = 6
    return recipe


def test_dataset_saved_to_disk_trains_through_a_recipe(tmp_path):
    folder = hub_style(tmp_path)
    result = run(recipe_from_dict(recipe_with({"disk": str(folder), "train": "train", "dev": "validation", "test": "test"})), tmp_path / "run")
    assert result.test["f1"] > 60.0
    tagger = seqtag.load(result.model_path)
    assert tagger.tag_tokens(["Anna", "Berg", "visited", "Oslo", "."]).tags[0] == "B-PER"


def test_class_label_names_and_default_split_names(tmp_path):
    folder = hub_style(tmp_path)
    task, splits = TaggingTask.from_recipe(recipe_from_dict(recipe_with({"disk": str(folder)})))  # train.txt etc. fall back
    assert set(splits) == {"train", "dev", "test"} and len(splits["dev"]) == 30
    assert all(label in NAMES for s in splits["train"] for label in s.labels)
    assert splits["train"][0].path.endswith("[train]") and splits["train"][0].line == 1


def test_local_json_files(tmp_path):
    for split, n, seed in (("train", 120, 1), ("valid", 30, 2), ("test", 30, 3)):
        data = examples(n, seed)
        rows = [{"words": t, "labels": [NAMES[i] for i in g]} for t, g in zip(data["tokens"], data["ner_tags"])]
        (tmp_path / f"{split}.json").write_text("\n".join(json.dumps(r) for r in rows))
    recipe = recipe_with({"format": "json", "dir": str(tmp_path), "train": "train.json", "dev": "valid.json",
                          "test": "test.json", "tokens_field": "words", "tags_field": "labels"})
    task, splits = TaggingTask.from_recipe(recipe_from_dict(recipe))
    assert len(splits["train"]) == 120 and splits["test"][0].labels[0] in NAMES


def test_csv_with_space_separated_fields_and_integer_tags_need_names(tmp_path):
    (tmp_path / "train.csv").write_text("tokens,ner_tags\nAnna Berg visited Oslo,1 2 0 3\n")
    data = {"format": "csv", "dir": str(tmp_path), "train": "train.csv", "dev": None, "test": None}
    with pytest.raises(DataError, match="tag_names"):
        TaggingTask.from_recipe(recipe_from_dict(recipe_with(data)))
    _, splits = TaggingTask.from_recipe(recipe_from_dict(recipe_with({**data, "tag_names": NAMES[:4]})))
    assert splits["train"][0].labels == ["B-PER", "I-PER", "O", "B-LOC"]


def test_bad_fields_and_lengths_are_clear_errors(tmp_path):
    dataset = datasets.Dataset.from_dict({"tokens": [["a", "b"]], "tags": [["O"]]})
    dataset.save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(DataError, match="no field 'ner_tags'"):
        TaggingTask.from_recipe(recipe_from_dict(recipe_with({"disk": str(tmp_path / "bad")})))
    with pytest.raises(DataError, match=r"\[train\]:1: 2 tokens but 1 tags"):
        TaggingTask.from_recipe(recipe_from_dict(recipe_with({"disk": str(tmp_path / "bad"), "tags_field": "tags"})))


def test_unreachable_hub_says_so_and_suggests_local_files(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'conll2003' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError) as error:
        TaggingTask.from_recipe(recipe_from_dict(recipe_with({"hub": "conll2003"})))
    message = str(error.value)
    assert "Hugging Face hub" in message and "data.format" in message and "data.disk" in message
