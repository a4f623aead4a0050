"""Document context (``model.document_context``): the encoder reads the neighbouring sentences of the
same document, only the sentence itself is tagged, in training, evaluation, every way of predicting,
streamed files and the spaCy component."""

from __future__ import annotations

import copy
import io
import random
from pathlib import Path

import pytest
import torch

import seqtag
from seqtag.data.conll import Sentence, read_conll
from seqtag.data.stream import Verbatim, read_chunks
from seqtag.registry import recipe_from_dict
from seqtag.tasks.tagging.task import Encoded, in_context
from seqtag.training.run import run
from tests.conftest import TINY_RECIPE

SPORT = ["The", "match", "ended", "in", "a", "draw", "."]
RIVER = ["The", "valley", "lies", "along", "the", "river", "."]


def write_documents(path: Path, documents: int, seed: int) -> Path:
    """Documents of two sentences: a first that says what the document is about, and a second where
    ``Jordan`` is a player (B-PER) in sports documents and the country (B-LOC) in the others; only
    the first sentence tells which."""
    rng = random.Random(seed)
    lines = []
    for _ in range(documents):
        sport = rng.random() < 0.5
        lines += ["-DOCSTART- O", ""]
        lines += [f"{w} O" for w in (SPORT if sport else RIVER)] + [""]
        second = ["Jordan", rng.choice(["was", "is", "seemed"]), rng.choice(["busy", "quiet", "calm"]), "."]
        lines += [f"{w} {('B-PER' if sport else 'B-LOC') if w == 'Jordan' else 'O'}" for w in second] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("documents")
    write_documents(folder / "train.txt", 160, 1)
    write_documents(folder / "valid.txt", 40, 2)
    write_documents(folder / "test.txt", 40, 3)
    return folder


def train(corpus: Path, folder: Path, context: int) -> Path:
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(corpus), "label_column": 1}
    recipe["model"]["document_context"] = context
    recipe["model"]["dropout"] = 0.0
    recipe["training"].update({"max_epochs": 8, "threads": 1, "checkpoint_every_minutes": None})
    return run(recipe_from_dict(recipe), folder).model_path  # type: ignore[return-value]


