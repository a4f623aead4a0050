"""spaCy integration: the ``seqtag`` pipeline component and seqtag's tokenizer for spaCy.

``nlp.add_pipe("seqtag", config={"model": "model.seqtag"})``

Registered through the ``spacy_factories`` entry point, so no import is
needed once seqtag is installed. The component tags spaCy's own tokens: span
models set ``doc.ents`` (keeping or overwriting existing entities, as
configured), POS-style models set ``token.tag_``. Per-token confidences are
in ``token._.seqtag_confidence`` and per-entity ones in
``span._.seqtag_confidence``. The model file is copied into the pipeline
folder by ``nlp.to_disk`` and read back by ``spacy.load``. ``nlp.evaluate``
scores the component as spaCy scores its own: ``ents_p`` / ``ents_r`` /
``ents_f`` / ``ents_per_type`` for span models, ``tag_acc`` for POS-style
ones; ``component.displacy_options()`` colours every entity type of the model
in ``displacy.render(doc, style="ent", options=...)``.

spaCy's own tokenizer splits some words that seqtag keeps whole (``AL-AIN``,
``2-1``). For results identical to ``tagger.tag(text)``, give the pipeline
seqtag's tokenizer and sentence splitter::

    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "seqtag.Tokenizer.v1"}}})
"""

from __future__ import annotations

import colorsys
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from spacy.displacy.render import DEFAULT_LABEL_COLORS
from spacy.language import Language
from spacy.scorer import Scorer, get_ner_prf
from spacy.tokens import Doc, Span, Token
from spacy.training import Example, validate_examples
from spacy.util import filter_spans, registry
from spacy.vocab import Vocab

from seqtag.api import load
from seqtag.data.conll import Sentence
from seqtag.data.schemes import spans_from_tags
from seqtag.data.text import Tokenizer as TextTokenizer
from seqtag.data.text import TokenizerConfig
from seqtag.devices import resolve_device
from seqtag.errors import ArchiveError, DataError, SeqtagError
from seqtag.io import atomic_open, atomic_write_bytes, shorten

MODEL_FILE = "model.seqtag"
CONFIDENCE = "seqtag_confidence"
_SURROGATE = re.compile("[\ud800-\udfff]")

for _cls in (Token, Span):
    if not _cls.has_extension(CONFIDENCE):
        _cls.set_extension(CONFIDENCE, default=None)

#: Colours for entity types that displaCy has no colour for, in the order they are handed out:
#: light enough for black text, and none of them one of displaCy's own.
PALETTE = (
    "#ffd166", "#8ecae6", "#b5e48c", "#f4a6c6", "#cdb4db", "#ffc09f", "#a0c4ff", "#caffbf",
    "#ffadad", "#bdb2ff", "#9bf6ff", "#e9c46a", "#d4a373", "#84dcc6", "#fdffb6", "#c9ada7",
)
#: Entity types that are another name of one displaCy colours (CoNLL's PER is spaCy's PERSON).
COLOR_ALIASES = {"PER": "PERSON", "PERS": "PERSON", "LOCATION": "LOC", "ORGANIZATION": "ORG", "ORGANISATION": "ORG"}


def label_colors(labels: Sequence[str]) -> dict[str, str]:
    """A distinct ``#rrggbb`` colour for every label, the same for the same labels.

    displaCy looks colours up by the label in upper case, so labels are compared that way. A label
    displaCy knows (``ORG``, ``LOC``, ... or an alias such as ``PER`` for ``PERSON``) keeps
    displaCy's colour unless a label before it (in sorted order) took that colour; the others get
    the colours of :data:`PALETTE` in sorted order, then evenly spread hues when there are more
    labels than the palette holds.
    """
    keys = sorted({label.upper() for label in labels})
    chosen: dict[str, str] = {}
    used: set[str] = set()
    for key in keys:
        default = DEFAULT_LABEL_COLORS.get(COLOR_ALIASES.get(key, key))
        if default is not None and default.lower() not in used:
            chosen[key] = default.lower()
            used.add(chosen[key])
    spare = iter(PALETTE)
    hue = 0
    for key in keys:
        if key in chosen:
            continue
        color = next(spare, None)
        while color is None or color in used:
            color = next(spare, None)
            if color is None:  # golden-ratio hues: distinct, light, reproducible
                red, green, blue = colorsys.hls_to_rgb((hue * 0.618033988749895) % 1.0, 0.78, 0.75)
                color = f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"
                hue += 1
        chosen[key] = color
        used.add(color)
    return {label: chosen[label.upper()] for label in labels}


