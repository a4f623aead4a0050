"""The seqtag component in a real spaCy pipeline."""

import pytest

spacy = pytest.importorskip("spacy")

import seqtag  # noqa: E402


@pytest.fixture
def model_path(tiny_model):
    return tiny_model


@pytest.fixture
def nlp(model_path):
    pipeline = spacy.blank("en")
    pipeline.add_pipe("seqtag", config={"model": str(model_path)})  # found through the entry point
    return pipeline


TEXT = "Anna Berg visited Oslo. The Acme Group hired Tom Dahl."


def test_entities_equal_the_python_api(nlp, model_path):
    doc = nlp(TEXT)
    tagged = seqtag.load(model_path).tag(TEXT)
    expected = [(e.start_char, e.end_char, e.label) for s in tagged for e in s.entities]
    assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == expected
    assert expected  # the model does find entities
    assert all(0 < e._.seqtag_confidence <= 1 for e in doc.ents)
    assert all(t._.seqtag_confidence is not None for t in doc)


def test_existing_entities_are_kept_unless_overwrite(model_path):
    from spacy.tokens import Span

    for overwrite in (False, True):
        pipeline = spacy.blank("en")
        pipeline.add_pipe("seqtag", config={"model": str(model_path), "overwrite_ents": overwrite})
        doc = pipeline.make_doc("Anna Berg visited Oslo .")
        doc.ents = [Span(doc, 0, 2, label="CUSTOM")]
        doc = pipeline.get_pipe("seqtag")(doc)
        labels = [(e.text, e.label_) for e in doc.ents]
        if overwrite:
            assert ("Anna Berg", "PER") in labels and ("Anna Berg", "CUSTOM") not in labels
        else:
            assert ("Anna Berg", "CUSTOM") in labels and ("Oslo", "LOC") in labels


def test_pipe_and_disk_round_trip(nlp, tmp_path):
    texts = [TEXT, "a quiet day in the markets .", "Riga welcomes German fans ."]
    before = [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in nlp.pipe(texts, batch_size=2)]
    assert before == [[(e.start_char, e.end_char, e.label_) for e in nlp(t).ents] for t in texts]
    nlp.to_disk(tmp_path / "pipeline")
    assert (tmp_path / "pipeline" / "seqtag" / "model.seqtag").exists()
    reloaded = spacy.load(tmp_path / "pipeline")
    after = [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in reloaded.pipe(texts, batch_size=2)]
    assert after == before
    component = reloaded.get_pipe("seqtag")
    clone = type(component)(reloaded, "copy", None, False, 8).from_bytes(component.to_bytes())
    assert [(e.text, e.label_) for e in clone(reloaded.make_doc(TEXT)).ents] == [(e.text, e.label_) for e in reloaded(TEXT).ents]


def test_displacy_renders_entities(nlp):
    from spacy import displacy

    html = displacy.render(nlp(TEXT), style="ent")
    assert "Anna Berg" in html and "PER" in html


def test_missing_model_is_a_clear_error():
    pipeline = spacy.blank("en")
    pipeline.add_pipe("seqtag")
    with pytest.raises(seqtag.SeqtagError, match="has no model"):
        pipeline("Anna Berg")


SEQTAG_TOKENIZER = {"nlp": {"tokenizer": {"@tokenizers": "seqtag.Tokenizer.v1"}}}
TRICKY_TEXTS = [
    "Anna-Berg visited Oslo.  Tom Dahl flew to Lima on Monday!\n\nThe Acme Group hired Ines Costa.",
    "  Riga welcomes German fans 🙂 in Café Zürich .\t",
]


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_with_seqtag_tokenizer_entities_equal_the_python_api_exactly(model_path, text):
    nlp = spacy.blank("en", config=SEQTAG_TOKENIZER)
    nlp.add_pipe("seqtag", config={"model": str(model_path)})
    doc = nlp(text)
    assert doc.text == text
    tagged = seqtag.load(model_path).tag(text)
    assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == [
        (e.start_char, e.end_char, e.label) for s in tagged for e in s.entities
    ]
    assert [[t.text for t in s if not t.is_space] for s in doc.sents] == [[t.text for t in s.tokens] for s in tagged]


def test_seqtag_tokenizer_pipeline_survives_spacy_load_in_a_fresh_process(model_path, tmp_path):
    import subprocess
    import sys

    nlp = spacy.blank("en", config=SEQTAG_TOKENIZER)
    nlp.add_pipe("seqtag", config={"model": str(model_path)})
    nlp.to_disk(tmp_path / "pipeline")
    script = (
        "import spacy, sys; nlp = spacy.load(sys.argv[1]); "
        "print([(e.text, e.label_) for e in nlp('Anna Berg visited Oslo.').ents])"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "pipeline")], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == str([(e.text, e.label_) for e in nlp("Anna Berg visited Oslo.").ents])