@pytest.fixture(scope="module")
def models(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    return {context: train(corpus, tmp_path_factory.mktemp(f"context{context}"), context) for context in (0, 16)}


def test_documents_are_told_apart_when_reading(corpus: Path) -> None:
    sentences = read_conll(corpus / "test.txt", 0, 1)
    assert [s.document for s in sentences[:4]] == [1, 1, 2, 2]


def test_context_is_the_neighbours_of_the_same_document_cut_to_the_budget() -> None:
    def enc(*tokens: str) -> Encoded:
        return Encoded(list(tokens), [1] * len(tokens), [0] * len(tokens), [0] * len(tokens))

    sentences = [Sentence(["a", "b", "c"], document=1), Sentence(["d", "e"], document=1),
                 Sentence(["f", "g", "h"], document=1), Sentence(["i"], document=2), Sentence(["j"], document=None),
                 Sentence(["k"], document=None)]
    encoded = [enc(*s.tokens) for s in sentences]
    out = in_context(encoded, sentences, 2)
    assert (out[1].tokens, out[1].left, out[1].right, out[1].size) == (["b", "c", "d", "e", "f", "g"], 2, 2, 2)
    assert (out[0].tokens, out[0].left, out[0].right) == (["a", "b", "c", "d", "e"], 0, 2)
    assert (out[2].tokens, out[2].left, out[2].right) == (["d", "e", "f", "g", "h"], 2, 0)
    assert out[3].tokens == ["i"] and out[4].tokens == ["j"] and out[5].tokens == ["k"]  # other or unknown documents
    assert out[1].tags == encoded[1].tags and out[1].alone().tokens == ["d", "e"]
    assert in_context(encoded, sentences, 0) == encoded


def test_the_neighbouring_sentence_decides_and_without_context_it_cannot(models: dict[int, Path], corpus: Path) -> None:
    alone, context = seqtag.load(models[0]), seqtag.load(models[16])
    assert context.evaluate_file(corpus / "test.txt")["f1"] == pytest.approx(100.0)
    assert alone.evaluate_file(corpus / "test.txt")["f1"] < 80.0  # a coin toss for every Jordan


def test_every_way_of_predicting_sees_the_document(models: dict[int, Path], corpus: Path, tmp_path: Path) -> None:
    tagger = seqtag.load(models[16])
    sport, river = " ".join(SPORT), " ".join(RIVER)
    # raw text: a tag() call (or a text of pipe) is a document
    assert [s.tags[0] for s in tagger.tag(f"{sport} Jordan was busy .")][1] == "B-PER"
    assert [s.tags[0] for s in tagger.tag(f"{river} Jordan was busy .")][1] == "B-LOC"
    # pre-tokenised sentences are tagged alone
    assert len(tagger.tag_batch([["Jordan", "was", "busy", "."]])[0].tags) == 4
    # a CoNLL file through predict_file (streamed, chunks end at documents): line for line
    out = io.StringIO()
    tagger.predict_file(corpus / "test.txt", out, format="conll")
    gold = (corpus / "test.txt").read_text(encoding="utf-8").splitlines()
    lines = out.getvalue().splitlines()
    assert len(lines) == len(gold)
    assert all(line.split("\t")[-1] == g.split()[-1] for line, g in zip(lines, gold) if g and not g.startswith("-DOC"))
    # the spaCy component: a Doc is a document (its sentences from a sentencizer)
    spacy = pytest.importorskip("spacy")
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("seqtag", config={"model": str(models[16])})
    for cue, label in ((sport, "PER"), (river, "LOC")):
        doc = nlp(f"{cue} Jordan was busy.")
        assert len(list(doc.sents)) == 2 and [(e.text, e.label_) for e in doc.ents] == [("Jordan", label)]


def test_onnx_runtime_gives_the_same_tags(models: dict[int, Path], corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    tagger = seqtag.load(models[16])
    tagger.export_onnx(tmp_path / "context.onnx")
    onnx = seqtag.load(models[16], runtime="onnx", onnx=tmp_path / "context.onnx")
    sentences = read_conll(corpus / "test.txt", 0, 1)
    assert onnx.task.predict(sentences) == tagger.task.predict(sentences)


def test_chunks_of_a_context_model_end_where_documents_do(corpus: Path) -> None:
    chunks = list(read_chunks(corpus / "train.txt", "conll", 0, chunk_tokens=30, documents=True))
    assert len(chunks) > 5
    for chunk in chunks[:-1]:
        last = chunk.items[-1]
        assert isinstance(last, Verbatim) and last.text.startswith("-DOCSTART-")
    plain = list(read_chunks(corpus / "train.txt", "conll", 0, chunk_tokens=30))
    assert any(not (isinstance(c.items[-1], Verbatim) and c.items[-1].text.startswith("-DOC")) for c in plain[:-1])


def test_only_the_sentence_is_tagged_and_scored(models: dict[int, Path]) -> None:
    task = seqtag.load(models[16]).task
    first = Sentence(SPORT, labels=["O"] * 7, document=1)
    second = Sentence(["Jordan", "was", "busy", "."], labels=["B-PER", "O", "O", "O"], document=1)
    encoded = task._encode_all([first, second], with_tags=True)
    assert encoded[1].left == 7 and encoded[1].size == 4
    batch = task.batch(encoded)
    assert batch.mask.shape == batch.tags.shape == (2, 7) and batch.mask.sum().item() == 11
    with torch.no_grad():
        emissions = task.model(batch)  # (B, C, K): the sentences' own tokens
        alone = task.model(task.batch([encoded[1].alone()]))
    assert emissions.shape[:2] == (2, 7)
    assert not torch.allclose(emissions[1, :4], alone[0, :4])  # the first sentence changed the second's scores
