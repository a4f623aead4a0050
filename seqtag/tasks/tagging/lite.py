"""Prediction without PyTorch: a tagger's ONNX export run by ONNX Runtime, everything around it in numpy.

``import torch`` alone takes about two seconds on this project's machine, longer than tagging a
sentence. When a tagger has an ONNX export (``seqtag export MODEL``), ``seqtag predict`` needs
none of it: the graph computes the emissions, and what PyTorch does around the network is small.
This module does that part without importing torch, directly or through another seqtag module:

* the model file is read as the zip of JSON and safetensors it is (:class:`ModelFile`, on
  :func:`seqtag.io.read_raw`; the weights only to check them, and for the CRF's scores);
* the ONNX file is checked against the model by the fingerprint :func:`seqtag.tasks.tagging.onnx.export_onnx`
  stored in it, recomputed here from the file's tensors (:meth:`ModelFile.fingerprint`);
* sentences are encoded and batched as :class:`~seqtag.tasks.tagging.task.TaggingTask` does (word,
  character, casing and feature-column indices, the same length-sorted batches, the same windows
  for long sentences: :mod:`seqtag.tasks.tagging.encoding`), so ONNX Runtime sees the very inputs
  of ``--runtime onnx``;
* the emissions are decoded as :class:`~seqtag.modules.crf.CRF` does (Viterbi with the constrained
  start, transition and end scores, in float32, ties to the first tag) or by argmax (softmax
  decoders), and the tags mapped back to the corpus's scheme as ``TaggingTask._to_corpus`` does.

So the output is byte for byte that of ``seqtag predict --runtime onnx`` through PyTorch. What this
path cannot do exactly it refuses with :class:`Unsupported`, and the caller (:mod:`seqtag.bulk`)
uses the PyTorch path instead: models reading document context or a language model, the
pytorch-crf backend, JSON-lines input (its confidences are CRF marginals, computed by PyTorch),
feature columns the input lacks, and softmax predictions of raw text whose best two scores are
closer than :data:`SOFTMAX_TIE` (PyTorch takes the argmax of the softmax there, where rounding can tie).

What this shares with the PyTorch path comes from the modules that path uses, which import torch
only where they need it: :mod:`seqtag.io` (the model file), :mod:`seqtag.data.schemes`,
:mod:`seqtag.data.batching`, :mod:`seqtag.data.vocab` (the casing classes) and
:mod:`seqtag.tasks.tagging.encoding`. Repeated here in numpy are what computes with tensors there:
:meth:`ModelFile.fingerprint` (``seqtag.tasks.tagging.onnx.fingerprint``), :func:`viterbi` (the CRF's
decoder) and the batch's inputs; ``tests/test_lite_predict.py`` checks them against the originals.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from seqtag.data.batching import length_batches, pad_array
from seqtag.data.conll import Sentence
from seqtag.data.schemes import SCHEMES
from seqtag.data.stream import ChunkResult
from seqtag.data.text import Tokenizer, TokenizerConfig
from seqtag.data.vocab import Vocabulary, WordIndex, casing
from seqtag.errors import SchemeError, SeqtagError
from seqtag.io import (
    SAFETENSORS_DTYPES,
    StoredTensor,
    open_model_file,
    plain_meta,
    read_json_member,
    read_raw,
    safetensors_index,
    sha256_of,
    stored_array,
)
from seqtag.tasks.tagging.encoding import (
    FINGERPRINT_KEY,
    PREDICT_TOKENS,
    WINDOW,
    Encoded,
    char_indices,
    corpus_tags,
    direct_tags,
    feature_indices,
    window_pieces,
)

#: Softmax decoders on raw text: PyTorch takes the argmax of the softmax, where rounding can tie two scores
#: closer than a few units in the last place of 1 (measured: 3e-8 at most); chunks with two best scores this
#: close go to PyTorch.
SOFTMAX_TIE = 1e-5


class Unsupported(Exception):
    """What this module cannot do exactly as the PyTorch path does: the caller uses that path instead."""


class StaleExport(SeqtagError):
    """An ONNX file that was not exported from the model it is used with (the message is the PyTorch path's)."""


class ModelFile:
    """A model file read without PyTorch (:func:`seqtag.io.read_raw`): ``meta``, ``recipe`` and ``vocab``
    (JSON) and the weights' bytes (memory-mapped as PyTorch's path maps them), checked as far as this
    path needs.

    Anything unexpected (a missing or broken file, a newer format, bfloat16 tensors) raises
    :class:`Unsupported`: the PyTorch path then reads the file and reports what is wrong with it.
    """

    def __init__(self, path: Path, meta: dict[str, Any], recipe: dict[str, Any], weights: memoryview) -> None:
        self.path = path
        self.meta = meta
        self.recipe = recipe
        self.weights = weights
        self._vocab: dict[str, Any] | None = None
        self._tensors: dict[str, StoredTensor] | None = None

    @classmethod
    def read(cls, path: str | Path) -> ModelFile:
        """The file's meta, recipe and weights (the vocabularies are read when first used)."""
        path = Path(path)
        try:
            raw = read_raw(path)
        except Exception as error:  # whatever it is, the PyTorch path reads the file again and names it
            raise Unsupported(f"{path}: {type(error).__name__}") from None
        meta, recipe = raw["meta"], raw["recipe"]
        if not plain_meta(meta) or not isinstance(recipe, dict):  # what seqtag.io.ModelMeta accepts as it is
            raise Unsupported(f"{path}: meta.json or recipe.json is not what this seqtag writes")
        return cls(path, meta, recipe, raw["weights"])

    @property
    def header(self) -> dict[str, Any]:
        """``meta`` and ``recipe``, as :func:`seqtag.io.read_header` gives them."""
        return {"meta": self.meta, "recipe": self.recipe}

    @property
    def vocab(self) -> dict[str, Any]:
        """``vocab.json``."""
        if self._vocab is None:
            try:
                with open_model_file(self.path) as archive:
                    vocab = read_json_member(archive, "vocab.json", self.path)
            except Exception as error:  # as in read()
                raise Unsupported(f"{self.path}: vocab.json: {type(error).__name__}") from None
            if not isinstance(vocab, dict):
                raise Unsupported(f"{self.path}: vocab.json is not an object")
            self._vocab = vocab
        return self._vocab

    @property
    def tensors(self) -> dict[str, StoredTensor]:
        """Every tensor of the weights (where its bytes are), checked as :func:`seqtag.io.read_archive` does;
        Unsupported for weights it refuses and for what numpy cannot hold (bfloat16)."""
        if self._tensors is None:
            try:
                tensors = safetensors_index(self.weights)
            except (ValueError, RecursionError, UnicodeDecodeError) as error:
                raise Unsupported(f"the weights cannot be read ({error})") from None
            for name, tensor in tensors.items():
                if SAFETENSORS_DTYPES[tensor.dtype][0] is None or not all(type(n) is int for n in tensor.shape):
                    raise Unsupported(f"tensor {name}: a dtype or shape this path does not read")
            self._tensors = tensors
        return self._tensors

    def checksum_ok(self) -> bool:
        """Whether the weights' SHA-256 is the one ``meta.json`` records."""
        return sha256_of(self.weights) == self.meta["weights_sha256"]

    def fingerprint(self) -> str:
        """:func:`seqtag.tasks.tagging.onnx.fingerprint` of the model this file loads as: SHA-256 over the
        sorted names, shapes, PyTorch dtypes and bytes of its state (a loaded model holds each tensor as
        the file stores it, the frozen word table in half precision included)."""
        digest = hashlib.sha256()
        for name in sorted(self.tensors):
            tensor = self.tensors[name]
            digest.update(f"{name}{tensor.shape}torch.{SAFETENSORS_DTYPES[tensor.dtype][1]}".encode())
            digest.update(self.weights[tensor.start : tensor.end])
        return digest.hexdigest()

    def array(self, name: str) -> np.ndarray:
        """Tensor ``name`` as a numpy array (a copy)."""
        tensor = self.tensors.get(name)
        if tensor is None:
            raise Unsupported(f"the model file has no tensor {name}")
        return stored_array(self.weights, tensor).copy()

    def rows(self, name: str) -> int | None:
        """The first dimension of tensor ``name``, None without one."""
        tensor = self.tensors.get(name)
        return None if tensor is None or not tensor.shape else tensor.shape[0]


def _onnxruntime() -> Any:
    """The ``onnxruntime`` module; Unsupported when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        raise Unsupported("onnxruntime is not installed") from None
    return onnxruntime


def preload() -> None:
    """Import what this path runs on (ONNX Runtime), e.g. while a command's start-up pauses the
    garbage collector; nothing when it is not installed."""
    try:
        _onnxruntime()
    except Unsupported:
        pass


def open_export(model: ModelFile, path: str | Path, threads: int) -> Any:
    """An ONNX Runtime session of the ONNX file ``path``, checked against ``model`` as
    :class:`~seqtag.tasks.tagging.onnx.OnnxEmissions` checks it, with its session options.

    Raises:
        StaleExport: the file holds no fingerprint or another model's (and the model file is intact).
        Unsupported: no onnxruntime, no such file, a file ONNX Runtime cannot run, a model file whose
            weights do not match their checksum, or one this path cannot read.
    """
    ort = _onnxruntime()
    path = Path(path)
    if not path.is_file():
        raise Unsupported(f"{path}: no such ONNX file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        stored = session.get_modelmeta().custom_metadata_map.get(FINGERPRINT_KEY)
    except Exception as error:  # onnxruntime raises its own error types (Fail, InvalidGraph, ...)
        raise Unsupported(f"{path}: ONNX Runtime cannot open it ({type(error).__name__})") from None
    if not model.checksum_ok():
        raise Unsupported(f"{model.path}: the weights do not match their checksum")
    if stored is None:
        raise StaleExport(f"{path}: not exported by seqtag export (no model fingerprint)")
    if stored != model.fingerprint():
        raise StaleExport(f"{path}: exported from a different model; run seqtag export again")
    return session


# ------------------------------------------------------------------------------------ decoding


def viterbi(emissions: np.ndarray, lengths: np.ndarray, start: np.ndarray, transitions: np.ndarray,
            end: np.ndarray) -> np.ndarray:
    """The best tag sequences ``(B, T)`` as :meth:`seqtag.modules.crf.CRF.decode` finds them: the same
    float32 sums in the same order, ties to the lowest tag, positions past a sentence's end repeating
    its last tag.

    Args:
        emissions: ``(B, T, K)`` float32 scores.
        lengths: ``(B,)`` sentence lengths, each at least 1.
        start, transitions, end: ``(K,)``, ``(K, K)`` ``[from, to]`` and ``(K,)`` float32 scores (constraints included).
    """
    batch, steps, num_tags = emissions.shape
    mask = np.arange(steps)[None, :] < lengths[:, None]  # (B, T)
    identity = np.broadcast_to(np.arange(num_tags), (batch, num_tags))  # (B, K)
    score = start + emissions[:, 0]  # (B, K)
    pointers = np.empty((max(steps - 1, 0), batch, num_tags), dtype=np.int64)  # (T-1, B, K_to): tag at t - 1
    for t in range(1, steps):
        candidates = score[:, :, None] + transitions  # (B, K_from, K_to)
        previous = candidates.argmax(axis=1)  # (B, K_to)
        best = np.take_along_axis(candidates, previous[:, None, :], axis=1)[:, 0]  # (B, K_to)
        active = mask[:, t, None]  # (B, 1)
        score = np.where(active, best + emissions[:, t], score)
        pointers[t - 1] = np.where(active, previous, identity)
    path = np.empty((batch, steps), dtype=np.int64)
    last = (score + end).argmax(axis=1)  # (B,)
    path[:, steps - 1] = last
    rows = np.arange(batch)
    for t in range(steps - 2, -1, -1):
        last = pointers[t][rows, last]
        path[:, t] = last
    return path


# --------------------------------------------------------------------------------------- the tagger


#: The recipe settings this path reads, with the defaults a recipe validated by
#: :class:`~seqtag.tasks.tagging.recipe.TaggingRecipe` has where a model file (an older one) lacks them.
RECIPE_DEFAULTS: dict[str, Any] = {
    "model.document_context": 0, "model.char_lm.hidden_size": 0, "embeddings.contextual": None, "model.decoder": "crf",
    "model.crf.backend": "seqtag", "model.crf.constrained": True, "model.tag_scheme": "iobes", "data.feature_columns": [],
}


def _setting(recipe: dict[str, Any], name: str) -> Any:
    """The recipe's setting ``name`` (a dotted path of :data:`RECIPE_DEFAULTS`), its default where the file
    lacks it; Unsupported where a section is not an object."""
    data: Any = recipe
    for key in name.split("."):
        if not isinstance(data, dict):
            raise Unsupported(f"the model file's recipe has no section for {name}")
        if key not in data:
            return RECIPE_DEFAULTS[name]
        data = data[key]
    return data


class LiteTagger:
    """A tagging model's predictions from its ONNX export without PyTorch (see the module docstring).

    Args:
        model: the model file.
        session: its checked ONNX Runtime session (:func:`open_export`).

    Raises:
        Unsupported: a model this path cannot tag exactly as the PyTorch path does.
    """

    def __init__(self, model: ModelFile, session: Any) -> None:
        recipe, vocab = model.recipe, model.vocab
        if model.meta["task"] != "tagging":
            raise Unsupported(f"a {model.meta['task']} model")
        if _setting(recipe, "model.document_context") != 0:
            raise Unsupported("document context (model.document_context)")
        if _setting(recipe, "model.char_lm.hidden_size") != 0 or _setting(recipe, "embeddings.contextual") is not None:
            raise Unsupported("a language model's states (model.char_lm or embeddings.contextual)")
        self.decoder = _setting(recipe, "model.decoder")
        if self.decoder not in ("crf", "softmax"):
            raise Unsupported(f"model.decoder {self.decoder!r}")
        if self.decoder == "crf" and _setting(recipe, "model.crf.backend") != "seqtag":
            raise Unsupported("the pytorch-crf backend (its Viterbi adds in another order)")
        constrained = _setting(recipe, "model.crf.constrained")
        self.feature_columns = _setting(recipe, "data.feature_columns")
        scheme = _setting(recipe, "model.tag_scheme")
        try:
            self.words = WordIndex.from_json(vocab)
            self.chars = Vocabulary.from_json(vocab["chars"])
            self.tags = Vocabulary.from_json(vocab["tags"])
            self.features = [Vocabulary.from_json(v) for v in vocab.get("features", [])]
            self.corpus_scheme = vocab["corpus_scheme"]
            tokenizer = (TokenizerConfig.from_json(vocab["tokenizer"]) if "tokenizer" in vocab
                         else TokenizerConfig.from_recipe(recipe["tokenizer"]))
        except (KeyError, TypeError, ValueError, SeqtagError) as error:
            raise Unsupported(f"vocab.json: {type(error).__name__}") from None
        if (not isinstance(constrained, bool) or scheme not in SCHEMES or self.corpus_scheme not in SCHEMES
                or not isinstance(self.feature_columns, list) or len(self.feature_columns) != len(self.features)
                or not all(type(c) is int for c in self.feature_columns)):
            raise Unsupported("a recipe or vocabulary this path does not know")
        self.train_scheme = "none" if self.corpus_scheme == "none" else scheme
        self.direct = direct_tags(self.tags.itos, self.train_scheme, self.corpus_scheme,
                                  self.decoder == "crf" and constrained)  # TaggingTask._corpus_tags
        num_tags = len(self.tags)
        sizes = {"emissions.weight": num_tags, "words.embedding.weight": self.words.num_trainable,
                 "words.frozen": self.words.num_frozen}
        sizes.update({f"features.{i}.weight": len(v) for i, v in enumerate(self.features)})
        if model.rows("chars.embedding.weight") is not None:
            sizes["chars.embedding.weight"] = len(self.chars)
        if any(model.rows(name) != rows for name, rows in sizes.items()):
            raise Unsupported("the weights do not fit the vocabularies")
        if self.decoder == "crf":
            scores = []
            for raw, penalty in (("start_transitions", "start_penalty"), ("transitions", "transition_penalty"),
                                 ("end_transitions", "end_penalty")):
                a, b = model.array(f"crf.{raw}"), model.array(f"crf.{penalty}")
                if a.dtype != np.float32 or b.dtype != np.float32 or a.shape != b.shape:
                    raise Unsupported("CRF scores of another dtype or shape")
                scores.append(a + b)  # CRF.scores(): learned score plus constraint penalty, in float32
            self.start, self.transitions, self.end = scores
            if self.transitions.shape != (num_tags, num_tags) or self.start.shape != (num_tags,):
                raise Unsupported("CRF scores of another shape")
        self.tokenizer = Tokenizer(tokenizer)
        self.session = session
        self.inputs = [item.name for item in session.get_inputs()]
        self._char_rows: dict[str, list[int]] = {}

    @classmethod
    def open(cls, model: str | Path, onnx: str | Path | None = None, threads: int = 1) -> LiteTagger:
        """The tagger of the model file ``model`` with its ONNX export ``onnx`` (default: ``model`` with
        suffix ``.onnx``), ONNX Runtime on ``threads`` threads. Raises :class:`Unsupported` or
        :class:`StaleExport` as :func:`open_export` and the constructor do."""
        file = ModelFile.read(model)
        return cls(file, open_export(file, Path(model).with_suffix(".onnx") if onnx is None else onnx, threads))

    # ---------------------------------------------------------------- prediction

    def tag_items(self, format: str, items: Sequence[Any], batch_size: int = 256) -> ChunkResult:
        """:meth:`~seqtag.tasks.tagging.predictor.TaggingPredictor.tag_items` for ``conll``, ``tokens``
        (sentences: their tags) and ``text`` (paragraphs: per sentence its tokens and tags).

        Raises:
            Unsupported: ``jsonl`` input, feature columns the input lacks, or anything else to leave to
                the PyTorch path (which also reports bad input as it does).
        """
        if format == "text":
            return self.tag_paragraphs(items, batch_size)
        if format in ("conll", "tokens"):
            return self.predict(items, batch_size)
        raise Unsupported(f"{format} input")

    def predict(self, sentences: Sequence[Sentence], batch_size: int = 256) -> list[list[str]]:
        """Tags in the corpus's scheme, one list per sentence (``TaggingTask.predict``)."""
        indices = self._indices([self._encode(s) for s in sentences], batch_size, exact_softmax=False)
        return [self._to_corpus(tags, stitched=len(tags) > WINDOW) for tags in indices]

    def tag_paragraphs(self, paragraphs: Sequence[str], batch_size: int = 256) -> list[list[tuple[list[str], list[str]]]]:
        """Per paragraph of raw text its sentences as ``(tokens, tags)`` pairs, split by the model's tokenizer
        (``TaggingPredictor.pipe`` of the whole chunk at once)."""
        split = [[[token.text for token in sentence] for sentence in self.tokenizer.sentences(text)] for text in paragraphs]
        flat = [Sentence(tokens=tokens) for sentences in split for tokens in sentences]
        indices = self._indices([self._encode(s) for s in flat], batch_size, exact_softmax=True)
        tags = iter([self._to_corpus(t, stitched=len(t) > WINDOW) for t in indices])
        return [[(tokens, next(tags)) for tokens in sentences] for sentences in split]

    def _encode(self, sentence: Sentence) -> Encoded:
        """``TaggingTask.encode`` without tags."""
        tokens = sentence.tokens
        features = None
        if self.features:
            try:
                columns = [[row[c] for row in sentence.rows] for c in self.feature_columns]
                if not sentence.rows or not all(-len(sentence.rows[0]) <= c < len(sentence.rows[0]) for c in self.feature_columns):
                    raise IndexError
                features = feature_indices(columns, self.features)
            except (IndexError, ValueError) as error:  # the PyTorch path says what is missing
                raise Unsupported(f"the input lacks the feature columns ({type(error).__name__})") from None
        index = self.words.index
        return Encoded(tokens, [index(t) for t in tokens], [casing(t) for t in tokens], None, features)

    def _chars(self, form: str) -> list[int]:
        """``TaggingTask._chars``: character indices of a word form (memoised)."""
        row = self._char_rows.get(form)
        if row is None:
            if len(self._char_rows) >= 1 << 17:
                self._char_rows.clear()
            row = self._char_rows[form] = char_indices(form, self.chars)
        return row

    def _inputs(self, items: Sequence[Encoded]) -> dict[str, np.ndarray]:
        """``TaggingTask.collate`` as ONNX Runtime inputs: ``words``, ``forms``, ``casing`` ``(B, T)``,
        ``chars`` ``(U, L)``, ``lengths`` ``(B,)`` and ``features`` ``(B, T, F)``."""
        steps = max(len(item) for item in items)
        form_ids: dict[str, int] = {}
        forms = [[form_ids.setdefault(token, len(form_ids)) for token in item.tokens] for item in items]
        char_rows = [self._chars(form) for form in form_ids]
        values = {
            "words": pad_array([item.words for item in items], steps),
            "chars": pad_array(char_rows, max(map(len, char_rows))),
            "forms": pad_array(forms, steps),
            "casing": pad_array([item.casing for item in items], steps),
            "lengths": np.array([len(item) for item in items], dtype=np.int64),
        }
        if self.features:
            features = np.zeros((len(items), steps, len(self.features)), dtype=np.int64)
            for row, item in enumerate(items):
                if item.features:
                    features[row, : len(item)] = item.features
            values["features"] = features
        return {name: values[name] for name in self.inputs}

    def _indices(self, encoded: Sequence[Encoded], batch_size: int, exact_softmax: bool) -> list[list[int]]:
        """Tag indices (training scheme) of each sentence, in input order (``TaggingTask._predict_indices``).
        ``exact_softmax``: decode a softmax model as the argmax of its softmax (Unsupported where that
        could differ from the argmax of the scores)."""
        pieces, plans = window_pieces(encoded)
        results: list[list[int]] = [[] for _ in pieces]
        for order in length_batches([len(p) for p in pieces], batch_size, max_tokens=PREDICT_TOKENS):
            inputs = self._inputs([pieces[i] for i in order])
            emissions = self.session.run(None, inputs)[0].astype(np.float32, copy=False)  # (B, T, K)
            lengths = np.array([len(pieces[i]) for i in order], dtype=np.int64)
            best = self._decode(emissions, lengths, exact_softmax).tolist()
            for row, i in enumerate(order):
                results[i] = best[row][: len(pieces[i])]
        return [results[plan[0][0]][plan[0][1]:plan[0][2]] if len(plan) == 1  # a sentence in one piece: no per-tag loop
                else [tag for piece, keep_from, keep_to in plan for tag in results[piece][keep_from:keep_to]]
                for plan in plans]

    def _decode(self, emissions: np.ndarray, lengths: np.ndarray, exact_softmax: bool) -> np.ndarray:
        """Best tags ``(B, T)`` of emissions ``(B, T, K)``: Viterbi with a CRF, else the argmax."""
        if self.decoder == "crf":
            return viterbi(emissions, lengths, self.start, self.transitions, self.end)
        if exact_softmax and emissions.shape[2] > 1:
            top = np.partition(emissions, -2, axis=2)[:, :, -2:]  # (B, T, 2): the second best and the best
            real = np.arange(emissions.shape[1])[None, :] < lengths[:, None]  # (B, T)
            if bool(((top[:, :, 1] - top[:, :, 0] < SOFTMAX_TIE) & real).any()):
                raise Unsupported("softmax scores too close to tell their argmax apart without PyTorch's softmax")
        return emissions.argmax(axis=2)

    def _to_corpus(self, indices: Sequence[int], stitched: bool = False) -> list[str]:
        """``TaggingTask._to_corpus``: training-scheme tag indices as corpus-scheme tags; Unsupported for a tag
        outside the scheme (the PyTorch path raises its error)."""
        try:
            return corpus_tags(indices, self.tags.itos, self.direct, self.train_scheme, self.corpus_scheme, stitched)
        except SchemeError as error:
            raise Unsupported(str(error)) from None