class SeqtagComponent:
    """Runs a seqtag tagging model on spaCy docs.

    Args:
        nlp: the pipeline.
        name: the component's name in the pipeline.
        model: path of a ``model.seqtag`` file (may be empty when the model
            comes from ``from_disk`` or ``from_bytes``).
        overwrite_ents: replace existing ``doc.ents`` (True) or keep them and
            add only non-overlapping predicted entities (False).
        batch_size: sentences per batch inside ``nlp.pipe`` (at least 1).
        device: where the model runs: ``auto`` (a GPU when there is one), ``cpu``, ``cuda``,
            ``cuda:N`` or ``mps``.

    Raises:
        SeqtagError: a bad setting or model file, when the component is made (not at the first doc).

    ``nlp.pipe(texts, n_process=N)`` works with either start method: a worker process made by
    ``fork`` after the parent ran the model would deadlock in torch's inherited thread pool, so a
    component that finds itself in a new process sets torch to one thread there first (the
    processes are the parallelism).
    """

    def __init__(
        self, nlp: Language, name: str, model: str | None, overwrite_ents: bool, batch_size: int, device: str = "auto"
    ) -> None:
        self.name = name
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise SeqtagError(f"the {name!r} component's batch_size must be a whole number of at least 1, "
                              f"got {shorten(repr(batch_size))}")
        if not isinstance(overwrite_ents, bool):
            raise SeqtagError(f"the {name!r} component's overwrite_ents must be true or false, "
                              f"got {shorten(repr(overwrite_ents))}")
        if not isinstance(device, str):
            raise SeqtagError(f"the {name!r} component's device must be a name such as cpu or cuda, "
                              f"got {shorten(repr(device))}")
        resolve_device(device)  # an unknown or missing device: SeqtagError now, not at from_disk
        self.overwrite_ents = overwrite_ents
        self.batch_size = batch_size
        self.device = device
        self.model_path: Path | None = None
        self.model_bytes: bytes | None = None  # the model file's content when it came from from_bytes
        self.tagger: Any = None
        self._pid = os.getpid()
        if model:
            self._load(Path(model))

    def _load(self, path: Path, source: str | None = None) -> None:
        """Load the tagging model in the file ``path`` (``source``: how to name it in messages)."""
        try:
            tagger = load(path, device=self.device)
        except SeqtagError as error:
            if source is None:
                raise
            raise type(error)(str(error).replace(str(path), source)) from None
        task = getattr(tagger.task, "name", None)
        if task != "tagging":  # target or tree sentiment, or any task added later
            raise SeqtagError(f"{source or path}: the {self.name!r} component runs tagging models, this is a "
                              f"{shorten(repr(task if task is not None else type(tagger).__name__))} model; "
                              "use it with seqtag.load(path).predict(...) instead")
        self.tagger = tagger
        self.model_path = None if source is not None else path
        self.model_bytes = None

    def _require(self) -> Any:
        if self.tagger is None:
            raise SeqtagError(f"the {self.name!r} component has no model: pass config={{'model': 'path/to/model.seqtag'}}")
        return self.tagger

    def __call__(self, doc: Doc) -> Doc:
        return next(self.pipe([doc]))

    def pipe(self, docs: Iterable[Doc], batch_size: int | None = None) -> Iterator[Doc]:
        """Tag docs in batches; yields them in input order."""
        if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 0):
            raise SeqtagError(f"batch_size must be a whole number of at least 1 (0 or None: the component's "
                              f"batch_size), got {shorten(repr(batch_size))}")
        size = batch_size or self.batch_size
        buffer: list[Doc] = []
        for doc in docs:
            buffer.append(doc)
            if len(buffer) >= size:
                yield from self._process(buffer)
                buffer = []
        if buffer:
            yield from self._process(buffer)

    def _process(self, docs: list[Doc]) -> list[Doc]:
        tagger = self._require()
        if os.getpid() != self._pid:
            # a worker of nlp.pipe(n_process=N): after a fork, torch's thread pool inherited from a
            # parent that used it deadlocks the first parallel operation; one thread per process
            torch.set_num_threads(1)
            self._pid = os.getpid()
        units = [list(self._units(doc)) for doc in docs]
        sentences = [Sentence(tokens=[t.text for t in unit], document=number)  # a Doc is a document
                     for number, doc_units in enumerate(units) for unit in doc_units]
        predictions = iter(tagger.task.predict_detailed(sentences, self.batch_size))
        for doc, doc_units in zip(docs, units, strict=True):
            entities = []
            for unit in doc_units:
                prediction = next(predictions)
                for token, tag, confidence in zip(unit, prediction.tags, prediction.confidences, strict=True):
                    token._.set(CONFIDENCE, confidence)
                    if not tagger.task.is_span_task:
                        token.tag_ = tag
                if tagger.task.is_span_task:
                    entities.extend(self._spans(doc, unit, prediction.tags, prediction.confidences))
            if tagger.task.is_span_task:
                self._set_entities(doc, entities)
        return docs

    @staticmethod
    def _units(doc: Doc) -> Iterator[list[Token]]:
        """Sentences when a parser or sentencizer set them, else the whole doc; whitespace tokens dropped."""
        sentences = doc.sents if doc.has_annotation("SENT_START") else [doc[:]]
        for sentence in sentences:
            tokens = [token for token in sentence if not token.is_space]
            if tokens:
                yield tokens

    def _spans(self, doc: Doc, unit: list[Token], tags: list[str], confidences: list[float]) -> list[Span]:
        """Entity spans over ``unit`` (a sentence's tokens) from its predicted tags."""
        spans = []
        for found in spans_from_tags(tags, self.tagger.task.corpus_scheme):
            span = Span(doc, unit[found.start].i, unit[found.end - 1].i + 1, label=found.label)
            span._.set(CONFIDENCE, min(confidences[found.start : found.end]))
            spans.append(span)
        return spans

    # -------------------------------------------------------------- scores and display

    def score(self, examples: Iterable[Example], **kwargs: Any) -> dict[str, Any]:
        """Scores of the predicted docs of ``examples`` against their reference docs, as
        ``nlp.evaluate`` asks every component: for a span model ``ents_p``, ``ents_r``, ``ents_f``
        (fractions, as spaCy's own entity recognizer reports them) and ``ents_per_type``; for a
        POS-style model ``tag_acc`` (as spaCy's tagger). Tokens are aligned by spaCy, so the
        reference may be tokenised differently; with the same tokens and one sentence per doc the
        figures are those of ``seqtag evaluate`` (divided by 100).

        Raises:
            SeqtagError: the component has no model.
        """
        examples = list(examples)
        validate_examples(examples, "SeqtagComponent.score")
        if self._require().task.is_span_task:
            return get_ner_prf(examples, **kwargs)
        return Scorer.score_token_attr(examples, "tag", **kwargs)

    def displacy_options(self) -> dict[str, Any]:
        """Options for ``displacy.render(doc, style="ent", options=...)``: ``ents`` (the model's
        entity types) and ``colors`` (one distinct colour each, see :func:`label_colors`).

        Raises:
            SeqtagError: the component has no model, or its model tags POS-style (it sets
                ``token.tag_``, not entities).
        """
        tagger = self._require()
        if not tagger.task.is_span_task:
            raise SeqtagError(f"the {self.name!r} component's model tags tokens (token.tag_), it finds no entities "
                              "for displacy's \"ent\" style")
        labels = list(tagger.labels)
        return {"ents": labels, "colors": label_colors(labels)}

    def _set_entities(self, doc: Doc, predicted: list[Span]) -> None:
        if self.overwrite_ents or not doc.ents:
            doc.ents = filter_spans(predicted)
            return
        taken = {i for ent in doc.ents for i in range(ent.start, ent.end)}
        extra = [span for span in predicted if not any(i in taken for i in range(span.start, span.end))]
        doc.ents = sorted([*doc.ents, *filter_spans(extra)], key=lambda span: span.start)

    # -------------------------------------------------------------- serialisation

    def to_disk(self, path: str | Path, exclude: Iterable[str] = ()) -> None:
        """Write the model file into the folder ``path`` (as ``model.seqtag``, atomically)."""
        folder = Path(path)
        target = folder / MODEL_FILE
        if self.model_bytes is None and self.model_path is None:
            raise SeqtagError(f"the {self.name!r} component has no model to save")
        source = self.model_path
        try:
            if self.model_bytes is None and source is not None and source.resolve() == target.resolve():
                return  # saved where it was loaded from
            model = None if self.model_bytes is not None else source.open("rb")  # type: ignore[union-attr]
        except OSError as error:
            raise SeqtagError(f"the {self.name!r} component cannot save its model: {source} cannot be read "
                              f"({shorten(error.strerror or str(error))}); was it moved or deleted?") from None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if model is None:
                atomic_write_bytes(target, self.model_bytes)  # type: ignore[arg-type]
            else:
                with model, atomic_open(target) as out:
                    shutil.copyfileobj(model, out)
        except OSError as error:
            raise SeqtagError(f"the {self.name!r} component cannot write {target} "
                              f"({shorten(error.strerror or str(error))})") from None

    def from_disk(self, path: str | Path, exclude: Iterable[str] = ()) -> "SeqtagComponent":
        """Load ``model.seqtag`` from the folder ``path``."""
        self._load(Path(path) / MODEL_FILE)
        return self

    def to_bytes(self, exclude: Iterable[str] = ()) -> bytes:
        """The model file's content."""
        if self.model_bytes is not None:
            return self.model_bytes
        if self.model_path is None:
            raise SeqtagError(f"the {self.name!r} component has no model to serialise")
        try:
            return self.model_path.read_bytes()
        except OSError as error:
            raise SeqtagError(f"the {self.name!r} component cannot serialise its model: {self.model_path} cannot be "
                              f"read ({shorten(error.strerror or str(error))}); was it moved or deleted?") from None

    def from_bytes(self, data: bytes, exclude: Iterable[str] = ()) -> "SeqtagComponent":
        """Load the model from a model file's content (kept in memory for ``to_bytes`` / ``to_disk``);
        the temporary copy it is read from is deleted at once, so no file is left behind."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise SeqtagError(f"from_bytes takes the bytes of a model file, got {type(data).__name__}")
        data = bytes(data)
        with tempfile.TemporaryDirectory(prefix="seqtag-") as folder:
            path = Path(folder) / MODEL_FILE
            path.write_bytes(data)
            self._load(path, source="the model bytes")
        self.model_bytes = data
        return self


@Language.factory(
    "seqtag",
    default_config={"model": "", "overwrite_ents": False, "batch_size": 64, "device": "auto"},
    assigns=["doc.ents", "token.tag", f"token._.{CONFIDENCE}"],
    # A span model reports ents_*, a POS-style model tag_acc (see SeqtagComponent.score). spaCy's
    # weights belong to the factory, not to the model a component loads, so both carry weight:
    # spaCy normalises them to 0.5 each and `spacy train` sums the weighted scores present.
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None, "tag_acc": 1.0},
)
def make_seqtag(
    nlp: Language, name: str, model: str, overwrite_ents: bool, batch_size: int, device: str = "auto"
) -> SeqtagComponent:
    """Factory of the ``seqtag`` component (see :class:`SeqtagComponent`)."""
    return SeqtagComponent(nlp, name, model or None, overwrite_ents, batch_size, device)


class SeqtagTokenizer:
    """seqtag's raw-text tokenizer and sentence splitter as a spaCy tokenizer.

    Whitespace between tokens other than one space becomes spaCy whitespace
    tokens, so ``doc.text`` is the input; sentence starts are set from
    seqtag's sentence splitter.
    """

    def __init__(self, vocab: Vocab, config: TokenizerConfig | None = None) -> None:
        self.vocab = vocab
        self.tokenizer = TextTokenizer(config)

    def __call__(self, text: str) -> Doc:
        """The doc of ``text``: seqtag's tokens, whitespace tokens between them, sentence starts.

        Raises:
            DataError: text that spaCy cannot store (lone surrogates, which are not Unicode characters).
        """
        surrogate = _SURROGATE.search(text)
        if surrogate is not None:
            raise DataError(
                f"the text holds a lone surrogate (U+{ord(surrogate.group()):04X}) at character {surrogate.start()}, "
                "which spaCy cannot store; decode the text with errors='replace' (or 'ignore')"
            )
        words: list[str] = []
        spaces: list[bool] = []
        starts: list[bool] = []
        position = 0

        def gap(until: int) -> None:
            space = text[position:until]
            if space and words and space[0] == " ":
                spaces[-1] = True
                space = space[1:]
            if space:
                words.append(space)
                spaces.append(False)
                starts.append(False)

        for sentence in self.tokenizer.sentences(text):
            for index, token in enumerate(sentence):
                gap(token.start)
                words.append(token.text)
                spaces.append(False)
                starts.append(index == 0)
                position = token.end
        gap(len(text))
        if starts and not starts[0]:  # leading whitespace joins the first sentence
            if True in starts:
                starts[starts.index(True)] = False
            starts[0] = True
        return Doc(self.vocab, words=words, spaces=spaces, sent_starts=starts if words else None)

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Doc]:
        for text in texts:
            yield self(text)

    def to_bytes(self, exclude: Iterable[str] = ()) -> bytes:
        return json.dumps(self.tokenizer.config.to_json()).encode("utf-8")

    def from_bytes(self, data: bytes, exclude: Iterable[str] = ()) -> "SeqtagTokenizer":
        try:
            settings = json.loads(bytes(data).decode("utf-8"))
        except (TypeError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ArchiveError(f"the seqtag tokenizer's settings are not valid JSON ({shorten(str(error))})") from None
        self.tokenizer = TextTokenizer(TokenizerConfig.from_json(settings))
        return self

    def to_disk(self, path: str | Path, exclude: Iterable[str] = ()) -> None:
        Path(path).write_bytes(self.to_bytes())

    def from_disk(self, path: str | Path, exclude: Iterable[str] = ()) -> "SeqtagTokenizer":
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise ArchiveError(f"{path}: cannot read the seqtag tokenizer's settings "
                               f"({shorten(error.strerror or str(error))})") from None
        return self.from_bytes(data)


@registry.tokenizers("seqtag.Tokenizer.v1")
def create_seqtag_tokenizer(split_contractions: bool = True, split_hyphens: bool = False) -> Any:
    """spaCy config entry ``{"@tokenizers": "seqtag.Tokenizer.v1"}`` (settings as in recipes)."""
    config = TokenizerConfig(split_contractions=split_contractions, split_hyphens=split_hyphens)

    def create(nlp: Language) -> SeqtagTokenizer:
        return SeqtagTokenizer(nlp.vocab, config)

    return create
