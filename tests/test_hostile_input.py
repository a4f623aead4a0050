"""Hostile input, property-based: whatever arrives, the outcome is a correct result or one SeqtagError.

Together these tests run more than 10,000 generated inputs through the CoNLL reader, the tag
scheme converters, the raw-text tokenizer and the predictor (see ``EXAMPLES``). Hand-written
cases cover the extremes: a 10,000-token sentence, a 1 MB line without spaces, non-UTF-8 files.
"""

from __future__ import annotations

import random
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqtag
from seqtag.data.conll import DOCSTART, ReadStats, read_conll, read_token_lines
from seqtag.data.schemes import SCHEMES, Span, convert_tags, spans_from_tags, split_tag, tags_from_spans
from seqtag.data.text import Tokenizer, TokenizerConfig
from seqtag.errors import DataError, SchemeError

EXAMPLES = {"reader": 3000, "schemes": 3000, "tokenizer": 2500, "predictor": 2000}  # 10,500 in all
FAST = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                    HealthCheck.data_too_large])

# Unicode that breaks naive code: controls, NUL, combining marks, RTL, emoji, odd spaces, surrogate-free.
NASTY = ["\x00", "\t", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u00a0", "\u2028", "\u200b", "\u200f",
         "\u202e", "\ufeff", "\u0301", "\u05d0\u05d1", "\u0627\u0644", "\U0001f600", "\U0001f469\u200d\U0001f4bb",
         "e\u0301", "-DOCSTART-", "O", "B-PER", "I-PER", "E-LOC", "S-ORG", "U-X", "L-X", "I-", "-", "$", "''"]
any_text = st.text(st.characters(codec="utf-8"), max_size=60)
nasty_text = st.lists(st.one_of(st.sampled_from(NASTY), any_text, st.sampled_from([" ", "  ", "\n", "."])), max_size=25).map("".join)


# ----------------------------------------------------------------------------- CoNLL reader

@st.composite
def token_line(draw: st.DrawFn) -> str:
    columns = draw(st.lists(st.one_of(st.sampled_from(["EU", "rejects", "B-ORG", "O", "I-MISC", "NNP", "x"]),
                                      st.text(st.characters(codec="utf-8", exclude_characters="\n"), min_size=1, max_size=12)),
                            min_size=1, max_size=4))
    separator = draw(st.sampled_from(["\t", " ", "  ", " \t", "\t\t"]))
    return separator.join(columns) + draw(st.sampled_from(["", " ", "\r", "\t"]))


@st.composite
def conll_bytes(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.one_of(st.just(""), st.sampled_from([" ", "\t", "\r", DOCSTART + " -X- O O"]), token_line()),
                          max_size=30))
    text = "\n".join(lines)
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    data = text.encode("utf-8")
    if draw(st.integers(0, 9)) == 0:
        data = b"\xef\xbb\xbf" + data  # BOM
    if draw(st.integers(0, 9)) == 0:
        data += draw(st.binary(min_size=1, max_size=8))  # maybe not UTF-8 any more
    return data


def _read(data: bytes, word_column: int, label_column: int | None) -> tuple[list, ReadStats] | DataError:
    with tempfile.NamedTemporaryFile("wb", suffix=".conll", delete=False) as handle:
        handle.write(data)
    stats = ReadStats()
    try:
        return read_conll(handle.name, word_column, label_column, stats), stats
    except DataError as error:
        assert error.path == handle.name and str(error).startswith(handle.name)
        return error
    finally:
        Path(handle.name).unlink()


@settings(max_examples=EXAMPLES["reader"], **FAST)
@given(data=conll_bytes(), word_column=st.integers(-3, 3), label_column=st.one_of(st.none(), st.integers(-3, 3)))
def test_conll_reader_reads_everything_or_names_file_and_line(data, word_column, label_column):
    outcome = _read(data, word_column, label_column)
    if isinstance(outcome, DataError):
        assert outcome.line is not None and outcome.line >= 1  # every problem of a readable file is on a line
        return
    sentences, stats = outcome
    lines = [line.decode("utf-8") for line in data.removeprefix(b"\xef\xbb\xbf").splitlines()]  # LF, CRLF, CR
    content = [line for line in lines if line.strip()]
    # Nothing silently dropped: every non-blank line is a token or a counted -DOCSTART- line.
    assert sum(len(s) for s in sentences) + stats.docstart_lines == len(content)
    assert stats.sentences == len(sentences) and stats.tokens == sum(len(s) for s in sentences)
    for sentence in sentences:
        assert sentence.tokens and all(token.strip() for token in sentence.tokens)
        assert sentence.labels is None or len(sentence.labels) == len(sentence.tokens)


