"""The seqtag component in a real spaCy pipeline."""

import copy
import re
from pathlib import Path

import pytest

spacy = pytest.importorskip("spacy")

import seqtag  # noqa: E402
from seqtag.data.conll import read_conll  # noqa: E402
from tests.conftest import FIXTURES, TINY_RECIPE, shared, write_three_column_corpus  # noqa: E402


@pytest.fixture
def model_path(tiny_model):
    return tiny_model


@pytest.fixture
def nlp(model_path):
    pipeline = spacy.blank("en")
    pipeline.add_pipe("seqtag", config={"model": str(model_path)})  # found through the entry point
    return pipeline


@pytest.fixture(scope="module")
def pos_model(tmp_path_factory, tiny_corpus) -> Path:
    """A POS-style model (tags without a span scheme: CAP / LOW) trained on the tiny corpus."""
    from seqtag.registry import recipe_from_dict
    from seqtag.training.run import run

    folder = write_three_column_corpus(tiny_corpus, tmp_path_factory.mktemp("pos") / "corpus")
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(folder), "label_column": 1}
    recipe["training"].update({"max_epochs": 3, "threads": 1})
    model = run(recipe_from_dict(recipe), folder.parent / "run").model_path
    assert not seqtag.load(model).task.is_span_task
    return model


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


def test_displacy_options_colour_every_label_of_the_model(nlp, model_path):
    from spacy import displacy
    from spacy.displacy.render import DEFAULT_LABEL_COLORS
    from spacy.tokens import Span

    options = nlp.get_pipe("seqtag").displacy_options()
    labels = seqtag.load(model_path).labels
    assert options["ents"] == labels == ["LOC", "MISC", "ORG", "PER"]
    colors = options["colors"]
    assert set(colors) == set(labels) and len(set(colors.values())) == len(labels)
    assert all(re.fullmatch(r"#[0-9a-f]{6}", color) for color in colors.values())
    # displaCy's own colours where it has them (PER is its PERSON); MISC from seqtag's palette
    assert (colors["LOC"], colors["ORG"], colors["PER"]) == (
        DEFAULT_LABEL_COLORS["LOC"], DEFAULT_LABEL_COLORS["ORG"], DEFAULT_LABEL_COLORS["PERSON"])
    assert colors["MISC"] not in DEFAULT_LABEL_COLORS.values()
    assert nlp.get_pipe("seqtag").displacy_options() == options  # stable

    doc = nlp.make_doc(" ".join(f"w{i}" for i in range(len(labels))))
    doc.ents = [Span(doc, i, i + 1, label=label) for i, label in enumerate(labels)]
    html = displacy.render(doc, style="ent", options=options)
    for label in labels:
        assert re.search(rf"background: {colors[label]};.*?w{labels.index(label)}\s*<span[^>]*>{label}<", html, re.S)
    plain = displacy.render(doc, style="ent")
    assert colors["MISC"] not in plain  # without the options displaCy has no colour for MISC
    # what the model finds is drawn in its colours too
    found = displacy.render(nlp("Riga welcomes German fans. Anna Berg of the Acme Group flew to Oslo."), style="ent",
                            options=options)
    assert f"background: {colors['MISC']}" in found and f"background: {colors['PER']}" in found


def test_label_colors_are_distinct_and_reproducible_for_many_labels():
    from seqtag.spacy_component import PALETTE, label_colors

    labels = [f"type-{i}" for i in range(50)] + ["ORG", "org", "DATE", "TIME"]
    colors = label_colors(labels)
    assert list(colors) == labels and colors == label_colors(list(reversed(labels)))
    assert colors["ORG"] == colors["org"] == "#7aecec"  # displaCy looks labels up in upper case
    assert colors["DATE"] == "#bfe1d9" and colors["TIME"] != colors["DATE"]  # displaCy gives both one colour
    distinct = {colors[label] for label in labels if label != "org"}
    assert len(distinct) == len(labels) - 1
    assert all(re.fullmatch(r"#[0-9a-f]{6}", color) for color in distinct)
    assert set(PALETTE) <= distinct


def test_a_pos_model_has_no_displacy_entities(pos_model):
    pipeline = spacy.blank("en")
    pipeline.add_pipe("seqtag", config={"model": str(pos_model)})
    with pytest.raises(seqtag.SeqtagError, match="tags tokens"):
        pipeline.get_pipe("seqtag").displacy_options()


