"""ONNX export and the ONNX Runtime prediction path: same emissions, same tags, clear errors."""

from __future__ import annotations

import copy

import pytest
import torch

import seqtag
from seqtag.cli import main
from seqtag.data.batching import length_batches
from seqtag.data.conll import read_conll
from seqtag.errors import SeqtagError
from seqtag.registry import recipe_from_dict
from seqtag.tasks.tagging.onnx import OnnxEmissions, export_onnx
from seqtag.tasks.tagging.task import TaggingTask
from tests.conftest import TINY_RECIPE, write_three_column_corpus

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(seqtag.load(tiny_model).task, path)
    return path


def batches_of(task, sentences, size=7):
    encoded = [task.encode(s, with_tags=False) for s in sentences]
    return [task.collate([encoded[i] for i in order]) for order in length_batches([len(e) for e in encoded], size)]


def test_onnx_emissions_equal_torch_on_every_batch_shape(tiny_model, tiny_corpus, exported):
    task = seqtag.load(tiny_model).task
    runtime = OnnxEmissions(exported, task.model)
    sentences = read_conll(tiny_corpus / "test.txt", 0, None)
    with torch.no_grad():
        for batch in batches_of(task, sentences) + batches_of(task, sentences[:1], 1):
            torch.testing.assert_close(runtime(batch), task.model.eval()(batch), rtol=1e-4, atol=1e-4)


def test_load_with_onnx_runtime_gives_the_same_tags_confidences_and_scores(tiny_model, tiny_corpus, exported):
    torch_tagger = seqtag.load(tiny_model)
    onnx_tagger = seqtag.load(tiny_model, runtime="onnx", onnx=exported)
    assert onnx_tagger.task.runtime is not None
    sentences = read_conll(tiny_corpus / "test.txt", 0, 1)
    assert onnx_tagger.task.predict(sentences) == torch_tagger.task.predict(sentences)
    assert onnx_tagger.evaluate(sentences) == torch_tagger.evaluate(sentences)
    text = "Anna Berg visited Oslo . The Acme Group hired Hugo Holm ."
    ours = [e for sentence in onnx_tagger.tag(text) for e in sentence.entities]
    theirs = [e for sentence in torch_tagger.tag(text) for e in sentence.entities]
    assert ours and [(e.text, e.label) for e in ours] == [(e.text, e.label) for e in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert a.confidence == pytest.approx(b.confidence, abs=1e-4)


@pytest.mark.parametrize("pooling", ["max", "mean"])
def test_every_input_kind_exports(tmp_path, tiny_corpus, pooling):
    """Casing, a feature column, pretrained-only words (the frozen table), an even char-CNN width,
    two LSTM layers and a global vector (``model.global_vector``)."""
    folder = write_three_column_corpus(tiny_corpus, tmp_path / "three-columns")
    vectors = tmp_path / "vectors.txt"
    words = ["oslo", "zanzibar", "visited", "kyoto", "the"]
    vectors.write_text("\n".join(f"{w} " + " ".join(f"{(i + 1) * 0.1 + j * 0.01:.3f}" for j in range(16)) for i, w in enumerate(words)) + "\n")
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(folder), "label_column": 2, "feature_columns": [1]}
    recipe["embeddings"] = {"pretrained": str(vectors), "lowercase": True}
    recipe["model"].update({"feature_dim": 4, "casing_dim": 3, "global_vector": pooling})
    recipe["model"]["char"] = {"encoder": "cnn", "dim": 5, "filters": 6, "kernel_size": 4}  # an even width
    recipe["model"]["encoder"] = {"hidden_size": 8, "num_layers": 2}
    task, _ = TaggingTask.from_recipe(recipe_from_dict(recipe))
    assert task.model.words.frozen.size(0) > 0
    path = export_onnx(task, tmp_path / "model.onnx")
    sentences = read_conll(folder / "test.txt", 0, 2)
    sentences[0].tokens[1] = sentences[0].rows[1][0] = "Zanzibar"  # a pretrained-only word
    runtime = OnnxEmissions(path, task.model)
    with torch.no_grad():
        for batch in batches_of(task, sentences):
            torch.testing.assert_close(runtime(batch), task.model.eval()(batch), rtol=1e-4, atol=1e-4)


def test_unsupported_models_and_stale_or_broken_files_are_refused(tiny_model, exported, tmp_path):
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["model"]["encoder"] = {"cell": "gru", "hidden_size": 8}
    task = seqtag.load(tiny_model).task
    gru = TaggingTask(recipe_from_dict({**recipe, "data": {"label_column": 1}}), task.words, task.chars, task.tags,
                      task.corpus_scheme, task.word_dim)
    with pytest.raises(SeqtagError, match="LSTM encoders"):
        export_onnx(gru, tmp_path / "gru.onnx")
    with torch.no_grad():
        task.model.emissions.bias.add_(1.0)  # now a different model
    with pytest.raises(SeqtagError, match="different model"):
        OnnxEmissions(exported, task.model)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07not a protobuf at all")
    with pytest.raises(SeqtagError, match="broken.onnx"):
        OnnxEmissions(broken, task.model)
    with pytest.raises(SeqtagError, match="seqtag export"):
        seqtag.load(tiny_model, runtime="onnx", onnx=tmp_path / "missing.onnx")
    with pytest.raises(SeqtagError, match="unknown runtime"):
        seqtag.load(tiny_model, runtime="tensorrt")


def test_cli_export_then_evaluate_and_predict_with_onnx(tiny_model, tiny_corpus, tmp_path, capsys):
    model = tmp_path / "model.seqtag"
    model.write_bytes(tiny_model.read_bytes())
    assert main(["export", str(model)]) == 0
    assert "model.onnx" in capsys.readouterr().out
    test = str(tiny_corpus / "test.txt")
    main(["evaluate", str(model), test])
    with_torch = capsys.readouterr().out
    main(["evaluate", str(model), test, "--runtime", "onnx"])
    assert capsys.readouterr().out == with_torch
    main(["predict", str(model), test, "--runtime", "onnx", "--output", str(tmp_path / "onnx.txt")])
    main(["predict", str(model), test, "--output", str(tmp_path / "torch.txt")])
    assert (tmp_path / "onnx.txt").read_text() == (tmp_path / "torch.txt").read_text()
    assert main(["predict", str(model), test, "--runtime", "onnx", "--onnx", str(tmp_path / "none.onnx")]) != 0
    assert "seqtag export" in capsys.readouterr().err
