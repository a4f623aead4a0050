"""Hostile tokenizer settings (issue 22): a 1,200-character ``tokenizer.extra_abbreviations`` entry
trained fine and then made the model unloadable (RecursionError while compiling the token regex).

Abbreviations are now bounded (length and number) where the settings are made, a recipe holding a
bad one stops before any data is read, a model file holding one is a clean ArchiveError, and the regex
is built without recursion whatever it is given.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

import seqtag
from seqtag.data import text
from seqtag.data.text import MAX_ABBREVIATION_LENGTH, MAX_EXTRA_ABBREVIATIONS, Tokenizer, TokenizerConfig
from seqtag.errors import ArchiveError, RecipeError, SeqtagError
from seqtag.registry import recipe_from_dict

from .bounded import FIXTURES, assert_clean_error, run_bounded

LONG = "a" * 1200


def test_a_long_abbreviation_is_refused_with_a_short_message() -> None:
    with pytest.raises(ValueError, match=rf"at most {MAX_ABBREVIATION_LENGTH} characters, got 'a+\.\.\.a+' \(1200 characters\)") as caught:
        TokenizerConfig(extra_abbreviations=(LONG,))
    assert len(str(caught.value)) < 200
    assert TokenizerConfig(extra_abbreviations=("a" * MAX_ABBREVIATION_LENGTH,)).extra_abbreviations  # the bound itself is fine


def test_too_many_abbreviations_are_refused() -> None:
    many = tuple(f"Abc{i}" for i in range(MAX_EXTRA_ABBREVIATIONS + 1))
    with pytest.raises(ValueError, match=f"at most {MAX_EXTRA_ABBREVIATIONS} abbreviations, got {MAX_EXTRA_ABBREVIATIONS + 1}"):
        TokenizerConfig(extra_abbreviations=many)


def test_from_recipe_reports_every_problem_as_a_recipe_error() -> None:
    with pytest.raises(RecipeError) as caught:
        TokenizerConfig.from_recipe({"extra_abbreviations": [LONG, "Gen", "-x", 5]})
    lines = str(caught.value).splitlines()
    assert len(lines) == 3 and all(line.startswith("tokenizer.extra_abbreviations: ") for line in lines)
    assert all(len(line) < 200 for line in lines)
    config = TokenizerConfig.from_recipe({"split_hyphens": True, "extra_abbreviations": ["Gen", "Univ."]})
    assert config == TokenizerConfig(split_hyphens=True, extra_abbreviations=("Gen", "Univ."))


def test_a_target_recipe_with_a_long_abbreviation_stops_before_reading_data(tmp_path: Path) -> None:
    from seqtag.tasks.target_sentiment.task import TargetSentimentTask

    recipe = recipe_from_dict({
        "task": "target-sentiment", "data": {"dir": str(tmp_path / "no-such-folder")}, "embeddings": {"dim": 8},
        "tokenizer": {"extra_abbreviations": [LONG]},
    })
    with pytest.raises(RecipeError, match="tokenizer.extra_abbreviations: an abbreviation has at most 40 characters"):
        TargetSentimentTask.from_recipe(recipe)  # the data folder does not exist: nothing was read


def test_a_tagging_recipe_with_a_long_abbreviation_fails_before_training(tiny_corpus: Path, tmp_path: Path) -> None:
    from seqtag.tasks.tagging.task import TaggingTask

    from ..conftest import TINY_RECIPE

    recipe = recipe_from_dict({**TINY_RECIPE, "data": {"dir": str(tiny_corpus), "label_column": 1},
                               "tokenizer": {"extra_abbreviations": [LONG]}})
    with pytest.raises(SeqtagError, match="extra_abbreviations: an abbreviation has at most 40 characters"):
        TaggingTask.from_recipe(recipe)


def _with_abbreviations(source: Path, target: Path, abbreviations: list[str]) -> Path:
    """A copy of a model file whose stored tokenizer settings (and recipe) hold ``abbreviations``."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        for name in original.namelist():
            data = original.read(name)
            if name in ("vocab.json", "recipe.json"):
                content = json.loads(data)
                section = content["tokenizer"] if name == "vocab.json" else content.setdefault("tokenizer", {})
                section["extra_abbreviations"] = abbreviations
                data = json.dumps(content).encode()
            copy.writestr(name, data)
    return target


@pytest.mark.parametrize("model", ["tagging.seqtag", "target.seqtag"])
def test_a_model_file_holding_a_long_abbreviation_is_a_clean_archive_error(tmp_path: Path, model: str) -> None:
    path = _with_abbreviations(FIXTURES / model, tmp_path / model, [LONG])
    outcome = run_bounded("", f"seqtag.load({str(path)!r})\nresult = None")
    assert_clean_error(outcome, "ArchiveError", r"tokenizer setting extra_abbreviations: an abbreviation has at most 40 "
                                                r"characters, got 'a+\.\.\.a+' \(1200 characters\)")
    assert outcome["seconds"] < 10


def test_a_model_file_with_valid_abbreviations_still_loads(tmp_path: Path) -> None:
    path = _with_abbreviations(FIXTURES / "tagging.seqtag", tmp_path / "ok.seqtag", ["Gen", "Univ."])
    tagger = seqtag.load(path)
    assert [t.text for t in tagger.tokenizer.tokenize("Gen. Smith of Univ. Oslo")][:2] == ["Gen.", "Smith"]


def test_the_abbreviation_regex_is_built_without_recursion() -> None:
    # whatever reaches it (the bounds are checked earlier): a 20,000-character word, no RecursionError
    pattern = text._trie_pattern(["a" * 20_000, "ab"])
    assert pattern == "a(?:" + "a" * 19_999 + "|b)"
    assert text._trie_pattern(["Mr", "Mrs", "Ms"]) == "M(?:r(?:s)?|s)"


def test_a_config_changed_after_it_was_made_is_checked_by_the_tokenizer() -> None:
    config = TokenizerConfig()
    config.extra_abbreviations = (LONG,)
    with pytest.raises(ValueError, match="at most 40 characters"):
        Tokenizer(config)


def test_tokenizer_settings_that_are_not_an_object_are_an_archive_error() -> None:
    with pytest.raises(ArchiveError, match="JSON object"):
        TokenizerConfig.from_json(["x"])  # type: ignore[arg-type]