@pytest.mark.parametrize(("fixture", "task"), [("target.seqtag", "target-sentiment"), ("trees.seqtag", "tree-sentiment")])
def test_a_model_of_another_task_is_refused_when_the_pipeline_is_built(fixture, task, model_path, tmp_path):
    """At add_pipe, spacy.load and from_bytes: a SeqtagError naming the file and its task, never an
    AttributeError at the first doc."""
    other = FIXTURES / "compat" / fixture
    message = rf"{re.escape(str(other))}: the 'seqtag' component runs tagging models, this is a '{task}' model"
    with pytest.raises(seqtag.SeqtagError, match=message):
        spacy.blank("en").add_pipe("seqtag", config={"model": str(other)})

    pipeline = spacy.blank("en")
    pipeline.add_pipe("seqtag", config={"model": str(model_path)})
    pipeline.to_disk(tmp_path / "pipeline")
    swapped = tmp_path / "pipeline" / "seqtag" / "model.seqtag"
    swapped.write_bytes(other.read_bytes())
    with pytest.raises(seqtag.SeqtagError, match=rf"{re.escape(str(swapped))}: .* this is a '{task}' model"):
        spacy.load(tmp_path / "pipeline")

    component = pipeline.get_pipe("seqtag")
    with pytest.raises(seqtag.SeqtagError, match=f"the model bytes: .* this is a '{task}' model"):
        component.from_bytes(other.read_bytes())
    assert [e.label_ for e in pipeline("Anna Berg visited Oslo .").ents]  # the component keeps its model


def test_a_pos_model_sets_token_tags_and_no_entities(pos_model):
    pipeline = spacy.blank("en")
    pipeline.add_pipe("seqtag", config={"model": str(pos_model)})
    tokens = ["Anna", "Berg", "visited", "Oslo", "."]
    doc = pipeline(" ".join(tokens))
    assert [t.tag_ for t in doc] == seqtag.load(pos_model).tag_tokens(tokens).tags
    assert {t.tag_ for t in doc} <= {"CAP", "LOW"} and not doc.ents


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


# ------------------------------------------------------------------ nlp.evaluate


def gold_example(nlp, tokens: list[str], tags: list[str], entities: bool = True):
    """An Example: the pipeline's doc of the tokens joined by spaces, and a reference doc with the
    gold tokens and the gold entities (IOB2 tags) or gold ``token.tag_``."""
    from spacy.tokens import Doc
    from spacy.training import Example

    reference = Doc(nlp.vocab, words=tokens, **({"ents": tags} if entities else {"tags": tags}))
    return Example(nlp.make_doc(" ".join(tokens)), reference)


def round_trips(nlp, tokens: list[str]) -> bool:
    """Whether seqtag's tokenizer in ``nlp`` gives back ``tokens`` as one sentence."""
    doc = nlp.make_doc(" ".join(tokens))
    return [t.text for t in doc if not t.is_space] == tokens and len(list(doc.sents)) == 1


def test_nlp_evaluate_gives_the_entity_f1_of_seqtag_evaluate_on_conll03(model_path):
    """The first 200 sentences of the CoNLL-03 test file; those seqtag's tokenizer splits or
    tokenises differently from the gold (a trailing quote made a sentence of its own, ``1.`` split)
    are left out, so both sides tag the same tokens as one sentence (178 of the 200)."""
    sentences = read_conll(shared("conll03", "test.txt"))[:200]
    nlp = spacy.blank("en", config=SEQTAG_TOKENIZER)
    nlp.add_pipe("seqtag", config={"model": str(model_path)})
    kept = [s for s in sentences if round_trips(nlp, s.tokens)]
    assert len(kept) >= 150, len(kept)

    scores = nlp.evaluate([gold_example(nlp, s.tokens, s.labels) for s in kept])
    metrics = seqtag.load(model_path).evaluate([(s.tokens, s.labels) for s in kept])
    assert 0 < metrics["f1"] < 100  # the tiny model finds some CoNLL entities, and misses some
    assert scores["ents_f"] * 100 == pytest.approx(metrics["f1"], abs=1e-6)
    assert scores["ents_p"] * 100 == pytest.approx(metrics["precision"], abs=1e-6)
    assert scores["ents_r"] * 100 == pytest.approx(metrics["recall"], abs=1e-6)
    for label, figures in metrics["per_type"].items():
        assert scores["ents_per_type"][label]["f"] * 100 == pytest.approx(figures["f1"], abs=1e-6), label
    assert "tag_acc" not in scores


def test_nlp_evaluate_scores_a_pos_model_by_tag_accuracy(pos_model, tiny_corpus):
    sentences = read_conll(tiny_corpus / "test.txt")
    data = [(s.tokens, ["CAP" if t[:1].isupper() else "LOW" for t in s.tokens]) for s in sentences]
    data[0] = (data[0][0], ["LOW" if tag == "CAP" else "CAP" for tag in data[0][1]])  # some gold the model misses
    nlp = spacy.blank("en", config=SEQTAG_TOKENIZER)
    nlp.add_pipe("seqtag", config={"model": str(pos_model)})
    assert all(round_trips(nlp, tokens) for tokens, _ in data)
    scores = nlp.evaluate([gold_example(nlp, tokens, tags, entities=False) for tokens, tags in data])
    accuracy = seqtag.load(pos_model).evaluate(data)["accuracy"]
    assert 0 < accuracy < 100
    assert scores["tag_acc"] * 100 == pytest.approx(accuracy, abs=1e-6)
    assert "ents_f" not in scores


def test_score_weights_name_both_kinds_of_score():
    nlp = spacy.blank("en")
    nlp.add_pipe("seqtag")
    weights = nlp.config["training"]["score_weights"]
    assert weights["ents_f"] == weights["tag_acc"] == 0.5 and weights["ents_per_type"] is None
