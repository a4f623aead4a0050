"""Sequence tagging (NER, POS, chunking) on CoNLL-style corpora."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from seqtag.data.batching import length_batches, pad
from seqtag.data.conll import ReadStats, Sentence, read_conll
from seqtag.data.schemes import allowed_transitions, check_tags, convert_tags, detect_scheme
from seqtag.data.sources import read_dataset_splits, uses_datasets
from seqtag.data.text import TokenizerConfig
from seqtag.data.vocab import Vocabulary, WordIndex, casing
from seqtag.devices import threads_for
from seqtag.embeddings import PretrainedVectors
from seqtag.errors import ArchiveError, DataError, RecipeError, SeqtagError, shorten
from seqtag.evaluation import span_metrics, token_accuracy
from seqtag.io import read_archive
from seqtag.modules.language_model import SEPARATORS, LanguageModel, pad_sentences, sentence_symbols
from seqtag.tasks import transfer
from seqtag.tasks.base import Task, check_tensors
from seqtag.tasks.tagging.encoding import CONTEXT as CONTEXT
from seqtag.tasks.tagging.encoding import MAX_WORD_CHARS as MAX_WORD_CHARS
from seqtag.tasks.tagging.encoding import (
    PREDICT_TOKENS,
    WINDOW,
    Encoded,
    char_indices,
    corpus_tags,
    direct_tags,
    feature_indices,
    window_pieces,
)
from seqtag.tasks.tagging.model import Tagger, TaggingBatch, select_centre
from seqtag.tasks.tagging.onnx import OnnxEmissions
from seqtag.tasks.tagging.recipe import TaggingRecipe

log = logging.getLogger(__name__)

# MAX_WORD_CHARS, WINDOW, CONTEXT and PREDICT_TOKENS (imported above) are defined in
# seqtag.tasks.tagging.encoding, which the PyTorch-free prediction path shares.
MAX_N_BEST = 100  # the most alternative tag sequences a prediction lists
_UNKNOWN = object()  # not worked out yet


@dataclass
class Prediction:
    """One sentence's prediction: tags in the corpus scheme, the marginal probability of
    each token's predicted tag, and the n-best tag sequences with their probabilities."""

    tags: list[str]
    confidences: list[float]
    n_best: list[tuple[list[str], float]]


def same_document(a: Sentence, b: Sentence) -> bool:
    """Whether two sentences are known to belong to one document."""
    return a.document is not None and a.document == b.document and a.path == b.path


def in_context(encoded: Sequence[Encoded], sentences: Sequence[Sentence], tokens: int) -> list[Encoded]:
    """Each encoded sentence with up to ``tokens`` tokens of the neighbouring sentences of its
    document on each side (``sentences`` in document order, ``encoded`` theirs)."""
    if tokens <= 0:
        return list(encoded)
    out = []
    for i, item in enumerate(encoded):
        before: list[Encoded] = []
        wanted = tokens
        j = i - 1
        while wanted > 0 and j >= 0 and same_document(sentences[j], sentences[i]):
            piece = encoded[j].alone()
            before.append(piece.cut(max(0, len(piece) - wanted), len(piece)))
            wanted -= len(piece)
            j -= 1
        after: list[Encoded] = []
        wanted = tokens
        j = i + 1
        while wanted > 0 and j < len(encoded) and same_document(sentences[j], sentences[i]):
            piece = encoded[j].alone()
            after.append(piece.cut(0, min(len(piece), wanted)))
            wanted -= len(piece)
            j += 1
        parts = [*reversed(before), item, *after]
        if len(parts) == 1:
            out.append(item)
            continue
        left, right = sum(map(len, before)), sum(map(len, after))
        features = None if item.features is None else [f for part in parts for f in part.features or []]
        out.append(Encoded([t for part in parts for t in part.tokens], [w for part in parts for w in part.words],
                           [c for part in parts for c in part.casing], item.tags, features, left, right))
    return out