def test_reader_extremes(tmp_path):
    big = tmp_path / "big.conll"
    big.write_text("x" * 1_000_000 + "\tO\n\n" + "\n".join(f"w{i}\tO" for i in range(10_000)) + "\n", encoding="utf-8")
    sentences = read_conll(big)
    assert [len(s) for s in sentences] == [1, 10_000] and len(sentences[0].tokens[0]) == 1_000_000
    latin = tmp_path / "latin1.conll"
    latin.write_bytes("Müller\tB-PER\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.conll:1: not valid UTF-8"):
        read_conll(latin)
    empty = tmp_path / "empty.conll"
    empty.write_bytes(b"")
    assert read_conll(empty) == []
    lines = tmp_path / "lines.txt"
    lines.write_bytes(b"\xef\xbb\xbfa b\r\n\r\n  \n\x00 c\n")
    assert [s.tokens for s in read_token_lines(lines)] == [["a", "b"], ["\x00", "c"]]


# ----------------------------------------------------------------------------- tag schemes

SPAN_SCHEMES = [s for s in SCHEMES if s != "none"]


@st.composite
def spans_over(draw: st.DrawFn) -> tuple[list[Span], int]:
    length = draw(st.integers(0, 40))
    cuts = sorted(draw(st.sets(st.integers(0, length), max_size=20)))
    spans = []
    for start, end in zip(cuts, cuts[1:]):
        if draw(st.booleans()):
            spans.append(Span(start, end, draw(st.sampled_from(["PER", "LOC", "creative-work", "B", "O-X", "é"]))))
    return spans, length


@settings(max_examples=EXAMPLES["schemes"] // 2, **FAST)
@given(spans=spans_over(), source=st.sampled_from(SPAN_SCHEMES), target=st.sampled_from(SPAN_SCHEMES))
def test_schemes_round_trip_spans(spans, source, target):
    spans, length = spans
    tags = tags_from_spans(spans, length, source)
    assert spans_from_tags(tags, source) == spans
    converted = convert_tags(tags, source, target)
    assert len(converted) == length and spans_from_tags(converted, target) == spans
    assert convert_tags(converted, target, source) == tags


@settings(max_examples=EXAMPLES["schemes"] // 2, **FAST)
@given(tags=st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=6)), max_size=20),
       source=st.sampled_from([*SCHEMES, "BIOES", "bogus"]), target=st.sampled_from([*SCHEMES, "IOB"]))
def test_schemes_take_any_tags(tags, source, target):
    try:
        converted = convert_tags(tags, source, target)
    except SchemeError:
        # Only for a real reason: an unknown scheme, 'none' against a span scheme, or a foreign tag.
        try:
            for tag in tags:
                split_tag(tag, source)
        except SchemeError:
            return
        assert "none" in (source, target) or source == "bogus"
        return
    assert len(converted) == len(tags)
    if "none" not in (source.lower(), target.lower()) and source != "bogus":
        try:
            spans = spans_from_tags(tags, source)
        except SchemeError:
            assert converted == tags  # same scheme on both sides: passed through untouched
            return
        # No annotated token is ever dropped by the lenient reading.
        covered = {i for span in spans for i in range(span.start, span.end)}
        assert covered == {i for i, tag in enumerate(tags) if tag != "O"}


# ----------------------------------------------------------------------------- tokenizer

TOKENIZERS = [Tokenizer(), Tokenizer(TokenizerConfig(split_hyphens=True, keep_web_tokens=False, split_contractions=False))]


