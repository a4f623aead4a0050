import json
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtag.data import text as text_module
from seqtag.data.text import TOKENIZER_VERSION, Token, Tokenizer, TokenizerConfig, split_sentences
from seqtag.errors import ArchiveError

DEFAULT = Tokenizer()
NO_CONTRACTIONS = Tokenizer(TokenizerConfig(split_contractions=False))
SPLIT_HYPHENS = Tokenizer(TokenizerConfig(split_hyphens=True))
NO_WEB = Tokenizer(TokenizerConfig(keep_web_tokens=False))
ALL = [DEFAULT, NO_CONTRACTIONS, SPLIT_HYPHENS, NO_WEB]


def words(text: str, tokenizer: Tokenizer = DEFAULT) -> list[str]:
    return [token.text for token in tokenizer.tokenize(text)]


def check_offsets(text: str, tokens: list[Token]) -> None:
    """Every invariant a tokenisation of ``text`` must satisfy."""
    previous_end = 0
    for token in tokens:
        assert text[token.start : token.end] == token.text
        assert token.text and previous_end <= token.start < token.end
        assert not any(c.isspace() for c in token.text)
        assert not text[previous_end : token.start].strip()  # only whitespace between tokens
        previous_end = token.end
    assert not text[previous_end:].strip()
    assert "".join(t.text for t in tokens) == "".join(c for c in text if not c.isspace())


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "The U.S. Army paid $1,000.50 to J. Smith's firm in Washington, D.C. on Jan. 5.",
            ["The", "U.S.", "Army", "paid", "$", "1,000.50", "to", "J.", "Smith", "'s", "firm", "in",
             "Washington", ",", "D.C.", "on", "Jan.", "5", "."],
        ),
        ("Paris. (AP) -- Hello!?", ["Paris", ".", "(", "AP", ")", "--", "Hello", "!", "?"]),
        ('He said "no," then \'maybe\'...', ["He", "said", '"', "no", ",", '"', "then", "'", "maybe", "'", "..."]),
        ("“Quoted” «guillemets»", ["“", "Quoted", "”", "«", "guillemets", "»"]),
        (
            "Mr. Mrs. Dr. Prof. St. Corp. Inc. Ltd. Co. MR. JAN. Sept. Calif. Ph.D. vs. etc.",
            ["Mr.", "Mrs.", "Dr.", "Prof.", "St.", "Corp.", "Inc.", "Ltd.", "Co.", "MR.", "JAN.", "Sept.",
             "Calif.", "Ph.D.", "vs.", "etc."],
        ),
        ("e.g. i.e. U.N. a.m. p.m. U.S.A.", ["e.g.", "i.e.", "U.N.", "a.m.", "p.m.", "U.S.A."]),
        ("J. R. R. Tolkien and J.R.R. Martin", ["J.", "R.", "R.", "Tolkien", "and", "J.R.R.", "Martin"]),
        ("He lives in Paris. Cost. The end.", ["He", "lives", "in", "Paris", ".", "Cost", ".", "The", "end", "."]),
        ("3.5 1,000.50 10:30 1996-08-22 1/2 1990s 2-1", ["3.5", "1,000.50", "10:30", "1996-08-22", "1/2", "1990s", "2-1"]),
        ("50% $5 US$10 C$ +44 .500 -5 5.", ["50", "%", "$", "5", "US$", "10", "C$", "+44", ".500", "-", "5", "5", "."]),
        ("1,2,3 and 4.", ["1,2,3", "and", "4", "."]),
        (
            "I don't think we're ready; can't won't DON'T I'm they've he'd we'll",
            ["I", "do", "n't", "think", "we", "'re", "ready", ";", "ca", "n't", "wo", "n't", "DO", "N'T",
             "I", "'m", "they", "'ve", "he", "'d", "we", "'ll"],
        ),
        ("John's O'Neill's rock'n'roll players' o'clock it’s", ["John", "'s", "O'Neill", "'s", "rock'n'roll", "players", "'", "o'clock", "it", "’s"]),
        ("Anglo-Dutch 3-year-old mother-in-law's", ["Anglo-Dutch", "3-year-old", "mother-in-law", "'s"]),
        ("S&P AT&T R&D rock&roll", ["S&P", "AT&T", "R&D", "rock", "&", "roll"]),
        (
            "See https://www.example.com/a_b?x=1&y=2. Or (http://x.org/p).",
            ["See", "https://www.example.com/a_b?x=1&y=2", ".", "Or", "(", "http://x.org/p", ")", "."],
        ),
        ("www.reuters.com reuters.com's Reuters.", ["www.reuters.com", "reuters.com", "'s", "Reuters", "."]),
        ("Mail john.doe+ner@mail.example.com, please.", ["Mail", "john.doe+ner@mail.example.com", ",", "please", "."]),
        ("@reuters #NER2003 C# #1!", ["@reuters", "#NER2003", "C", "#", "#1", "!"]),
        ("Café Zürich 東京に行く naïve", ["Café", "Zürich", "東京に行く", "naïve"]),
        ("Great🙂!! 👍🏽 🇺🇸👨‍👩‍👧", ["Great", "🙂", "!", "!", "👍🏽", "🇺🇸", "👨‍👩‍👧"]),
        ("שלום, עולם! مرحبا بالعالم.", ["שלום", ",", "עולם", "!", "مرحبا", "بالعالم", "."]),
        ("Москва, Россия. Ελλάδα.", ["Москва", ",", "Россия", ".", "Ελλάδα", "."]),
    ],
)
def test_conventions(text, expected):
    tokens = DEFAULT.tokenize(text)
    assert [t.text for t in tokens] == expected
    check_offsets(text, tokens)