#: The keys of a language model's recipe ``model`` section that give its architecture.
LM_ARCHITECTURE = ("embedding_dim", "hidden_size", "num_layers", "cell", "direction", "dropout", "tie_weights")


@dataclass
class Contextual:
    """The language model behind ``embeddings.contextual``: its symbols, level (``char`` or ``word``) and
    architecture (:meth:`~seqtag.modules.language_model.LanguageModel.from_config`); the weights are the
    tagger's ``contextual.*`` tensors."""

    symbols: Vocabulary
    level: str
    config: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"symbols": self.symbols.to_json(), "level": self.level, "model": self.config}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Contextual":
        level = data["level"]
        if level not in ("char", "word"):
            raise ValueError(f"unknown language-model level {level!r}")
        return cls(Vocabulary.from_json(data["symbols"]), level, {key: data["model"][key] for key in LM_ARCHITECTURE})


def read_contextual(recipe: TaggingRecipe) -> tuple[Contextual, dict[str, torch.Tensor]]:
    """The language model file ``embeddings.contextual`` names: what the tagger stores of it and its weights.

    Raises:
        RecipeError: naming the file, when it is not a usable seqtag language model.
    """
    path = recipe.resolve_path(recipe.embeddings.contextual)
    assert path is not None
    try:
        content = read_archive(path)
    except ArchiveError as error:
        raise RecipeError(f"embeddings.contextual: {error}") from None
    task = content["meta"].get("task")
    if task != "language_model":
        raise RecipeError(f"embeddings.contextual: {path} is a {shorten(repr(task))} model, not a language model "
                          "(task: language_model)")
    try:
        contextual = Contextual.from_json({**content["vocab"], "model": content["recipe"]["model"]})
        with torch.device("meta"):
            shapes = LanguageModel.from_config(len(contextual.symbols), contextual.config).state_dict()
        check_tensors(shapes, content["tensors"])
    except (KeyError, TypeError, ValueError) as error:
        raise RecipeError(f"embeddings.contextual: {path}: not a usable language model ({type(error).__name__}: "
                          f"{shorten(str(error), 200)})") from None
    log.info("contextual embeddings: the %s-level %s language model %s (%s states)", contextual.level,
             contextual.config["direction"], path, contextual.config["hidden_size"])
    return contextual, content["tensors"]


def joint_language_model(recipe: TaggingRecipe, train: Sequence[Sentence]) -> Contextual:
    """The character language model of ``model.char_lm``: forward and backward, over the characters of the
    training sentences (and the space and newline that join and end them)."""
    config = recipe.model.char_lm
    counts = Counter(c for s in train for tok in s.tokens for c in tok)
    counts.update(SEPARATORS["char"] + " ")
    architecture = {"embedding_dim": config.embedding_dim, "hidden_size": config.hidden_size, "num_layers": 1,
                    "cell": config.cell, "direction": "both", "dropout": config.dropout, "tie_weights": False}
    return Contextual(Vocabulary.from_counts(counts), "char", architecture)


def warn_swapped_columns(sentences: Sequence[Sentence], sample: int = 2000) -> None:
    """Warn when the word column looks like tags and the label column like words (swapped
    ``data.word_column`` / ``data.label_column``): judged on the first ``sample`` tokens."""
    words, labels = [], []
    for sentence in sentences:
        words.extend(sentence.tokens)
        labels.extend(sentence.labels or [])
        if len(words) >= sample:
            break
    if not words or not labels:
        return
    tag_like = re.compile(r"^(O|[BIESLU]-\S+)$")
    words_as_tags = sum(bool(tag_like.match(w)) for w in words) / len(words)
    distinct_labels = len(set(labels)) / len(labels)
    if words_as_tags > 0.5 or (distinct_labels > 0.3 and len(labels) >= 200):
        log.warning("the word column looks like tags and/or the label column like words (%d%% of words are "
                    "tag-like, %d distinct labels in %d tokens): are data.word_column and data.label_column "
                    "swapped?", round(100 * words_as_tags), len(set(labels)), len(labels))


