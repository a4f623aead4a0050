"""Raw text -> sentences -> tokens with exact character offsets, CoNLL/PTB style.

Tokenisation runs in the ``tokenizers`` library: a pre-tokenizer that removes
whitespace, then one ``Split`` whose regex (Oniguruma) matches whole tokens.
Characters the token regex does not match still come out as pieces, so no
non-space character is ever dropped, and offsets are Python string indices
(``tokenizers`` reports offsets in Unicode code points, as Python does).

Conventions (CoNLL-2003 / Penn Treebank):

* punctuation is split off words: ``Paris.`` -> ``Paris`` ``.``; ``(AP)`` ->
  ``(`` ``AP`` ``)``; ``...`` and ``--`` stay whole;
* abbreviations keep their period: a built-in list (titles, months, company
  suffixes, ...; see :data:`ABBREVIATIONS`), letter-period acronyms (``U.S.``,
  ``e.g.``, ``D.C.``) and upper-case initials (``J.``);
* numbers stay whole (``1,000.50``, ``3.5``, ``10:30``, ``1996-08-22``), while
  ``%`` and currency signs are split off (``$`` ``5``, ``50`` ``%``); as in
  CoNLL-03, ``+44``, ``.500``, ``US$``/``C$`` and ``S&P``/``AT&T`` stay whole
  and a minus sign is split off;
* contractions are split PTB style when :attr:`TokenizerConfig.split_contractions`
  (``do`` ``n't``, ``John`` ``'s``, ``we`` ``'re``);
* hyphenated words stay whole unless :attr:`TokenizerConfig.split_hyphens`
  (digit-hyphen-digit such as dates and scores always stays whole);
* URLs, e-mail addresses, @mentions and #hashtags are one token each;
* emoji and other symbols are tokens of their own (one per grapheme cluster,
  so ``👍🏽`` and flags stay whole); letters of any script, with their combining
  marks, stay in words;
* any whitespace (``str.isspace``) separates tokens and is never part of one;
  control characters and lone surrogates are kept as tokens, never dropped.

Sentences end after ``.``, ``!``, ``?`` or ``...`` (with any closing quotes or
brackets right after them) that are followed by whitespace and a token starting
with an upper-case or case-less letter, a digit or an opening quote/bracket;
after ``。！？`` whatever follows; and at blank lines. An abbreviation, acronym
or initial is one token with its period, so it never ends a sentence (which
also means a sentence ending in ``U.S.`` or ``Corp.`` is not split there).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

from tokenizers import Regex
from tokenizers import pre_tokenizers as pt

from seqtag.errors import ArchiveError, RecipeError, shorten, shown

__all__ = [
    "ABBREVIATIONS",
    "MAX_ABBREVIATION_LENGTH",
    "MAX_EXTRA_ABBREVIATIONS",
    "TOKENIZER_VERSION",
    "Token",
    "Tokenizer",
    "TokenizerConfig",
    "split_sentences",
]

#: Version of the tokenisation rules; bump when the output for some text changes.
TOKENIZER_VERSION = 1

#: Words that keep their period, matched as written (and in upper case when capitalised: "MR.", "JAN.").
ABBREVIATIONS: tuple[str, ...] = (
    # titles
    "Mr", "Mrs", "Ms", "Messrs", "Mme", "Mlle", "Dr", "Prof", "St", "Jr", "Sr", "Rev", "Hon", "Fr",
    "Gen", "Col", "Lt", "Capt", "Cmdr", "Sgt", "Maj", "Adm", "Gov", "Sen", "Rep", "Pres", "Supt", "Ph.D",
    # months and days ("May" and "Sun" are words)
    "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec",
    "Mon", "Tue", "Tues", "Wed", "Thu", "Thur", "Thurs", "Fri", "Sat",
    # organisations and addresses
    "Corp", "Inc", "Ltd", "Co", "Cos", "Bros", "Assn", "Dept", "Div", "Mfg", "Univ",
    "Ave", "Blvd", "Rd", "Mt", "Ft", "Hwy",
    # US states as abbreviated in news wire (those that are not also words)
    "Ala", "Ariz", "Ark", "Calif", "Colo", "Conn", "Fla", "Ga", "Kan", "Ky", "Md", "Mich", "Minn",
    "Mont", "Neb", "Nev", "Okla", "Tenn", "Tex", "Vt", "Wis", "Wyo",
    # other
    "No", "Nos", "Vol", "Vols", "Fig", "Figs", "pp", "vs", "etc", "approx", "cf", "al", "ca", "viz",
)

# Everything str.isspace() accepts (checked by the tests against all of Unicode).
_WHITESPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + (
    "\u2028\u2029\u202f\u205f\u3000"
)
_ONIG_WS = "[" + "".join(f"\\x{{{ord(c):04X}}}" for c in _WHITESPACE) + "]+"
_SURROGATE = re.compile("[\ud800-\udfff]")

_URL_END = r"""[^\s.,;:!?'"’”)\]}>]"""
_SUFFIX = r"(?i:n['’]t|['’](?:s|re|ve|ll|d|m))\b"
_ABBREVIATION = re.compile(r"[^\W_][\w.'’&-]*")

#: The longest abbreviation :attr:`TokenizerConfig.extra_abbreviations` accepts (the built-in ones have
#: at most 6 characters); abbreviations are compiled into the token regex.
MAX_ABBREVIATION_LENGTH = 40
#: The most abbreviations :attr:`TokenizerConfig.extra_abbreviations` accepts (10,000 of them build
#: the tokenizer in about a second).
MAX_EXTRA_ABBREVIATIONS = 10_000






def _abbreviation_problems(extra: tuple[Any, ...]) -> list[str]:
    """Problems of :attr:`TokenizerConfig.extra_abbreviations` (at most five; see :meth:`TokenizerConfig.problems`)."""
    found: list[str] = []
    if len(extra) > MAX_EXTRA_ABBREVIATIONS:
        found.append(f"extra_abbreviations: at most {MAX_EXTRA_ABBREVIATIONS} abbreviations, got {len(extra)}")
        return found
    for abbreviation in extra:
        if not isinstance(abbreviation, str):
            found.append(f"extra_abbreviations: an abbreviation is a string, got {shown(abbreviation)}")
        elif len(abbreviation) > MAX_ABBREVIATION_LENGTH:
            found.append(f"extra_abbreviations: an abbreviation has at most {MAX_ABBREVIATION_LENGTH} characters, "
                         f"got {shown(abbreviation)}")
        elif not _ABBREVIATION.fullmatch(abbreviation):
            found.append(f"extra_abbreviations: not a valid abbreviation: {shown(abbreviation)} "
                         "(letters, digits, then . - ' ’ &)")
        if len(found) >= 5:
            break
    return found


@dataclass
class TokenizerConfig:
    """Tokenisation settings; stored (as JSON) with a model so prediction tokenises as training did."""

    #: PTB contractions: "don't" -> "do" "n't", "John's" -> "John" "'s", "we're" -> "we" "'re".
    split_contractions: bool = True
    #: Split "Anglo-Dutch" into "Anglo" "-" "Dutch" (CoNLL-03 keeps it whole; digit-digit stays whole).
    split_hyphens: bool = False
    #: Keep URLs, e-mail addresses, @mentions and #hashtags as one token each.
    keep_web_tokens: bool = True
    #: Abbreviations keeping their period in addition to :data:`ABBREVIATIONS` ("Gen", "Univ."; the
    #: final period is optional): letters or digits, then also ``. - ' ’ &``.
    extra_abbreviations: tuple[str, ...] = field(default_factory=tuple)
    #: Version of the rules this config was written with.
    version: int = TOKENIZER_VERSION

    def __post_init__(self) -> None:
        self.extra_abbreviations = tuple(self.extra_abbreviations)
        problems = self.problems()
        if problems:
            raise ValueError(problems[0])

    def problems(self) -> list[str]:
        """What is wrong with these settings, as ``"extra_abbreviations: ..."`` lines (empty: nothing).

        The abbreviations become part of the token regex, so their number and length are bounded
        (:data:`MAX_EXTRA_ABBREVIATIONS`, :data:`MAX_ABBREVIATION_LENGTH`); messages show at most
        about 80 characters of a value.
        """
        return _abbreviation_problems(self.extra_abbreviations)

    @classmethod
    def from_recipe(cls, section: Any) -> TokenizerConfig:
        """Settings from a recipe's ``tokenizer`` section (a pydantic model or a dict).

        Raises:
            RecipeError: every problem of the section (``tokenizer.extra_abbreviations: ...``).
        """
        data = section.model_dump() if hasattr(section, "model_dump") else dict(section)
        extra = data.get("extra_abbreviations") or ()
        if isinstance(extra, (str, bytes)) or not isinstance(extra, (list, tuple)):
            raise RecipeError(f"tokenizer.extra_abbreviations: a list of strings, got {shown(extra)}")
        problems = _abbreviation_problems(tuple(extra))
        if problems:
            raise RecipeError("\n".join(f"tokenizer.{problem}" for problem in problems))
        try:
            return cls(**{**data, "extra_abbreviations": tuple(extra)})
        except (TypeError, ValueError) as error:
            raise RecipeError(f"tokenizer: {error}") from None

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON-serialisable dict."""
        data = asdict(self)
        data["extra_abbreviations"] = list(self.extra_abbreviations)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenizerConfig:
        """Settings from :meth:`to_json` output; missing keys take their defaults.

        Raises :class:`~seqtag.errors.ArchiveError` on unknown keys, wrong types,
        or a version newer than this code knows.
        """
        if not isinstance(data, dict):
            raise ArchiveError(f"the tokenizer settings are a JSON object, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ArchiveError(f"unknown tokenizer settings: {shorten(', '.join(map(str, unknown)))}")
        version = data.get("version", TOKENIZER_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= TOKENIZER_VERSION:
            raise ArchiveError(f"tokenizer version {shown(version)} is not supported (this code has {TOKENIZER_VERSION})")
        for name in ("split_contractions", "split_hyphens", "keep_web_tokens"):
            if name in data and not isinstance(data[name], bool):
                raise ArchiveError(f"tokenizer setting {name} must be true or false, got {shown(data[name])}")
        extra = data.get("extra_abbreviations", [])
        if not isinstance(extra, (list, tuple)):
            raise ArchiveError(f"tokenizer setting extra_abbreviations must be a list of strings, got {shown(extra)}")
        try:
            return cls(**{**data, "extra_abbreviations": tuple(extra), "version": version})
        except ValueError as error:
            raise ArchiveError(f"tokenizer setting {error}") from None


@dataclass(slots=True)
class Token:
    """A token and its character span: ``original[start:end] == text``."""

    text: str
    start: int
    end: int


def _trie_pattern(words: list[str]) -> str:
    """A regex matching exactly ``words``, factored by common prefixes (much faster than a flat ``a|b|c``).

    Built without recursion (an explicit stack), so the length of a word is no limit.
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    # post-order over the trie: a node's pattern is made once all of its children's are
    patterns: dict[int, str] = {}
    stack: list[tuple[dict[str, Any], bool]] = [(trie, False)]
    while stack:
        node, ready = stack.pop()
        if not ready:
            stack.append((node, True))
            stack.extend((child, False) for char, child in node.items() if char)
            continue
        branches = [re.escape(char) + patterns.pop(id(child)) for char, child in sorted(node.items()) if char]
        if len(branches) == 1 and "" not in node:
            pattern = branches[0]
        else:
            body = "(?:" + "|".join(branches) + ")" if branches else ""
            pattern = body + "?" if "" in node and body else body
        patterns[id(node)] = pattern
    return patterns[id(trie)]


def _token_pattern(config: TokenizerConfig) -> str:
    """The Oniguruma regex matching one token; alternatives are tried in order at each position."""
    hyphen = r"(?<=\d)-(?=\d)" if config.split_hyphens else r"[-‐](?=\w)"
    word = rf"\w+(?:(?:(?<=\d)[.,:/](?=\d)|{hyphen}|['’](?=\w)|(?<=\p{{Lu}})&(?=\p{{Lu}}))\w+)*"
    abbreviations = {a.removesuffix(".") for a in (*ABBREVIATIONS, *config.extra_abbreviations)}
    abbreviations |= {a.upper() for a in abbreviations if a[:1].isupper()}
    alternatives = [
        # fast paths (same result as the rules below): a word that nothing can extend, safe punctuation
        r"\w++(?![\w.@'’\-‐,:/+$&])",
        r"[,;:!?()\[\]{}\"%&*=<>|~^](?![\p{M}\x{200D}])",
    ]
    if config.keep_web_tokens:
        alternatives += [
            rf"(?i:(?:https?|ftp)://|www\.)[^\s]*{_URL_END}",  # URL
            # bounded repeats (as in RFC 5321) keep these linear on long runs without spaces
            r"\w[\w.+-]{0,63}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}",  # e-mail
            rf"\b[\w-]{{1,63}}(?:\.[\w-]{{1,63}}){{0,8}}\.(?i:com|org|net|edu|gov|io)\b(?:/[^\s]*{_URL_END})?",  # domain
            r"[@#]\w+",  # @mention, #hashtag
        ]
    alternatives += [
        rf"\b{_trie_pattern(sorted(abbreviations))}\.",  # listed abbreviation
        r"\b(?:\p{L}\.){2,}",  # acronym: U.S., e.g., D.C.
        r"\b\p{Lu}\.",  # initial: J.
        rf"(?<![\w.+-])(?:\+\.?|\.)(?=\d){word}",  # signed or point-first number: +44, .500
        r"\b\p{Lu}{1,3}\$",  # currency: C$, US$, HK$
    ]
    if config.split_contractions:
        # only in runs of at most 64 word-ish characters: keeps this look-ahead linear on long garbage
        guard = r"(?=(?>[\w'’\-‐.,:/&]{1,64})(?![\w'’\-‐.,:/&]))"
        alternatives += [rf"{guard}{word}(?={_SUFFIX})", _SUFFIX]
    alternatives += [word, r"\.{2,}|-{2,}", r"\X"]
    return "|".join(f"(?:{a})" for a in alternatives)


class Tokenizer:
    """CoNLL/PTB-style tokeniser and sentence splitter with exact character offsets."""

    def __init__(self, config: TokenizerConfig | None = None) -> None:
        """A tokenizer with ``config`` (default settings when None).

        Raises:
            ValueError: settings that :meth:`TokenizerConfig.problems` rejects (e.g. changed
                after the config was made).
        """
        self.config = config if config is not None else TokenizerConfig()
        problems = self.config.problems()
        if problems:
            raise ValueError(problems[0])
        self._pre_tokenizer = pt.Sequence(
            [
                pt.Split(Regex(_ONIG_WS), behavior="removed"),
                pt.Split(Regex(_token_pattern(self.config)), behavior="isolated"),
            ]
        )

    def tokenize(self, text: str, offset: int = 0) -> list[Token]:
        """Tokens of ``text``; ``offset`` (where ``text`` starts in a larger document) is added to every span."""
        try:
            pieces = self._pre_tokenizer.pre_tokenize_str(text)
        except UnicodeEncodeError:  # lone surrogates cannot cross into Rust; U+FFFD keeps the length
            pieces = self._pre_tokenizer.pre_tokenize_str(_SURROGATE.sub("\ufffd", text))
        return [Token(text[s:e], s + offset, e + offset) for _, (s, e) in pieces]

    def sentences(self, text: str) -> list[list[Token]]:
        """Tokens of ``text`` grouped into sentences; offsets index ``text``."""
        tokens = self.tokenize(text)
        bounds = _sentence_bounds(text, tokens)
        return [tokens[i:j] for i, j in pairwise(bounds)]

    def sentence_spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` character spans of the sentences of ``text``, without surrounding whitespace."""
        tokens = self.tokenize(text)
        bounds = _sentence_bounds(text, tokens)
        return [(tokens[i].start, tokens[j - 1].end) for i, j in pairwise(bounds)]


_TERMINAL = ".!?…。！？"
_CJK_TERMINAL = frozenset("。！？")
_CLOSERS = frozenset(["'", '"', "’", "”", "»", "›", ")", "]", "}", "」", "』", "）", "】", "〉", "》"])
_OPENERS = frozenset("'\"‘“«‹([{「『（【〈《`")
_BLANK_LINE = re.compile(r"(?:\r\n|[\n\r\x85\u2028\u2029])(?:[^\S\n\r\x85\u2028\u2029]*(?:\r\n|[\n\r\x85\u2028\u2029]))+")


def _starts_sentence(token: str) -> bool:
    c = token[0]
    return c.isdigit() or c in _OPENERS or (c.isalpha() and not c.islower())


def _sentence_bounds(text: str, tokens: list[Token]) -> list[int]:
    """Token indices where sentences start, plus ``len(tokens)``; ``[]`` when there are no tokens."""
    n = len(tokens)
    if not n:
        return []
    starts = {0, n}
    for i, token in enumerate(tokens):
        if token.text.strip(_TERMINAL):
            continue
        end = i + 1
        while end < n and tokens[end].text in _CLOSERS and tokens[end].start == tokens[end - 1].end:
            end += 1
        if end < n and (
            token.text[-1] in _CJK_TERMINAL
            or (tokens[end].start > tokens[end - 1].end and _starts_sentence(tokens[end].text))
        ):
            starts.add(end)
    blank_line_ends = [m.end() for m in _BLANK_LINE.finditer(text)]
    if blank_line_ends:
        offsets = [t.start for t in tokens]
        starts.update(bisect_left(offsets, end) for end in blank_line_ends)
    return sorted(starts)


_DEFAULT: Tokenizer | None = None


def split_sentences(text: str, tokenizer: Tokenizer | None = None) -> list[tuple[int, int]]:
    """``(start, end)`` character spans of the sentences of ``text`` (``[]`` for blank text).

    Uses ``tokenizer`` (default settings when ``None``) to know which periods
    belong to abbreviations; see the module docstring for the rules.
    """
    global _DEFAULT
    if tokenizer is None:
        if _DEFAULT is None:
            _DEFAULT = Tokenizer()
        tokenizer = _DEFAULT
    return tokenizer.sentence_spans(text)
