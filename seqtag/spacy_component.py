"""spaCy integration: the ``seqtag`` pipeline component and seqtag's tokenizer for spaCy.

``nlp.add_pipe("seqtag", config={"model": "model.seqtag"})``

Registered through the ``spacy_factories`` entry point, so no import is
needed once seqtag is installed. The component tags spaCy's own tokens: span
models set ``doc.ents`` (keeping or overwriting existing entities, as
configured), POS-style models set ``token.tag_``. Per-token confidences are
in ``token._.seqtag_confidence`` and per-entity ones in
``span._.seqtag_confidence``. The model file is copied into the pipeline
folder by ``nlp.to_disk`` and read back by ``spacy.load``.

spaCy's own tokenizer splits some words that seqtag keeps whole (``AL-AIN``,
``2-1``). For results identical to ``tagger.tag(text)``, give the pipeline
seqtag's tokenizer and sentence splitter::

    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "seqtag.Tokenizer.v1"}}})
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span, Token
from spacy.util import filter_spans, registry
from spacy.vocab import Vocab

from seqtag.api import load
from seqtag.data.conll import Sentence
from seqtag.data.schemes import spans_from_tags
from seqtag.data.text import Tokenizer as TextTokenizer
from seqtag.data.text import TokenizerConfig
from seqtag.errors import SeqtagError

MODEL_FILE = "model.seqtag"
CONFIDENCE = "seqtag_confidence"

for _cls in (Token, Span):
    if not _cls.has_extension(CONFIDENCE):
        _cls.set_extension(CONFIDENCE, default=None)


class SeqtagComponent:
    """Runs a seqtag tagging model on spaCy docs.

    Args:
        nlp: the pipeline.
        name: the component's name in the pipeline.
        model: path of a ``model.seqtag`` file (may be empty when the model
            comes from ``from_disk``).
        overwrite_ents: replace existing ``doc.ents`` (True) or keep them and
            add only non-overlapping predicted entities (False).
        batch_size: sentences per batch inside ``nlp.pipe``.
        device: where the model runs: ``auto`` (a GPU when there is one), ``cpu``, ``cuda``,
            ``cuda:N`` or ``mps``.
    """

    def __init__(
        self, nlp: Language, name: str, model: str | None, overwrite_ents: bool, batch_size: int, device: str = "auto"
    ) -> None:
        self.name = name
        self.overwrite_ents = overwrite_ents
        self.batch_size = batch_size
        self.device = device
        self.model_path: Path | None = None
        self.tagger: Any = None
        if model:
            self._load(Path(model))

    def _load(self, path: Path) -> None:
        self.tagger = load(path, device=self.device)
        self.model_path = path

    def _require(self) -> Any:
        if self.tagger is None:
            raise SeqtagError(f"the {self.name!r} component has no model: pass config={{'model': 'path/to/model.seqtag'}}")
        return self.tagger

    def __call__(self, doc: Doc) -> Doc:
        return next(self.pipe([doc]))

    def pipe(self, docs: Iterable[Doc], batch_size: int | None = None) -> Iterator[Doc]:
        """Tag docs in batches; yields them in input order."""
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
        units = [list(self._units(doc)) for doc in docs]
        sentences = [Sentence(tokens=[t.text for t in unit]) for doc_units in units for unit in doc_units]
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

    def _set_entities(self, doc: Doc, predicted: list[Span]) -> None:
        if self.overwrite_ents or not doc.ents:
            doc.ents = filter_spans(predicted)
            return
        taken = {i for ent in doc.ents for i in range(ent.start, ent.end)}
        extra = [span for span in predicted if not any(i in taken for i in range(span.start, span.end))]
        doc.ents = sorted([*doc.ents, *filter_spans(extra)], key=lambda span: span.start)

    # -------------------------------------------------------------- serialisation

    def to_disk(self, path: str | Path, exclude: Iterable[str] = ()) -> None:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        source = self.model_path
        if source is None:
            raise SeqtagError(f"the {self.name!r} component has no model to save")
        if source.resolve() != (folder / MODEL_FILE).resolve():
            shutil.copyfile(source, folder / MODEL_FILE)

    def from_disk(self, path: str | Path, exclude: Iterable[str] = ()) -> "SeqtagComponent":
        self._load(Path(path) / MODEL_FILE)
        return self

    def to_bytes(self, exclude: Iterable[str] = ()) -> bytes:
        if self.model_path is None:
            raise SeqtagError(f"the {self.name!r} component has no model to serialise")
        return self.model_path.read_bytes()

    def from_bytes(self, data: bytes, exclude: Iterable[str] = ()) -> "SeqtagComponent":
        handle = tempfile.NamedTemporaryFile(suffix=".seqtag", delete=False)
        with handle:
            handle.write(data)
        self._load(Path(handle.name))
        return self


@Language.factory(
    "seqtag",
    default_config={"model": "", "overwrite_ents": False, "batch_size": 64, "device": "auto"},
    assigns=["doc.ents", "token.tag", f"token._.{CONFIDENCE}"],
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0},
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
        self.tokenizer = TextTokenizer(TokenizerConfig.from_json(json.loads(data.decode("utf-8"))))
        return self

    def to_disk(self, path: str | Path, exclude: Iterable[str] = ()) -> None:
        Path(path).write_bytes(self.to_bytes())

    def from_disk(self, path: str | Path, exclude: Iterable[str] = ()) -> "SeqtagTokenizer":
        return self.from_bytes(Path(path).read_bytes())


@registry.tokenizers("seqtag.Tokenizer.v1")
def create_seqtag_tokenizer(split_contractions: bool = True, split_hyphens: bool = False) -> Any:
    """spaCy config entry ``{"@tokenizers": "seqtag.Tokenizer.v1"}`` (settings as in recipes)."""
    config = TokenizerConfig(split_contractions=split_contractions, split_hyphens=split_hyphens)

    def create(nlp: Language) -> SeqtagTokenizer:
        return SeqtagTokenizer(nlp.vocab, config)

    return create