class TaggingTask(Task):
    """BiLSTM-CNN-CRF tagging; spans are evaluated with seqeval, POS-style tags by accuracy."""

    name = "tagging"
    recipe_class = TaggingRecipe
    example_noun = "sentences"
    transfer_core = "encoder"

    def __init__(
        self,
        recipe: TaggingRecipe,
        words: WordIndex,
        chars: Vocabulary,
        tags: Vocabulary,
        corpus_scheme: str,
        word_dim: int,
        model: Tagger | None = None,
        tokenizer_config: TokenizerConfig | None = None,
        features: Sequence[Vocabulary] = (),
        contextual: Contextual | None = None,
    ) -> None:
        self.recipe = recipe
        self.contextual = contextual  # the language model of embeddings.contextual, or None
        self.features = list(features)  # one vocabulary per data.feature_columns column
        self.word_dim = word_dim
        self.words = words
        self.chars = chars
        self._char_rows: dict[str, list[int]] = {}  # form -> character indices (see _chars)
        self._direct_tags: list[str] | None | object = _UNKNOWN  # see _corpus_tags
        self.tags = tags
        self.corpus_scheme = corpus_scheme
        self.tokenizer_config = tokenizer_config or TokenizerConfig.from_recipe(recipe.tokenizer)
        self.train_scheme = "none" if corpus_scheme == "none" else recipe.model.tag_scheme
        if model is None:
            model = Tagger(
                recipe.model,
                self.word_embedder(),
                num_chars=len(chars),
                num_tags=len(tags),
                constraints=allowed_transitions(self.train_scheme, tags.itos),
                feature_sizes=tuple(len(v) for v in self.features),
                contextual=None if contextual is None else LanguageModel.from_config(len(contextual.symbols),
                                                                                     contextual.config),
                contextual_trainable=recipe.embeddings.contextual_trainable,
            )
        self.model = model
        self.runtime: Any = None  # ONNX Runtime emissions (use_onnx), or None for PyTorch

    @property
    def is_span_task(self) -> bool:
        return self.corpus_scheme != "none"

    @property
    def main_metric(self) -> str:  # type: ignore[override]
        """Entity F1 for span tasks, token accuracy for POS-style tags."""
        return "f1" if self.is_span_task else "accuracy"

    # ----------------------------------------------------------------- building

    @classmethod
    def read_file(cls, recipe: TaggingRecipe, path: Path) -> list[Sentence]:
        """The sentences of one CoNLL file of the corpus."""
        stats = ReadStats()
        sentences = read_conll(path, recipe.data.word_column, recipe.data.label_column, stats)
        log.info("read %s: %d sentences, %d tokens (%d -DOCSTART- lines skipped)", path, stats.sentences, stats.tokens,
                 stats.docstart_lines)
        return sentences

    @classmethod
    def from_recipe(cls, recipe: TaggingRecipe) -> tuple["TaggingTask", dict[str, list[Sentence]]]:  # type: ignore[override]
        splits = read_dataset_splits(recipe, recipe.data) if uses_datasets(recipe.data) else cls.read_splits(recipe)
        scheme = cls.tag_scheme(recipe, splits["train"])
        if recipe.data.scheme == "auto":
            log.info("detected tag scheme: %s", scheme.upper())
        else:
            detected = detect_scheme(s.labels or [] for s in splits["train"])
            if detected != scheme:
                log.warning("data.scheme says %s, but the training tags look like %s; a wrong scheme misreads "
                            "spans (set data.scheme: auto to use what the data shows)", scheme.upper(), detected.upper())
        warn_swapped_columns(splits["train"])
        for sentences in splits.values():
            for sentence in sentences:
                check_tags(sentence.labels or [], scheme, sentence.path, sentence.line)
        return cls.from_splits(recipe, splits), splits

    @staticmethod
    def tag_scheme(recipe: TaggingRecipe, train: Sequence[Sentence]) -> str:
        """The corpus tag scheme: the recipe's ``data.scheme``, or the one detected in ``train``."""
        if recipe.data.scheme != "auto":
            return recipe.data.scheme
        return detect_scheme(s.labels or [] for s in train)

    @classmethod
    def build(cls, recipe: TaggingRecipe, train: Sequence[Sentence], vectors: PretrainedVectors | None) -> "TaggingTask":
        """Vocabularies from the training sentences only, a fresh model, pretrained rows copied in.

        Singleton training words without a pretrained vector are the ones ``model.word_dropout`` may drop.
        """
        scheme = cls.tag_scheme(recipe, train)
        words, counts, word_dim = cls.word_index(recipe, (tok for s in train for tok in s.tokens), vectors)
        chars = Vocabulary.from_counts(Counter(c for s in train for tok in s.tokens for c in tok))
        train_scheme = "none" if scheme == "none" else recipe.model.tag_scheme
        tag_counts = Counter(t for s in train for t in convert_tags(s.labels or [], scheme, train_scheme))
        tags = Vocabulary(sorted(tag_counts), pad=False, unk=False)
        features = [Vocabulary.from_counts(Counter(value for s in train for value in cls._column(s, column)))
                    for column in recipe.data.feature_columns]
        contextual, lm_weights = read_contextual(recipe) if recipe.embeddings.contextual else (None, None)
        if recipe.model.char_lm.hidden_size:
            contextual = joint_language_model(recipe, train)
        task = cls(recipe, words, chars, tags, scheme, word_dim, features=features, contextual=contextual)
        if task.model.contextual is not None and lm_weights is not None:
            task.model.contextual.load_state_dict(lm_weights)
        missing = cls.copy_pretrained(task.model.words, words, vectors)
        with torch.no_grad():
            for index in missing:
                task.model.replaceable[index] = counts[words.vocab.itos[index]] == 1
            task.model.words.embedding.weight[0].zero_()
        log.info(
            "vocabulary: %d training words (%d with pretrained vectors), %d pretrained-only words, %d chars, %d tags (%s)",
            words.num_trainable - 2, words.num_trainable - 2 - len(missing), words.num_frozen, len(chars), len(tags),
            train_scheme.upper(),
        )
        return task

    def copy_vocabulary_rows(self, source: "TaggingTask") -> dict[str, int]:
        """Character rows by symbol, when both models have the same kind of character encoder; and the
        symbol rows of a jointly trained character LM (input embeddings, softmax weights and biases)
        when both models have one of the same architecture."""
        counts: dict[str, int] = {}
        if self.model.chars is not None and type(self.model.chars) is type(source.model.chars):
            counts["character vectors"] = transfer.copy_rows(
                self.model.chars.embedding.weight, self.chars, source.model.chars.embedding.weight, source.chars)  # type: ignore[union-attr]
        if self._same_joint_lm(source):
            assert self.contextual is not None and source.contextual is not None
            assert self.model.contextual is not None and source.model.contextual is not None
            mine, theirs = self.contextual.symbols, source.contextual.symbols
            rows = 0
            for direction in self.model.contextual.directions:
                target, origin = self.model.contextual.lm(direction), source.model.contextual.lm(direction)
                rows = transfer.copy_rows(target.embedding.weight, mine, origin.embedding.weight, theirs)  # the same in each
                transfer.copy_rows(target.decoder.weight, mine, origin.decoder.weight, theirs)
                transfer.copy_rows(target.decoder.bias.unsqueeze(1), mine, origin.decoder.bias.unsqueeze(1), theirs)
            counts["character-LM symbols"] = rows
        return counts

    def _same_joint_lm(self, source: "TaggingTask") -> bool:
        """Whether this model and ``source`` both train a character LM jointly (``model.char_lm``), of
        the same architecture: then it is transferred too, its symbol rows matched by symbol."""
        return (self.model.joint_lm and source.model.joint_lm and self.contextual is not None
                and source.contextual is not None
                and {**self.contextual.config, "dropout": 0} == {**source.contextual.config, "dropout": 0})

    def transfer_skip(self, source: "TaggingTask") -> list[str]:
        """The word-dropout flags, the character table (copied by symbol), a language model (a pretrained
        one is loaded from its own file; a jointly trained one of the same architecture is copied, its
        symbol rows by symbol), and the output layer and CRF unless both models have the same tags in
        the same training scheme."""
        skip = ["replaceable", "chars.embedding."]
        if self._same_joint_lm(source):
            skip += [f"contextual.{direction}_lm.{part}." for direction in ("forward", "backward")
                     for part in ("embedding", "decoder")]
        else:
            skip.append("contextual.")
        if source.tags.itos != self.tags.itos or source.train_scheme != self.train_scheme:
            skip += ["emissions.", "crf."]
        return skip

    # ------------------------------------------------------------- persistence

    def extra_state(self) -> dict[str, Any]:
        return {
            "chars": self.chars.to_json(),
            "tags": self.tags.to_json(),
            "corpus_scheme": self.corpus_scheme,
            "tokenizer": self.tokenizer_config.to_json(),
            "features": [v.to_json() for v in self.features],
            **({"contextual": self.contextual.to_json()} if self.contextual is not None else {}),
        }

    @classmethod
    def from_vocab(cls, recipe: TaggingRecipe, vocab: dict[str, Any]) -> "TaggingTask":
        return cls(
            recipe,
            WordIndex.from_json(vocab),
            Vocabulary.from_json(vocab["chars"]),
            Vocabulary.from_json(vocab["tags"]),
            vocab["corpus_scheme"],
            int(vocab["word_dim"]),
            tokenizer_config=TokenizerConfig.from_json(vocab["tokenizer"]) if "tokenizer" in vocab else None,
            features=[Vocabulary.from_json(v) for v in vocab.get("features", [])],
            contextual=Contextual.from_json(vocab["contextual"]) if "contextual" in vocab else None,
        )

    # ---------------------------------------------------------------- batching

    def encode(self, sentence: Sentence, with_tags: bool = True) -> Encoded:  # type: ignore[override]
        """Indices of a sentence; gold tags in the training scheme when it has labels."""
        tags = None
        if with_tags and sentence.labels is not None:
            converted = convert_tags(sentence.labels, self.corpus_scheme, self.train_scheme)
            tags = [self.tags.stoi.get(t, -1) for t in converted]
            if -1 in tags:  # a tag never seen in training (dev/test only): no loss for this sentence
                tags = None
        index = self.words.index
        features = None
        if self.features:
            columns = [self._column(sentence, c) for c in self.recipe.data.feature_columns]
            features = feature_indices(columns, self.features)
        return Encoded(sentence.tokens, [index(t) for t in sentence.tokens], [casing(t) for t in sentence.tokens], tags,
                       features)

    @staticmethod
    def _column(sentence: Sentence, column: int) -> list[str]:
        """The values of input column ``column`` (a ``data.feature_columns`` entry) of a sentence."""
        if not sentence.rows:
            raise DataError(
                f"this model also reads input column {column} (data.feature_columns); give it CoNLL input with "
                "that column, not raw text or bare tokens", sentence.path, sentence.line)
        width = len(sentence.rows[0])
        if not -width <= column < width:
            raise DataError(f"the feature column {column} does not exist: the input has {width} columns",
                            sentence.path, sentence.line)
        return [row[column] for row in sentence.rows]

    def _chars(self, form: str) -> list[int]:
        """Character indices of a word form (memoised: forms repeat across batches)."""
        cache = self._char_rows
        row = cache.get(form)
        if row is None:
            if len(cache) >= 1 << 17:
                cache.clear()
            row = cache[form] = char_indices(form, self.chars)
        return row

    def encoded(self, examples: Sequence[Sentence]) -> list[Encoded]:  # type: ignore[override]
        """:meth:`encode` of every sentence, with its document context (``model.document_context``);
        cached per split as :meth:`Task.encoded` does."""
        cache = self._encode_cache
        if cache is not None and cache[0] is examples:
            return cache[1]
        encoded = self._encode_all(examples, with_tags=True)
        self._encode_cache = (examples, encoded)
        return encoded

    def _encode_all(self, sentences: Sequence[Sentence], with_tags: bool) -> list[Encoded]:
        """The sentences encoded, in order, each with its document context."""
        return in_context([self.encode(s, with_tags) for s in sentences], sentences, self.recipe.model.document_context)

    def collate(self, items: Sequence[Encoded]) -> TaggingBatch:
        """Pad encoded sentences into a :class:`TaggingBatch` (one tensor constructor per field)."""
        steps = max(len(item) for item in items)
        lengths = [len(item) for item in items]
        if any(item.left or item.right for item in items):
            return self._collate_in_context(items, steps)
        form_ids: dict[str, int] = {}
        forms = [[form_ids.setdefault(tok, len(form_ids)) for tok in item.tokens] for item in items]

        char_rows = [self._chars(form) for form in form_ids]
        has_tags = all(item.tags is not None for item in items)
        length_tensor = torch.tensor(lengths, dtype=torch.long)
        return TaggingBatch(
            words=pad([item.words for item in items], steps),
            chars=pad(char_rows, max(map(len, char_rows))),
            forms=pad(forms, steps),
            casing=pad([item.casing for item in items], steps),
            mask=torch.arange(steps).unsqueeze(0) < length_tensor.unsqueeze(1),
            lengths=length_tensor,
            tags=pad([item.tags for item in items], steps) if has_tags else None,  # type: ignore[misc]
            features=self._padded_features(items, steps) if self.features else None,
            **(self._language_model_input(items, steps) if self.contextual is not None else {}),
        )

    def _collate_in_context(self, items: Sequence[Encoded], steps: int) -> TaggingBatch:
        """A batch of sentences with document context: every token in the encoder's inputs, the
        sentences' own in ``centre``, ``mask`` and ``tags``."""
        plain = self.collate([replace(item, left=0, right=0, tags=None) for item in items])
        sizes = torch.tensor([item.size for item in items], dtype=torch.long)  # (B,)
        width = max(1, int(sizes.max()))
        starts = torch.tensor([item.left for item in items], dtype=torch.long).unsqueeze(1)  # (B, 1)
        positions = starts + torch.arange(width).unsqueeze(0)  # (B, C)
        has_tags = all(item.tags is not None for item in items)
        plain.centre = torch.minimum(positions, (plain.lengths - 1).unsqueeze(1))  # padding points at a real token
        plain.mask = torch.arange(width).unsqueeze(0) < sizes.unsqueeze(1)
        plain.tags = pad([item.tags for item in items], width) if has_tags else None  # type: ignore[misc]
        return plain

    def _language_model_input(self, items: Sequence[Encoded], steps: int) -> dict[str, torch.Tensor]:
        """The sentences as the contextual language model reads them: ``lm_ids`` ``(B, L)``, ``lm_lengths``
        ``(B,)``, ``lm_last`` / ``lm_first`` ``(B, T)`` (where each token ends and starts)."""
        assert self.contextual is not None
        symbols, level = self.contextual.symbols, self.contextual.level
        ids, lengths, last, first = pad_sentences([sentence_symbols(item.tokens, symbols, level) for item in items], steps)
        return {"lm_ids": ids, "lm_lengths": lengths, "lm_last": last, "lm_first": first}

    def _padded_features(self, items: Sequence[Encoded], steps: int) -> torch.Tensor:
        """``(B, T, F)`` feature-column indices, 0 on padding."""
        out = torch.zeros(len(items), steps, len(self.features), dtype=torch.long)
        for row, item in enumerate(items):
            if item.features:
                out[row, : len(item)] = torch.tensor(item.features, dtype=torch.long)
        return out

    def trainable(self, encoded: Encoded) -> bool:
        """Sentences with a tag never seen in training (dev/test only) are not trained on."""
        return encoded.tags is not None

    # -------------------------------------------------------------- prediction

    def use_onnx(self, path: str | Path | None, threads: int | None = None) -> None:
        """Compute emissions with ONNX Runtime from ``path`` (made by ``seqtag export``) when predicting.

        Decoding stays here, so tags, confidences and n-best lists are those of
        the PyTorch runtime up to float rounding. The graph is a snapshot of the
        weights (checked when opened): export again after changing them.
        ``path=None`` goes back to PyTorch.
        """
        self.runtime = None if path is None else OnnxEmissions(path, self.model, threads)

    def _emissions(self, batch: TaggingBatch) -> torch.Tensor | None:
        """Emissions from the ONNX runtime if one is set, else None (the model computes them)."""
        return None if self.runtime is None else select_centre(self.runtime(batch), batch)

    def predict_indices(self, encoded: Sequence[Encoded], batch_size: int = 256) -> list[list[int]]:
        """Tag indices (training scheme) for each encoded sentence, in input order (small calls on one
        thread: :func:`~seqtag.devices.threads_for`)."""
        with threads_for(sum(map(len, encoded))):
            return self._predict_indices(encoded, batch_size)

    @torch.inference_mode()
    def _predict_indices(self, encoded: Sequence[Encoded], batch_size: int) -> list[list[int]]:
        self.model.eval()
        pieces, plans = window_pieces(encoded)
        results: list[list[int]] = [[] for _ in pieces]
        for order in length_batches([len(e) for e in pieces], batch_size, max_tokens=PREDICT_TOKENS):
            batch = self.batch([pieces[i] for i in order])
            best = self.model.decode(batch, self._emissions(batch)).tolist()
            for row, i in enumerate(order):
                results[i] = best[row][: pieces[i].size]
        return [[tag for piece, keep_from, keep_to in plan for tag in results[piece][keep_from:keep_to]] for plan in plans]

    def predict_detailed(self, sentences: Sequence[Sentence], batch_size: int = 256, n_best: int = 0) -> list["Prediction"]:
        """Tags (corpus scheme) with per-token confidences and optional n-best lists, in input order.

        Sentences longer than ``WINDOW`` tokens are tagged in windows and stitched; they get
        no n-best list (the alternatives of separate windows do not combine into sentence paths).
        ``n_best`` is at most :data:`MAX_N_BEST`. Small calls run on one thread
        (:func:`~seqtag.devices.threads_for`).
        """
        if not 0 <= n_best <= MAX_N_BEST:
            raise SeqtagError(f"n_best is {n_best}; ask for 0 to {MAX_N_BEST} best tag sequences")
        if batch_size < 1:
            raise SeqtagError(f"batch_size is {batch_size}; it must be at least 1")
        with threads_for(sum(len(s.tokens) for s in sentences)):
            return self._predict_detailed(sentences, batch_size, n_best)

    @torch.inference_mode()
    def _predict_detailed(self, sentences: Sequence[Sentence], batch_size: int, n_best: int) -> list["Prediction"]:
        self.model.eval()
        pieces, plans = window_pieces(self._encode_all(sentences, with_tags=False))
        tagged: list[tuple[list[int], list[float], list[tuple[list[str], float]]]] = [None] * len(pieces)  # type: ignore[list-item]
        for order in length_batches([len(e) for e in pieces], batch_size, max_tokens=PREDICT_TOKENS):
            batch = self.batch([pieces[i] for i in order])
            decoded = self.model.decode_detailed(batch, n_best, self._emissions(batch))
            best = decoded.tags.tolist()
            chosen = decoded.marginals.gather(2, decoded.tags.unsqueeze(2)).squeeze(2).tolist()  # (B, T)
            for row, i in enumerate(order):
                n = pieces[i].size
                alternatives = []
                if decoded.paths is not None and decoded.probabilities is not None:
                    for path, probability in zip(decoded.paths[row].tolist(), decoded.probabilities[row].tolist(), strict=True):
                        if probability > 0.0:
                            alternatives.append((self._to_corpus(path[:n]), probability))
                tagged[i] = (best[row][:n], chosen[row][:n], alternatives)
        results = []
        for plan in plans:
            tags = [tag for piece, a, b in plan for tag in tagged[piece][0][a:b]]
            confidences = [c for piece, a, b in plan for c in tagged[piece][1][a:b]]
            alternatives = tagged[plan[0][0]][2] if len(plan) == 1 else [([], 1.0)] if not plan else []
            results.append(Prediction(self._to_corpus(tags, stitched=len(plan) > 1), confidences, alternatives))
        return results

    def _to_corpus(self, indices: Sequence[int], stitched: bool = False) -> list[str]:
        return corpus_tags(indices, self.tags.itos, self._corpus_tags(), self.train_scheme, self.corpus_scheme, stitched)

    def _corpus_tags(self) -> list[str] | None:
        """Each training-scheme tag's corpus-scheme tag, when the conversion is tag by tag: the same
        scheme, or IOBES/BILOU into IOB2 or each other for a constrained CRF, whose sequences are
        always valid (S-/U- begins, E-/L- continues a span). None otherwise (convert per sentence)."""
        if self._direct_tags is _UNKNOWN:
            valid = self.recipe.model.decoder == "crf" and self.recipe.model.crf.constrained
            self._direct_tags = direct_tags(self.tags.itos, self.train_scheme, self.corpus_scheme, valid)
        return self._direct_tags  # type: ignore[return-value]

    def predict(self, sentences: Sequence[Sentence], batch_size: int = 256) -> list[list[str]]:
        """Predicted tags in the corpus's scheme, one list per sentence."""
        encoded = self._encode_all(sentences, with_tags=False)
        return [self._to_corpus(indices, stitched=len(indices) > WINDOW) for indices in self.predict_indices(encoded, batch_size)]

    def check_gold(self, sentences: Sequence[Sentence], path: str | Path | None = None) -> None:
        """DataError (naming the file and line) unless ``sentences`` are some, labelled, and every
        label belongs to the model's tag scheme; a warning for labels the model never saw in
        training (it cannot predict them, so they count as errors)."""
        if not sentences:
            raise DataError("no sentences to evaluate", path)
        known = {tag.partition("-")[2] if self.is_span_task else tag for tag in self.tags.itos}
        unseen: Counter[str] = Counter()
        for sentence in sentences:
            if sentence.labels is None:
                raise DataError("evaluation needs the gold label of every token", sentence.path or path, sentence.line)
            check_tags(sentence.labels, self.corpus_scheme, sentence.path or path, sentence.line)
            for tag in sentence.labels:
                label = tag.partition("-")[2] if self.is_span_task else tag
                if label and label not in known and tag != "O":
                    unseen[label] += 1
        if unseen:
            shown = ", ".join(f"{shorten(label, 30)} ({n})" for label, n in unseen.most_common(5))
            log.warning("%s: labels the model never saw in training, so it cannot predict them: %s", path or "gold", shown)

    def evaluate(self, examples: Sequence[Sentence], batch_size: int = 256) -> dict[str, Any]:
        return self.score([s.labels or [] for s in examples], self.predict(examples, batch_size))

    def score(self, gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
        """Entity P/R/F1 per type (span tasks) or token accuracy (POS-style tags)."""
        if self.is_span_task:
            return span_metrics(gold, predicted, self.corpus_scheme)
        return {"accuracy": token_accuracy(gold, predicted)}

    def describe(self, splits: dict[str, list[Any]]) -> str:
        text = super().describe(splits)
        if self.recipe.model.char_lm.hidden_size:
            text += f"; a character language model trained jointly ({self.recipe.model.char_lm.hidden_size} states)"
        elif self.contextual is not None:
            text += (f"; contextual {self.contextual.level} language model ({self.contextual.config['direction']}, "
                     f"{'fine-tuned' if self.recipe.embeddings.contextual_trainable else 'frozen'})")
        return f"{text}; tags {self.corpus_scheme.upper()} -> {self.train_scheme.upper()}"