def test_config_changes_contractions_hyphens_and_web_tokens():
    assert words("don't John's we're", NO_CONTRACTIONS) == ["don't", "John's", "we're"]
    assert words("Anglo-Dutch 1996-08-22 3-year-old 2-1", SPLIT_HYPHENS) == [
        "Anglo", "-", "Dutch", "1996-08-22", "3", "-", "year", "-", "old", "2-1"
    ]
    assert words("a@b.com http://x.org @me", NO_WEB) == [
        "a", "@", "b", ".", "com", "http", ":", "/", "/", "x", ".", "org", "@", "me"
    ]


@pytest.mark.parametrize("bad", ["", ".x", "a b", "a*b", "-x", 5])
def test_extra_abbreviations_are_validated(bad):
    with pytest.raises(ValueError):
        TokenizerConfig(extra_abbreviations=(bad,))


def test_extra_abbreviations():
    tokenizer = Tokenizer(TokenizerConfig(extra_abbreviations=("Messrs.", "Mio", "a&b")))
    assert words("Mio. a&b. Mio.x Miox.", tokenizer) == ["Mio.", "a&b.", "Mio.", "x", "Miox", "."]
    assert words("Mio. a&b.") == ["Mio", ".", "a", "&", "b", "."]


@pytest.mark.parametrize(
    "text",
    [
        "  two  spaces\tand\ttabs\nnew\r\nlines\u00a0nbsp\u2003em\u3000ideo\u2028ls\u2029ps\x85nel\x1cfs\x0bvt ",
        "Hi 🙂 there🙂🙂. e\u0301 \u0301alone ,\u0301 x\u200dy a\u200bb",
        "Café Zürich, 東京に行く。大阪！ 한국어 ภาษาไทย हिन्दी",
        "עברית (RTL) \u202eoverride\u202c and العربية.",
        "nul\x00inside \x00 \x01\x02ctrl\x7f\x9f \ufeffbom",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 \U0010ffff \U000e0001",
        "",
        " \t\n ",
    ],
)
def test_offsets_on_tricky_strings(text):
    for tokenizer in ALL:
        check_offsets(text, tokenizer.tokenize(text))


def test_whitespace_set_is_exactly_str_isspace():
    assert set(text_module._WHITESPACE) == {c for c in map(chr, range(0x110000)) if c.isspace()}


def test_lone_surrogates_keep_offsets():
    text = "a\ud800b c\udfff."
    tokens = DEFAULT.tokenize(text)
    check_offsets(text, tokens)
    assert "".join(t.text for t in tokens) == "a\ud800bc\udfff."


def test_offset_argument_shifts_spans():
    document = "Header. Paris is nice."
    tokens = DEFAULT.tokenize(document[8:], offset=8)
    assert [(t.text, t.start, t.end) for t in tokens] == [("Paris", 8, 13), ("is", 14, 16), ("nice", 17, 21), (".", 21, 22)]
    assert all(document[t.start : t.end] == t.text for t in tokens)


TRICKY = list(".,;:!?'’\"“”()[]$%&+-‐/@#*=_…。！？") + list("aZé東京🙂👍🏽\u0301\u200d\u200b\x00\x1c") + list(
    text_module._WHITESPACE
)
tricky_text = st.text(alphabet=st.one_of(st.sampled_from(TRICKY), st.characters()), max_size=80)
pieces = st.sampled_from(
    ["U.S.", "Mr.", "J.", "don't", "John's", "1,000.50", "http://x.org/a.", "a@b.com", "@me", "#tag", "Anglo-Dutch",
     "...", "--", "+44", ".5", "C$", "S&P", "Paris.", "Hello!", '"', "\n\n", " ", "\t", "🙂", "e\u0301"]
)
joined_text = st.lists(st.one_of(pieces, tricky_text), max_size=12).map("".join)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), tricky_text, joined_text), st.sampled_from(ALL))
def test_property_offsets_order_and_coverage(text, tokenizer):
    check_offsets(text, tokenizer.tokenize(text))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), joined_text))
