"""The Python API on raw text: offsets, confidences, n-best, lazy streaming."""

from pathlib import Path

import pytest

import seqtag


@pytest.fixture(scope="module")
def tagger(tiny_model):
    return seqtag.load(tiny_model)


TRICKY = [
    "Anna  Berg\tvisited\nOslo .",
    "  Café Zürich 🙂 hosted Anna Berg in 東京に行く .  ",
    "\u05e9\u05dc\u05d5\u05dd Anna Berg e\u0301 visited Oslo!\r\n\r\nTom Dahl stayed.",
    "",
    "   \n\t ",
]


@pytest.mark.parametrize("text", TRICKY)
def test_offsets_index_the_original_string(tagger, text):
    sentences = tagger.tag(text)
    for sentence in sentences:
        for token in sentence.tokens:
            assert text[token.start : token.end] == token.text
        for entity in sentence.entities:
            assert text[entity.start_char : entity.end_char] == entity.text
            assert 0.0 < entity.confidence <= 1.0
    covered = "".join(t.text for s in sentences for t in s.tokens)
    assert covered == "".join(text.split())


def test_entities_and_confidences(tagger):
    (sentence,) = tagger.tag("Anna Berg visited Oslo.")
    assert [(e.text, e.label) for e in sentence.entities] == [("Anna Berg", "PER"), ("Oslo", "LOC")]
    for token in sentence.tokens:
        assert 0.0 < token.confidence <= 1.0 + 1e-6
    assert sentence.entities[0].confidence == min(t.confidence for t in sentence.tokens[:2])


def test_n_best_is_sorted_and_starts_with_the_best_path(tagger):
    result = tagger.tag_tokens(["Anna", "Berg", "visited", "Oslo", "."], n_best=4)
    probabilities = [alternative.probability for alternative in result.n_best]
    assert len(result.n_best) == 4
    assert probabilities == sorted(probabilities, reverse=True)
    assert result.n_best[0].tags == result.tags
    assert len({tuple(a.tags) for a in result.n_best}) == 4
    assert sum(probabilities) <= 1.0 + 1e-5


def test_pipe_keeps_order_and_is_lazy(tagger):
    consumed = []

    def texts():
        for i in range(50):
            consumed.append(i)
            yield "Anna Berg visited Oslo." if i % 2 else "a quiet day in the markets ."

    stream = tagger.pipe(texts(), batch_size=4, buffer=2)
    first = next(stream)
    assert len(consumed) == 8  # read ahead only buffer * batch_size texts
    results = [first, *stream]
    assert len(results) == 50
    for i, sentences in enumerate(results):
        entities = [e.text for s in sentences for e in s.entities]
        assert entities == (["Anna Berg", "Oslo"] if i % 2 else [])


def test_pipe_matches_tag(tagger):
    texts = ["Tom Dahl flew to Lima on Monday.", "The Acme Group hired Ines Costa. Riga welcomes French fans."]
    piped = list(tagger.pipe(texts, batch_size=1))
    single = [tagger.tag(text) for text in texts]

    def view(results):
        return [[([(t.text, t.start, t.end, t.tag) for t in s.tokens], [(e.start_char, e.end_char, e.label) for e in s.entities])
                 for s in sentences] for sentences in results]

    assert view(piped) == view(single)
    confidences = [t.confidence for sentences in piped for s in sentences for t in s.tokens]
    expected = [t.confidence for sentences in single for s in sentences for t in s.tokens]
    assert confidences == pytest.approx(expected, abs=1e-5)  # batched with padding vs alone: float rounding only


def test_tags_convert_to_the_corpus_scheme_tag_by_tag_as_span_by_span() -> None:
    """The fast path of a constrained CRF (IOBES -> IOB2 tag by tag) equals the span conversion on
    every valid sequence."""
    import random

    from seqtag.data.schemes import Span as TagSpan
    from seqtag.data.schemes import convert_tags, tags_from_spans

    task = seqtag.load(Path(__file__).resolve().parent / "fixtures" / "compat" / "tagging.seqtag").task
    assert task._corpus_tags() is not None and task.train_scheme != task.corpus_scheme
    types = sorted({t.partition("-")[2] for t in task.tags.itos if t != "O"})
    rng = random.Random(0)
    checked = 0
    for _ in range(300):
        n, spans, i = rng.randint(1, 20), [], 0
        while i < n:
            length = rng.randint(1, 4)
            if rng.random() < 0.5 and i + length <= n:
                spans.append(TagSpan(i, i + length, rng.choice(types)))
                i += length
            i += 1
        tags = tags_from_spans(spans, n, task.train_scheme)
        if any(t not in task.tags.stoi for t in tags):  # a tag this small model never saw
            continue
        indices = [task.tags.stoi[t] for t in tags]
        assert task._to_corpus(indices) == convert_tags(tags, task.train_scheme, task.corpus_scheme)
        checked += 1
    assert checked > 100
