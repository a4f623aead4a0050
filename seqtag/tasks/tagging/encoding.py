"""The tagging task's sentences as indices, the windows long sentences are tagged in, and predicted tags
back in the corpus's scheme: plain Python, without PyTorch, shared by
:class:`~seqtag.tasks.tagging.task.TaggingTask` and the PyTorch-free prediction path
(:mod:`seqtag.tasks.tagging.lite`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from seqtag.data.schemes import convert_tags, spans_from_tags, tags_from_spans
from seqtag.data.vocab import Vocabulary

MAX_WORD_CHARS = 64  # longer words are encoded from their first and last 32 characters
WINDOW = 250  # at prediction, longer sentences are tagged in overlapping windows of this many tokens
CONTEXT = 25  # tokens of context on each side of a window's kept middle part
PREDICT_TOKENS = 4096  # a prediction batch holds at most this many padded tokens (memory stays bounded)
#: The ONNX metadata key under which ``seqtag export`` stores the fingerprint of the model's weights.
FINGERPRINT_KEY = "seqtag_weights_sha256"
#: Training scheme and corpus scheme -> prefix renames that convert a valid tag sequence tag by tag.
RENAMES = {("iobes", "iob2"): {"S": "B", "E": "I"}, ("bilou", "iob2"): {"U": "B", "L": "I"},
           ("iobes", "bilou"): {"S": "U", "E": "L"}, ("bilou", "iobes"): {"U": "S", "L": "E"}}


@dataclass
class Encoded:
    """A sentence as indices: ``words``, ``casing`` (and ``features``) have one entry per token.

    With document context the tokens are ``left`` tokens of the sentences before, the sentence,
    and ``right`` tokens of those after; ``tags`` (gold, or None) cover the sentence alone.
    ``len()`` counts every token the encoder reads, :attr:`size` the sentence's.
    """

    tokens: list[str]
    words: list[int]
    casing: list[int]
    tags: list[int] | None
    features: list[list[int]] | None = None  # per token, one index per extra input column
    left: int = 0
    right: int = 0

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def size(self) -> int:
        """Tokens of the sentence proper (those tagged)."""
        return len(self.tokens) - self.left - self.right

    def alone(self) -> Encoded:
        """The sentence without its document context."""
        if not self.left and not self.right:
            return self
        end = len(self.tokens) - self.right
        return Encoded(self.tokens[self.left:end], self.words[self.left:end], self.casing[self.left:end], self.tags,
                       None if self.features is None else self.features[self.left:end])

    def cut(self, start: int, end: int) -> Encoded:
        """Tokens ``[start, end)``, without tags or document context."""
        return Encoded(self.tokens[start:end], self.words[start:end], self.casing[start:end], None,
                       None if self.features is None else self.features[start:end])


def feature_indices(columns: Sequence[Sequence[str]], vocabularies: Sequence[Vocabulary]) -> list[list[int]]:
    """Per token, the index of its value in each feature column (``columns``: one list of values per
    column, in the order of ``vocabularies``); ValueError when the columns' lengths differ."""
    return [[v.stoi.get(value, v.unk_index) for v, value in zip(vocabularies, values, strict=True)]
            for values in zip(*columns, strict=True)]


def char_indices(form: str, chars: Vocabulary) -> list[int]:
    """Character indices of a word form; a form longer than :data:`MAX_WORD_CHARS` from its first and
    last halves of that, an empty one one unknown character."""
    if len(form) > MAX_WORD_CHARS:
        half = MAX_WORD_CHARS // 2
        form = form[:half] + form[-half:]
    stoi, unk = chars.stoi, chars.unk_index
    return [stoi.get(c, unk) for c in form] or [unk]  # an empty token still gets one (unknown) character


def window_pieces(encoded: Sequence[Encoded]) -> tuple[list[Encoded], list[list[tuple[int, int, int]]]]:
    """Cut sentences longer than ``WINDOW`` into overlapping windows, so memory stays bounded.

    Returns the pieces and, per sentence, ``(piece index, keep from, keep to)`` triples:
    the tokens ``[keep from, keep to)`` of each piece, concatenated, are the sentence.
    Each kept part has ``CONTEXT`` tokens of context on both sides (except at the ends).
    A sentence whose document context makes it longer than ``WINDOW`` is read without it.
    """
    pieces: list[Encoded] = []
    plans: list[list[tuple[int, int, int]]] = []
    core = WINDOW - 2 * CONTEXT
    for item in encoded:
        if item.size == 0:  # nothing to tag
            plans.append([])
            continue
        if len(item) <= WINDOW:
            plans.append([(len(pieces), 0, item.size)])
            pieces.append(item)
            continue
        item = item.alone()  # a long sentence is windowed in its own tokens, without document context
        n = len(item)
        if n <= WINDOW:
            plans.append([(len(pieces), 0, n)])
            pieces.append(item)
            continue
        plan = []
        for core_start in range(0, n, core):
            core_end = min(n, core_start + core)
            start, end = max(0, core_start - CONTEXT), min(n, core_end + CONTEXT)
            plan.append((len(pieces), core_start - start, core_end - start))
            pieces.append(item.cut(start, end))
        plans.append(plan)
    return pieces, plans


def direct_tags(tags: Sequence[str], source: str, target: str, valid: bool) -> list[str] | None:
    """Each of ``tags`` (scheme ``source``, the training scheme) in scheme ``target`` (the corpus's), when the
    conversion is tag by tag: the same scheme, or IOBES/BILOU into IOB2 or each other when the predicted
    sequences are always ``valid`` (a constrained CRF: S-/U- begins, E-/L- continues a span). None otherwise
    (convert per sentence: :func:`corpus_tags`)."""
    if source == target:
        return list(tags)
    if valid and (source, target) in RENAMES:
        rename = RENAMES[(source, target)]
        return [tag if tag == "O" or "-" not in tag else rename.get(tag[0], tag[0]) + tag[1:] for tag in tags]
    return None


def corpus_tags(indices: Sequence[int], tags: Sequence[str], direct: Sequence[str] | None, source: str, target: str,
                stitched: bool = False) -> list[str]:
    """Predicted tag indices (into ``tags``, scheme ``source``) as tags in scheme ``target``: through ``direct``
    (:func:`direct_tags`) where there is one, else converted. ``stitched``: the sentence was tagged in
    windows (:func:`window_pieces`), which may disagree at a seam, so its spans are re-encoded validly."""
    if direct is not None and not stitched:
        return [direct[i] for i in indices]
    converted = convert_tags([tags[i] for i in indices], source, target)
    if stitched and target != "none":  # windows may disagree at a seam: re-encode the spans validly
        converted = tags_from_spans(spans_from_tags(converted, target), len(converted), target)
    return converted