def test_property_sentences_partition_the_tokens(text):
    tokens = DEFAULT.tokenize(text)
    sentences = DEFAULT.sentences(text)
    assert [t for sentence in sentences for t in sentence] == tokens
    assert all(sentences)
    spans = split_sentences(text)
    assert spans == [(s[0].start, s[-1].end) for s in sentences]
    assert all(text[a:b] == text[a:b].strip() and a < b for a, b in spans)
    assert all(b1 <= a2 for (_, b1), (a2, _) in pairwise(spans))


def sentence_texts(text: str) -> list[str]:
    return [text[a:b] for a, b in split_sentences(text)]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "Mr. Smith went to Washington. He arrived on Monday.",
            ["Mr. Smith went to Washington.", "He arrived on Monday."],
        ),
        ("The U.S. Army met J. Smith on Jan. 5 in Washington, D.C. at noon.", None),
        ("Dr. Jones, Prof. Lee and Acme Corp. Chairman Ng met. They agreed.", ["Dr. Jones, Prof. Lee and Acme Corp. Chairman Ng met.", "They agreed."]),
        ("It costs $3.50 per share. 1996 was better!", ["It costs $3.50 per share.", "1996 was better!"]),
        ('He said "Stop!" Then he left. "Why?" she asked.', ['He said "Stop!"', "Then he left.", '"Why?" she asked.']),
        ('"Stop!" he said (quietly.) Then left.', ['"Stop!" he said (quietly.)', "Then left."]),
        ("Really?! Yes... Maybe. ok. no lower-case split.", ["Really?!", "Yes...", "Maybe. ok. no lower-case split."]),
        ("First paragraph without a stop\n\n  Second one\r\n\r\nThird\nstill third", ["First paragraph without a stop", "Second one", "Third\nstill third"]),
        ("No terminal punctuation here", None),
        ("Trailing spaces.   ", ["Trailing spaces."]),
        ("東京に行く。大阪に行く！", ["東京に行く。", "大阪に行く！"]),
        ("See www.x.org. Then http://y.com/a. Done", ["See www.x.org.", "Then http://y.com/a.", "Done"]),
        ("Ends with end.Next glued", None),
    ],
)
def test_sentence_splitting(text, expected):
    assert sentence_texts(text) == (expected if expected is not None else [text])


def test_sentences_empty_and_offsets():
    assert split_sentences("") == [] and split_sentences(" \n\t\u3000 ") == []
    assert DEFAULT.sentences("") == [] and DEFAULT.sentences("\n\n") == []
    text = "  Hi there.\tBye 🙂 now!  "
    sentences = DEFAULT.sentences(text)
    assert [[t.text for t in s] for s in sentences] == [["Hi", "there", "."], ["Bye", "🙂", "now", "!"]]
    assert all(text[t.start : t.end] == t.text for s in sentences for t in s)
    assert split_sentences(text) == [(2, 11), (12, 22)]


def test_split_sentences_uses_given_tokenizer():
    assert len(split_sentences("He met Sen. Blunt. Then left.")) == 2
    tokenizer = Tokenizer(TokenizerConfig(extra_abbreviations=("Blunt",)))
    assert len(split_sentences("He met Sen. Blunt. Then left.", tokenizer)) == 1


def test_config_json_round_trip():
    config = TokenizerConfig(split_contractions=False, split_hyphens=True, keep_web_tokens=False, extra_abbreviations=("Abbr",))
    data = json.loads(json.dumps(config.to_json()))
    assert data == {
        "split_contractions": False,
        "split_hyphens": True,
        "keep_web_tokens": False,
        "extra_abbreviations": ["Abbr"],
        "version": TOKENIZER_VERSION,
    }
    again = TokenizerConfig.from_json(data)
    assert again == config
    assert words("don't Anglo-Dutch Abbr.", Tokenizer(again)) == ["don't", "Anglo", "-", "Dutch", "Abbr."]
    assert TokenizerConfig.from_json({}) == TokenizerConfig()
    assert TokenizerConfig.from_json(TokenizerConfig().to_json()) == TokenizerConfig()


@pytest.mark.parametrize(
    "data",
    [
        {"version": TOKENIZER_VERSION + 1},
        {"version": "1"},
        {"split_hyphens": "yes"},
        {"extra_abbreviations": "Mr"},
        {"extra_abbreviations": [""]},
        {"extra_abbreviations": ["a b"]},
        {"lowercase": True},
    ],
)
def test_config_from_json_rejects_bad_data(data):
    with pytest.raises(ArchiveError):
        TokenizerConfig.from_json(data)


@pytest.mark.parametrize("unit", ["n't-", "a.b", "x@", "'$+", "a-", "Mr.A.", "a@b.c", "-'s", "+.1", "1,"])
def test_long_runs_without_spaces_take_linear_time(unit):
    import time

    text = unit * (30_000 // len(unit))  # ~30k characters: a quadratic rule takes 10 s or more
    for tokenizer in ALL:
        started = time.perf_counter()
        check_offsets(text, tokenizer.tokenize(text))
        assert time.perf_counter() - started < 5
