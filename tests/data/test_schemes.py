import random

import pytest

from seqtag.data.schemes import (
    Span,
    allowed_transitions,
    check_tags,
    convert_tags,
    detect_scheme,
    normalize_scheme,
    spans_from_tags,
    tags_from_spans,
)
from seqtag.errors import DataError

IOB2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "O", "B-MISC"]
EXPECTED = [Span(0, 2, "PER"), Span(3, 4, "LOC"), Span(4, 6, "LOC"), Span(7, 8, "MISC")]


def test_spans_in_every_scheme():
    assert spans_from_tags(IOB2, "iob2") == EXPECTED
    assert spans_from_tags(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "O", "I-MISC"], "iob1") == EXPECTED
    assert spans_from_tags(["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC", "O", "S-MISC"], "iobes") == EXPECTED
    assert spans_from_tags(["B-PER", "L-PER", "O", "U-LOC", "B-LOC", "L-LOC", "O", "U-MISC"], "bilou") == EXPECTED


def test_encoding_in_every_scheme():
    assert tags_from_spans(EXPECTED, 8, "iob1") == ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "O", "I-MISC"]
    assert tags_from_spans(EXPECTED, 8, "iobes") == ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC", "O", "S-MISC"]
    assert tags_from_spans(EXPECTED, 8, "bilou") == ["B-PER", "L-PER", "O", "U-LOC", "B-LOC", "L-LOC", "O", "U-MISC"]


def random_spans(rng: random.Random, length: int) -> list[Span]:
    spans, i = [], 0
    while i < length:
        if rng.random() < 0.4:
            size = rng.randint(1, 3)
            end = min(length, i + size)
            spans.append(Span(i, end, rng.choice(["PER", "LOC", "creative-work"])))
            i = end
        else:
            i += 1
    return spans


@pytest.mark.parametrize("source", ["iob1", "iob2", "iobes", "bilou"])
@pytest.mark.parametrize("target", ["iob1", "iob2", "iobes", "bilou"])
def test_round_trip_between_schemes(source, target):
    rng = random.Random(7)
    for _ in range(200):
        length = rng.randint(1, 12)
        spans = random_spans(rng, length)
        tags = tags_from_spans(spans, length, source)
        converted = convert_tags(tags, source, target)
        assert spans_from_tags(converted, target) == spans
        assert convert_tags(converted, target, source) == tags


def test_lenient_reading_of_invalid_sequences_keeps_every_entity_token():
    # conlleval reading: an I- that continues nothing starts a span
    assert spans_from_tags(["O", "I-PER", "I-PER", "I-LOC"], "iob2") == [Span(1, 3, "PER"), Span(3, 4, "LOC")]
    assert spans_from_tags(["I-PER", "O", "E-LOC"], "iobes") == [Span(0, 1, "PER"), Span(2, 3, "LOC")]


def test_detect_scheme():
    assert detect_scheme([IOB2]) == "iob2"
    assert detect_scheme([["I-PER", "O", "I-LOC", "B-LOC"]]) == "iob1"
    assert detect_scheme([["S-PER", "O"]]) == "iobes"
    assert detect_scheme([["U-PER", "O"]]) == "bilou"
    assert detect_scheme([["NNP", "VBZ", "."]]) == "none"
    assert normalize_scheme("BIOES") == "iobes" and normalize_scheme("BIO") == "iob2"
    with pytest.raises(ValueError):
        normalize_scheme("xyz")


def test_check_tags_names_line():
    with pytest.raises(DataError, match=r"f.txt:12: tag 'X-PER' is not valid in the IOB2 scheme"):
        check_tags(["O", "O", "X-PER"], "iob2", "f.txt", 10)


def test_allowed_transitions_iob2_and_iobes():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    start, trans, end = allowed_transitions("iob2", labels)
    assert start.tolist() == [True, True, False, True, False]
    assert not trans[0, 2] and trans[1, 2] and trans[2, 2] and not trans[3, 2] and trans[0, 1]
    assert end.all()
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    start, trans, end = allowed_transitions("iobes", labels)
    assert start.tolist() == [True, True, False, False, True]
    assert end.tolist() == [True, False, False, True, True]
    assert trans[1, 2] and trans[1, 3] and not trans[1, 0] and not trans[3, 2] and trans[3, 1] and trans[4, 0]


def test_every_valid_sequence_is_allowed_and_invalid_ones_are_not():
    rng = random.Random(0)
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
    start, trans, end = allowed_transitions("iobes", labels)
    index = {label: i for i, label in enumerate(labels)}

    def allowed(tags):
        ids = [index[t] for t in tags]
        return bool(start[ids[0]] and end[ids[-1]] and all(trans[a, b] for a, b in zip(ids, ids[1:])))

    for _ in range(300):
        length = rng.randint(1, 8)
        spans = [s for s in random_spans(rng, length) if s.label != "creative-work"]
        assert allowed(tags_from_spans(spans, length, "iobes"))
        tags = [rng.choice(labels) for _ in range(length)]
        canonical = tags_from_spans(spans_from_tags(tags, "iobes"), length, "iobes")
        assert allowed(tags) == (tags == canonical)
