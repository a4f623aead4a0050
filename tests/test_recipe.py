from pathlib import Path

import pytest

from seqtag.errors import RecipeError
from seqtag.recipe import TaggingRecipe, load_recipe, recipe_from_dict

ROOT = Path(__file__).resolve().parent.parent


def test_all_shipped_recipes_validate():
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        recipe = load_recipe(path)
        assert recipe.name == path.stem


def test_conll03_recipe_is_ma_and_hovy():
    recipe = load_recipe(ROOT / "recipes" / "conll03.yaml")
    assert isinstance(recipe, TaggingRecipe)
    assert recipe.embeddings.pretrained == "glove-6b-50d"
    assert (recipe.model.char.dim, recipe.model.char.filters, recipe.model.char.kernel_size) == (30, 30, 3)
    assert recipe.model.encoder.hidden_size == 200 and recipe.model.decoder == "crf"
    assert (recipe.training.optimizer, recipe.training.lr, recipe.training.lr_decay) == ("sgd", 0.015, 0.05)
    assert recipe.data.dir == "data/conll03"


def test_overrides_parse_yaml_values():
    recipe = load_recipe(ROOT / "recipes" / "conll03.yaml", ["training.max_epochs=3", "model.crf.backend=pytorch-crf", "data.dev=null"])
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
