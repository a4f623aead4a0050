"""Shared fixtures: tiny corpora written by the tests, and the real corpora when present."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

FIRST = ["Anna", "Boris", "Clara", "David", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas"]
LAST = ["Berg", "Costa", "Dahl", "Evans", "Fischer", "Gomez", "Holm", "Ivanov"]
PLACES = ["Oslo", "Lima", "Cairo", "Perth", "Quebec", "Riga", "Turin", "Utrecht"]
ORGS = [["Acme", "Group"], ["Nordic", "Bank"], ["Blue", "River", "Motors"], ["Vega", "Labs"]]
MISC = ["German", "French", "Olympic", "Nobel"]


def make_sentence(rng: random.Random) -> list[tuple[str, str]]:
    """A made-up sentence with PER/LOC/ORG/MISC entities in IOB2."""
    person = [(rng.choice(FIRST), "B-PER"), (rng.choice(LAST), "I-PER")]
    place = [(rng.choice(PLACES), "B-LOC")]
    org = rng.choice(ORGS)
    organisation = [(w, ("B-ORG" if i == 0 else "I-ORG")) for i, w in enumerate(org)]
    misc = [(rng.choice(MISC), "B-MISC")]
    o = lambda *words: [(w, "O") for w in words]  # noqa: E731
    templates = [
        person + o("visited") + place + o("."),
        o("The") + organisation + o("hired") + person + o("."),
        place + o("welcomes") + misc + o("fans", "."),
        person + o("of") + organisation + o("flew", "to") + place + o("on", "Monday", "."),
        o("a", "quiet", "day", "in", "the", "markets", "."),
        misc + o("officials", "met") + person + o("in") + place + o("."),
    ]
    return rng.choice(templates)


def write_corpus(path: Path, sentences: int, seed: int, sep: str = " ") -> Path:
    rng = random.Random(seed)
    lines = []
    for _ in range(sentences):
        lines.extend(f"{w}{sep}{t}" for w, t in make_sentence(rng))
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_three_column_corpus(source: Path, folder: Path) -> Path:
    """Copy a 2-column corpus folder adding a middle input column (``CAP``/``LOW``, a stand-in
    for POS) before the label, for tests of ``data.feature_columns``."""
    folder.mkdir()
    for name in ("train.txt", "valid.txt", "test.txt"):
        lines = []
        for line in (source / name).read_text(encoding="utf-8").splitlines():
            word, _, tag = line.partition(" ")
            lines.append(f"{word} {'CAP' if word[:1].isupper() else 'LOW'} {tag}" if line else "")
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with made-up train.txt / valid.txt / test.txt (2 columns, IOB2)."""
    folder = tmp_path_factory.mktemp("tiny")
    write_corpus(folder / "train.txt", 120, seed=1)
    write_corpus(folder / "valid.txt", 30, seed=2)
    write_corpus(folder / "test.txt", 30, seed=3)
    return folder


TINY_RECIPE = {
    "task": "tagging",
    "name": "tiny",
    "seed": 3,
    "embeddings": {"dim": 16},
    "model": {
        "char": {"encoder": "cnn", "dim": 8, "filters": 8},
        "encoder": {"hidden_size": 16},
        "dropout": 0.2,
    },
    "training": {"lr": 0.05, "max_epochs": 3, "batch_size": 8, "progress": False, "patience": None},
}


@pytest.fixture
def tiny_recipe(tiny_corpus: Path) -> dict:
    """A recipe dictionary for the tiny corpus with a small model."""
    import copy

    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(tiny_corpus), "label_column": 1}
    return recipe


def interrupt_in_epoch(recipe, folder: Path, epoch: int = 2) -> None:  # type: ignore[no-untyped-def]
    """Run ``recipe`` into ``folder`` and stop it at the first step of the ``epoch``-th epoch
    trained (counting across both stages of a ``training.refit`` run), as Ctrl-C does: the
    trainer saves a checkpoint and raises TrainingInterrupted, which says ``--resume``. The
    caller resumes from ``folder``."""
    from seqtag.training import trainer as trainer_module
    from seqtag.training.run import run
    from seqtag.training.trainer import TrainingInterrupted

    original = trainer_module.Trainer.train_epoch
    calls = {"n": 0}

    def interrupting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == epoch:
            self._interrupted = True  # what the SIGINT handler does
        return original(self, *args, **kwargs)

    trainer_module.Trainer.train_epoch = interrupting  # type: ignore[method-assign]
    try:
        with pytest.raises(TrainingInterrupted, match="--resume"):
            run(recipe, folder)
    finally:
        trainer_module.Trainer.train_epoch = original  # type: ignore[method-assign]


def shared(*parts: str) -> Path:
    """A path under ../shared/data; skips the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real corpus not present: {path}")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> Path:
    """A model file trained for 8 epochs on the tiny corpus (shared by API, CLI and spaCy tests)."""
    import copy

    from seqtag.registry import recipe_from_dict
    from seqtag.training.run import run

    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(tiny_corpus), "label_column": 1}
    recipe["training"]["max_epochs"] = 8
    return run(recipe_from_dict(recipe), tmp_path_factory.mktemp("tiny-model")).model_path
