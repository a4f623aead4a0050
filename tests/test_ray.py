"""The Ray integration: SeqtagTagger on a ray.data.Dataset, and ``seqtag predict --engine ray``, on a
local two-CPU Ray started by the test (no dashboard, nothing from the network)."""

from __future__ import annotations

import logging
import os
import random

import pytest

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'seqtag[ray]'): Ray tests skipped")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'seqtag[ray]'): Ray tests skipped")

import seqtag  # noqa: E402
from seqtag.cli import main  # noqa: E402
from seqtag.data.conll import Sentence  # noqa: E402
from seqtag.integrations.ray import SeqtagTagger  # noqa: E402

from .conftest import make_sentence  # noqa: E402
from .test_bulk import write_inputs  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():  # type: ignore[no-untyped-def]
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


def test_map_batches_tags_a_column_of_token_lists_and_of_texts(tiny_model, local_ray):
    rng = random.Random(5)
    sentences = [[w for w, _ in make_sentence(rng)] for _ in range(40)]
    rows = [{"id": i, "sentence": " ".join(tokens), "words": tokens} for i, tokens in enumerate(sentences)]
    dataset = ray.data.from_items(rows)
    pool = ray.data.ActorPoolStrategy(size=1)
    tagged = dataset.map_batches(SeqtagTagger, fn_constructor_args=(str(tiny_model),),
                                 fn_constructor_kwargs={"text_column": "words", "input": "tokens", "threads": 1},
                                 compute=pool, batch_size=16).take_all()
    predictor = seqtag.load(tiny_model)
    expected = predictor.task.predict([Sentence(tokens=t) for t in sentences])
    by_id = {row["id"]: row for row in tagged}
    assert len(by_id) == 40
    for i, tags in enumerate(expected):
        row = by_id[i]
        assert list(row["tags"]) == tags and row["sentence"] == " ".join(sentences[i])
        spans = [(e["label"], e["start"], e["end"]) for e in row["entities"]]
        assert spans == [(e.label, e.token_start, e.token_end) for e in predictor.tag_tokens(sentences[i]).entities]

    texts = [" ".join(tokens[:-1]) + "." for tokens in sentences[:10]]
    tagged = ray.data.from_items([{"text": t} for t in texts]).map_batches(
        SeqtagTagger, fn_constructor_args=(str(tiny_model), "cpu", 8), compute=pool, batch_size=4).take_all()
    by_text = {row["text"]: row for row in tagged}
    for text in texts:
        result = predictor.tag(text)
        row = by_text[text]
        assert [list(tags) for tags in row["tags"]] == [s.tags for s in result]
        assert [(e["text"], e["label"], e["start"], e["end"]) for e in row["entities"]] == \
            [(e.text, e.label, e.start_char, e.end_char) for s in result for e in s.entities]


def test_predict_with_the_ray_engine_writes_what_the_local_engine_writes(tiny_model, local_ray, tmp_path, capsys):
    inputs = write_inputs(tmp_path / "in", sentences=80)
    files = [str(inputs["conll"]), str(inputs["tokens"])]
    assert main(["predict", str(tiny_model), *files, "-o", str(tmp_path / "local"), "--threads", "1"]) == 0
    assert main(["predict", str(tiny_model), *files, "-o", str(tmp_path / "ray"), "--engine", "ray",
                 "--workers", "2", "--threads", "2"]) == 0
    for path in (inputs["conll"], inputs["tokens"]):
        assert (tmp_path / "ray" / path.name).read_bytes() == (tmp_path / "local" / path.name).read_bytes()
    capsys.readouterr()
    assert main(["predict", str(tiny_model), str(inputs["text"]), "--format", "text", "--engine", "ray"]) == 0
    printed = capsys.readouterr().out
    assert main(["predict", str(tiny_model), str(inputs["text"]), "--format", "text", "--threads", "1"]) == 0
    assert capsys.readouterr().out == printed
    assert ray.is_initialized()  # the engine leaves a Ray it did not start running
