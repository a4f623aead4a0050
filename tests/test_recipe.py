from pathlib import Path

import pytest
import yaml

from seqtag.errors import RecipeError
from seqtag.registry import load_recipe, recipe_from_dict
from seqtag.tasks.tagging.recipe import TaggingRecipe
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parent.parent


def test_all_shipped_recipes_validate():
    """Every shipped recipe is valid; with its corpus in ../shared/data it also passes the file checks."""
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        recipe = recipe_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
        corpus = SHARED_DATA / Path(recipe.data.dir).name
        if corpus.exists():
            recipe = load_recipe(path, [f"data.dir={corpus}"], check=False)
        elif recipe.resolve_path(recipe.data.dir).exists():  # data shipped with the recipe (demo)
            recipe = load_recipe(path, check=False)
        problems = recipe.problems()
        source = getattr(recipe.model, "init_from", None)
        if source and not (recipe.resolve_path(source) or Path()).is_file():  # a model this clone has not trained
            assert problems == [f"model.init_from: no model file {source}; train that model first (the recipe's "
                                "comment says how) or set model.init_from=null"]
        else:
            assert problems == []
        assert recipe.name == path.stem


def test_every_problem_is_reported_at_once_before_any_work(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "task: tagging\n"
        "data: {dir: nowhere, scheme: iob2, label_colum: 3}\n"
        "embeddings: {pretrained: missing-vectors.txt}\n"
        "model: {encoder: {hidden_size: many}}\n"
        "training: {lr: -1}\n",
        encoding="utf-8",
    )
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: 7 problem(s)")
    for expected in ("data.label_colum: unknown key (did you mean 'data.label_column'?)",
                     "model.encoder.hidden_size: Input should be a valid integer", "training.lr: Input should be greater than 0",
                     "data.train: train.txt not found in nowhere", "data.dev: valid.txt not found", "data.test: test.txt not found",
                     "embeddings.pretrained: no file missing-vectors.txt"):
        assert expected in message, message
    with pytest.raises(RecipeError, match="embeddings.dim: needed"):
        load_recipe(path, ["embeddings.pretrained=null", f"data.dir={ROOT / 'recipes' / 'demo'}", "data.label_colum=null",
                           "model.encoder.hidden_size=10", "training.lr=0.1"])


def test_conll03_recipe_is_ma_and_hovy():
    recipe = load_recipe(ROOT / "recipes" / "conll03.yaml", check=False)
    assert isinstance(recipe, TaggingRecipe)
    assert recipe.embeddings.pretrained == "glove-6b-50d"
    assert (recipe.model.char.dim, recipe.model.char.filters, recipe.model.char.kernel_size) == (30, 30, 3)
    assert recipe.model.encoder.hidden_size == 200 and recipe.model.decoder == "crf"
    assert (recipe.training.optimizer, recipe.training.lr, recipe.training.lr_decay) == ("sgd", 0.015, 0.05)
    assert recipe.data.dir == "data/conll03"


def test_overrides_parse_yaml_values():
    recipe = load_recipe(ROOT / "recipes" / "conll03.yaml", ["training.max_epochs=3", "model.crf.backend=pytorch-crf", "data.dev=null"], check=False)
    assert recipe.training.max_epochs == 3 and recipe.model.crf.backend == "pytorch-crf" and recipe.data.dev is None


def test_all_problems_reported_at_once_with_did_you_mean():
    with pytest.raises(RecipeError) as error:
        recipe_from_dict({"task": "tagging", "model": {"dropuot": 0.5, "decoder": "hmm"}, "training": {"lr": "fast"}})
    message = str(error.value)
    assert "3 problem(s)" in message
    assert "did you mean 'model.dropout'" in message
    assert "model.decoder" in message and "training.lr" in message


def test_unknown_task_and_bad_override():
    with pytest.raises(RecipeError, match="did you mean 'tagging'"):
        recipe_from_dict({"task": "taging"})
    with pytest.raises(RecipeError, match="key.path=value"):
        load_recipe(ROOT / "recipes" / "conll03.yaml", ["training.lr"])
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(ROOT / "recipes" / "nope.yaml")