@settings(max_examples=EXAMPLES["tokenizer"], **FAST)
@given(text=st.one_of(nasty_text, any_text), which=st.integers(0, 1))
def test_tokenizer_offsets_always_index_the_text(text, which):
    sentences = TOKENIZERS[which].sentences(text)
    seen = []
    for sentence in sentences:
        assert sentence, "no empty sentences"
        for token in sentence:
            assert text[token.start:token.end] == token.text and token.text.strip() == token.text != ""
            seen.append(token)
    assert [t.start for t in seen] == sorted(t.start for t in seen)
    assert "".join(t.text for t in seen) == "".join(c for c in text if not c.isspace())


def test_tokenizer_extremes():
    text = "a" * 1_000_000
    tokens = Tokenizer().tokenize(text)
    assert "".join(t.text for t in tokens) == text


# ----------------------------------------------------------------------------- predictor

@pytest.fixture(scope="module")
def tagger(tiny_model):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of one-sentence calls: thread start-up would dominate
    yield seqtag.load(tiny_model)
    torch.set_num_threads(threads)


def _check_tagged(text: str, sentences, labels: set[str]) -> None:
    for sentence in sentences:
        assert len(sentence.tokens) == len(sentence.tags) > 0
        for token in sentence.tokens:
            assert text[token.start:token.end] == token.text
            assert 0.0 <= token.confidence <= 1.0 + 1e-6
        for entity in sentence.entities:
            assert text[entity.start_char:entity.end_char] == entity.text and entity.label in labels


@settings(max_examples=EXAMPLES["predictor"] // 2, **FAST)
@given(text=st.one_of(nasty_text, any_text))
def test_predictor_tags_any_text(tagger, text):
    _check_tagged(text, tagger.tag(text), set(tagger.labels))


@settings(max_examples=EXAMPLES["predictor"] // 2, **FAST)
@given(tokens=st.lists(st.one_of(st.sampled_from(NASTY), any_text), max_size=30))
def test_predictor_tags_any_tokens(tagger, tokens):
    tagged = tagger.tag_tokens(tokens)  # even empty or blank tokens are tagged (as unknown words)
    assert [t.text for t in tagged.tokens] == tokens and len(tagged.tags) == len(tokens)
    if tokens:
        _check_tagged(" ".join(tokens), [tagged], set(tagger.labels))


def test_predictor_long_inputs_are_windowed_and_stitched(tagger, tiny_corpus):
    rng = random.Random(0)
    words = [t for s in read_conll(tiny_corpus / "train.txt", 0, 1) for t in s.tokens]
    tokens = [rng.choice(words) for _ in range(10_000)]
    (long,) = tagger.tag_batch([tokens])
    assert len(long.tags) == 10_000
    spans = spans_from_tags(long.tags, tagger.task.corpus_scheme)
    assert tags_from_spans(spans, len(long.tags), tagger.task.corpus_scheme) == long.tags  # valid at every seam
    # Away from the seams the windows see the same context as short sentences do.
    piece = tokens[1000:1100]
    assert tagger.tag_tokens(piece).tags[40:60] == long.tags[1040:1060]
    huge_word = tagger.tag("Smith visited " + "x" * 1_000_000 + " yesterday .")
    assert [t.text[:5] for t in huge_word[0].tokens][:2] == ["Smith", "visit"]


def test_predictor_is_thread_safe(tagger, tiny_corpus):
    sentences = [s.tokens for s in read_conll(tiny_corpus / "test.txt", 0, 1)] * 4
    texts = [" ".join(s) for s in sentences]
    expected_batch = [t.tags for t in tagger.tag_batch(sentences)]
    expected_text = [[s.tags for s in tagger.tag(text)] for text in texts]
    barrier = threading.Barrier(4)

    def work(offset: int) -> tuple[list, list]:
        barrier.wait()
        order = list(range(len(texts)))[offset:] + list(range(len(texts)))[:offset]
        by_text = {i: [s.tags for s in tagger.tag(texts[i])] for i in order}
        batch = [t.tags for t in tagger.tag_batch(sentences, batch_size=7)]
        return [by_text[i] for i in range(len(texts))], batch

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, [0, 5, 11, 17]))
    for by_text, batch in results:
        assert by_text == expected_text and batch == expected_batch
