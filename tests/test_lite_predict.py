"""Prediction without PyTorch (seqtag.tasks.tagging.lite): the same bytes as PyTorch with ONNX Runtime, no
torch imported, PyTorch for what it cannot do exactly, stale exports refused."""

from __future__ import annotations

import copy
import io
import json
import logging
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import seqtag
from seqtag import bulk
from seqtag.bulk import PredictJob, local_engine, predict
from seqtag.cli import main
from seqtag.data import schemes
from seqtag.errors import SeqtagError
from seqtag.io import read_archive
from seqtag.modules.crf import CRF
from seqtag.registry import recipe_from_dict
from seqtag.tasks.tagging import lite, onnx
from seqtag.tasks.tagging.recipe import TaggingRecipe
from seqtag.tasks.tagging.task import TaggingTask

from .conftest import FIXTURES, TINY_RECIPE, make_sentence, write_three_column_corpus

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

LONG = 620  # tokens of a sentence tagged in windows (seqtag.tasks.tagging.encoding.WINDOW is 250)


def exported(model: Path) -> Path:
    """``seqtag export MODEL``: the ONNX file beside the model, from the model as loaded from its file."""
    return seqtag.load(model).export_onnx(model.with_suffix(".onnx"))


def untrained(recipe: dict, folder: Path, name: str) -> Path:
    """A model file of a freshly built (untrained, seeded) task: random weights tag all sorts of tags."""
    torch.manual_seed(11)
    built, _ = TaggingTask.from_recipe(recipe_from_dict(recipe))
    return built.save(folder / f"{name}.seqtag")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, tiny_corpus: Path) -> dict[str, Path]:
    """``crf``: a trained CRF tagger, IOBES on an IOB2 corpus, with casing (the compatibility fixture);
    ``softmax``: a softmax decoder in BILOU on IOB2 with pretrained-only words (lower-cased), casing, two
    layers and a global vector; ``features``: an unconstrained CRF with a feature column. Each exported."""
    folder = tmp_path_factory.mktemp("lite")
    crf = folder / "crf.seqtag"
    shutil.copy(FIXTURES / "compat" / "tagging.seqtag", crf)
    vectors = folder / "vectors.txt"
    words = ["oslo", "zanzibar", "visited", "kyoto", "the", "nairobi", "2024"]
    vectors.write_text("\n".join(f"{w} " + " ".join(f"{(i + 1) * 0.1 + j * 0.01:.3f}" for j in range(16))
                                 for i, w in enumerate(words)) + "\n", encoding="utf-8")
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(tiny_corpus), "label_column": 1}
    recipe["embeddings"] = {"pretrained": str(vectors), "lowercase": True}
    recipe["model"].update({"decoder": "softmax", "tag_scheme": "bilou", "casing_dim": 3, "global_vector": "mean"})
    recipe["model"]["encoder"] = {"hidden_size": 8, "num_layers": 2}
    softmax = untrained(recipe, folder, "softmax")
    three = write_three_column_corpus(tiny_corpus, folder / "three-columns")
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(three), "label_column": 2, "feature_columns": [1]}
    recipe["model"].update({"feature_dim": 4, "crf": {"constrained": False}})
    features = untrained(recipe, folder, "features")
    for model in (crf, softmax, features):
        exported(model)
    return {"crf": crf, "softmax": softmax, "features": features}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same made-up sentences as CoNLL (two and three columns), one tokenised sentence per line and raw
    text, with a -DOCSTART- line, blank lines, unknown, pretrained-only, numeric, very long words and a
    sentence of :data:`LONG` tokens (tagged in windows)."""
    folder = tmp_path_factory.mktemp("lite-inputs")
    rng = random.Random(5)
    sentences = [[w for w, _ in make_sentence(rng)] for _ in range(80)]
    extra = ["Zanzibar", "KYOTO", "nairobi", "2024", "12.5%", "x" * 90 + "Y", "Ünïcödé", "e-mail", "O'Neil"]
    for i, sentence in enumerate(sentences[::4]):
        sentence.insert(1 + i % max(1, len(sentence) - 1), extra[i % len(extra)])
    sentences.append([rng.choice(["Anna", "visited", "Oslo", "Acme", "Group", "the", "Zanzibar", "of"]) for _ in range(LONG)])
    conll = folder / "two.conll"
    conll.write_text("-DOCSTART- O\n\n" + "\n\n".join("\n".join(f"{w} X" for w in s) for s in sentences) + "\n",
                     encoding="utf-8")
    three = folder / "three.conll"
    three.write_text("\n\n".join("\n".join(f"{w} {'CAP' if w[:1].isupper() else 'LOW'} X" for w in s) for s in sentences)
                     + "\n", encoding="utf-8")
    tokens = folder / "lines.txt"
    tokens.write_text("\n".join(" ".join(s) for s in sentences[:40]) + "\n\n" + "\n".join(" ".join(s) for s in sentences[40:])
                      + "\n", encoding="utf-8")
    text = folder / "raw.txt"
    paragraphs = [" ".join(" ".join(s).replace(" .", ".") for s in sentences[i:i + 3]) for i in range(0, 80, 3)]
    text.write_text("\n\n".join([*paragraphs, " ".join(sentences[-1])]) + "\n", encoding="utf-8")
    jsonl = folder / "records.jsonl"
    jsonl.write_text("".join(json.dumps({"text": p}) + "\n" for p in paragraphs[:5])
                     + json.dumps({"tokens": sentences[0], "id": 7}) + "\n", encoding="utf-8")
    return {"conll": conll, "three": three, "tokens": tokens, "text": text, "jsonl": jsonl}


class NoPyTorchEngine(bulk.InProcessEngine):
    """Stands in for the PyTorch engine where the PyTorch-free path must do everything."""

    def __init__(self, spec: bulk.WorkerSpec) -> None:
        raise AssertionError("the PyTorch path was used")


def tagged(model: Path, path: Path, format: str, lite_path: bool, runtime: str = "onnx", **options) -> str:  # type: ignore[no-untyped-def]
    """What ``seqtag predict`` writes: through the PyTorch-free path, or through PyTorch (the local
    engine, given explicitly, never runs that path) with ``runtime``."""
    out = io.StringIO()
    job = PredictJob(str(model), [str(path)], format=format, runtime=runtime, **options)
    predict(job, engine=None if lite_path else local_engine, out=out)
    return out.getvalue()


CASES = [("crf", "conll", "conll"), ("crf", "tokens", "tokens"), ("crf", "text", "text"),
         ("softmax", "conll", "conll"), ("softmax", "tokens", "tokens"), ("softmax", "text", "text"),
         ("features", "three", "conll")]


@pytest.mark.parametrize(("model", "data", "format"), CASES)
def test_the_pytorch_free_path_writes_the_bytes_pytorch_with_onnx_runtime_writes(models, inputs, monkeypatch, model,
                                                                                data, format):
    with_torch = tagged(models[model], inputs[data], format, lite_path=False)
    assert with_torch.count("\n") >= 50 and any(tag in with_torch for tag in ("B-", "S-", "U-"))
    monkeypatch.setattr(bulk, "InProcessEngine", NoPyTorchEngine)
    assert tagged(models[model], inputs[data], format, lite_path=True) == with_torch
    assert tagged(models[model], inputs[data], format, lite_path=True, runtime="auto", chunk_tokens=300) == with_torch


def test_the_cli_tags_without_importing_torch(models, inputs, tmp_path):
    """The console script (entry(): collector paused for the imports, no teardown) with the default runtime."""
    output = tmp_path / "out.txt"
    probe = ("import gc, json, os, sys\nimport seqtag.cli as cli\n"
             f"sys.argv = ['seqtag', 'predict', {str(models['crf'])!r}, {str(inputs['tokens'])!r}, '-o', {str(output)!r}]\n"
             "exits = []\nos._exit = exits.append\ncli.entry()\n"
             "print(json.dumps([exits, 'torch' in sys.modules, 'onnxruntime' in sys.modules, gc.isenabled()]))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout.splitlines()[-1]) == [[0], False, True, True], result.stderr
    assert output.read_text(encoding="utf-8") == tagged(models["crf"], inputs["tokens"], "tokens", lite_path=False)


def test_what_it_cannot_do_goes_to_pytorch_with_the_same_result(models, inputs, tmp_path, monkeypatch):
    # a model that reads document context: the same weights (the export fits), another recipe
    context = tmp_path / "context.seqtag"
    with zipfile.ZipFile(models["crf"]) as source, zipfile.ZipFile(context, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "recipe.json":
                recipe = json.loads(data)
                recipe["model"]["document_context"] = 3
                data = json.dumps(recipe).encode()
            target.writestr(info, data)
    onnx_file = str(models["crf"].with_suffix(".onnx"))
    with pytest.raises(lite.Unsupported, match="document context"):
        lite.LiteTagger.open(context, onnx_file)
    made: list[str] = []
    engine = bulk.InProcessEngine

    class Spy(engine):  # type: ignore[valid-type,misc]
        def __init__(self, spec: bulk.WorkerSpec) -> None:
            made.append(spec.runtime)
            engine.__init__(self, spec)

    monkeypatch.setattr(bulk, "InProcessEngine", Spy)
    with_torch = tagged(context, inputs["conll"], "conll", lite_path=False, onnx=onnx_file)
    assert tagged(context, inputs["conll"], "conll", lite_path=True, runtime="auto", onnx=onnx_file) == with_torch
    assert made == ["onnx", "onnx"]  # PyTorch ran the network with ONNX Runtime both times
    assert with_torch != tagged(models["crf"], inputs["conll"], "conll", lite_path=True)  # the context counts
    # JSON lines (confidences are CRF marginals): the engine hands over to PyTorch with the same export
    made.clear()
    assert tagged(models["crf"], inputs["jsonl"], "jsonl", lite_path=True) == \
        tagged(models["crf"], inputs["jsonl"], "jsonl", lite_path=False)
    assert made == ["onnx", "onnx"]
    # bad input is reported by PyTorch's path, in its words: feature columns that raw text lacks
    with pytest.raises(SeqtagError, match="data.feature_columns") as by_pytorch:
        tagged(models["features"], inputs["text"], "text", lite_path=False)
    with pytest.raises(SeqtagError, match="data.feature_columns") as after_handing_over:
        tagged(models["features"], inputs["text"], "text", lite_path=True)
    assert str(after_handing_over.value) == str(by_pytorch.value)


def test_a_stale_export_is_refused_under_onnx_and_skipped_with_a_warning_under_auto(models, inputs, tmp_path, capsys,
                                                                                    caplog):
    stale = str(models["crf"].with_suffix(".onnx"))  # another model's export
    model = str(models["softmax"])
    with pytest.raises(lite.StaleExport, match="exported from a different model; run seqtag export again"):
        lite.LiteTagger.open(model, stale)
    capsys.readouterr()
    assert main(["predict", model, str(inputs["tokens"]), "--format", "tokens", "--runtime", "onnx", "--onnx", stale]) == 2
    assert capsys.readouterr().err == f"seqtag: error: {stale}: exported from a different model; run seqtag export again\n"
    with caplog.at_level(logging.WARNING, logger="seqtag.bulk"):
        auto = tagged(models["softmax"], inputs["tokens"], "tokens", lite_path=True, runtime="auto", onnx=stale)
    assert "exported from a different model" in caplog.text
    assert auto == tagged(models["softmax"], inputs["tokens"], "tokens", lite_path=False, runtime="torch")


@pytest.mark.parametrize("name", ["crf", "softmax", "features"])
def test_the_fingerprint_is_the_one_export_stores(models, name):
    model = seqtag.load(models[name]).task.model
    assert lite.ModelFile.read(models[name]).fingerprint() == onnx.fingerprint(model)
    assert lite.ModelFile.read(models[name]).checksum_ok()


def test_the_model_file_without_pytorch_holds_the_tensors_pytorch_reads(models):
    """seqtag.io read without PyTorch (read_raw, safetensors_index, stored_array) and with it (read_archive):
    the same meta, recipe and tensors, the half-precision word table included."""
    file, content = lite.ModelFile.read(models["softmax"]), read_archive(models["softmax"])
    assert file.recipe == content["recipe"] and file.vocab == content["vocab"]
    assert {k: v for k, v in content["meta"].items() if k in file.meta} == file.meta
    assert sorted(file.tensors) == sorted(content["tensors"]) and "words.frozen" in file.tensors
    for name, tensor in content["tensors"].items():
        array = file.array(name)
        assert str(tensor.dtype) == f"torch.{array.dtype}" and array.tobytes() == tensor.numpy().tobytes(), name
        assert array.shape == tuple(tensor.shape), name


# ------------------------------------------------------------- the pieces repeated from modules that import torch


def test_recipe_defaults_are_those_of_the_recipe_schema():
    defaults = TaggingRecipe.model_validate({"task": "tagging"}).model_dump(mode="json")
    for name, value in lite.RECIPE_DEFAULTS.items():
        section = defaults
        for key in name.split("."):
            section = section[key]
        assert section == value, name


@pytest.mark.parametrize("ties", [False, True])
def test_viterbi_is_the_crf_decoder(ties):
    """Random scores, and small whole numbers (many exact ties: both take the first best tag); constraints
    of IOBES; sentences of every length in one batch."""
    generator = torch.Generator().manual_seed(3)
    tags = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
    crf = CRF(len(tags), schemes.allowed_transitions("iobes", tags))
    for _ in range(20):
        lengths = torch.randint(1, 14, (9,), generator=generator)
        shape = (9, int(lengths.max()), len(tags))
        emissions = torch.randint(-2, 3, shape, generator=generator).float() if ties else torch.randn(shape, generator=generator)
        with torch.no_grad():
            for parameter in (crf.start_transitions, crf.transitions, crf.end_transitions):
                values = torch.randint(-1, 2, parameter.shape, generator=generator).float() if ties else \
                    torch.randn(parameter.shape, generator=generator)
                parameter.copy_(values)
            mask = torch.arange(shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
            expected = crf.decode(emissions, mask)[0]
            start, transitions, end = (t.numpy() for t in crf.scores())
        assert lite.viterbi(emissions.numpy(), lengths.numpy(), start, transitions, end).tolist() == expected.tolist()


def test_softmax_scores_too_close_to_call_go_to_pytorch(models):
    tagger = lite.LiteTagger.open(models["softmax"], threads=1)
    emissions = np.array([[[0.5, 0.2, 0.1], [1.0, 1.0 - 1e-6, 0.0]]], dtype=np.float32)
    assert tagger._decode(emissions, np.array([1]), exact_softmax=True).tolist() == [[0, 0]]  # the tie is padding
    assert tagger._decode(emissions, np.array([2]), exact_softmax=False).tolist() == [[0, 0]]
    with pytest.raises(lite.Unsupported, match="too close"):
        tagger._decode(emissions, np.array([2]), exact_softmax=True)
