"""ONNX export of a tagger's network, and ONNX Runtime as its prediction runtime.

The network (words, characters, casing and feature columns -> BiLSTM ->
emission scores) is exported; the CRF's Viterbi decoding, marginals and
everything around them stay in seqtag, so both runtimes give the same tags.
On this project's 2-core CPU, prediction with ONNX Runtime runs at 1.2-1.3x
the tokens/s of PyTorch (see the README's Performance section).

    seqtag export runs/conll03/model.seqtag            # writes runs/conll03/model.onnx
    seqtag predict runs/conll03/model.seqtag input.txt --runtime onnx
    tagger = seqtag.load("runs/conll03/model.seqtag", runtime="onnx")

An ONNX file is a protobuf graph with its weights: opening it runs no code.
It holds no vocabularies, so it is always used together with the model file it
was exported from; a fingerprint of that model's weights is stored in the
ONNX file's metadata and checked when it is opened.

Needs the ``onnx`` extra (``pip install "seqtag[onnx]"``: onnx, onnxscript,
onnxruntime).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqtag.data.conll import Sentence
from seqtag.errors import SeqtagError, shorten
from seqtag.io import atomic_write_bytes
from seqtag.modules.char_encoders import CharCNN
from seqtag.modules.recurrent import CELLS, cell
from seqtag.tasks.tagging.encoding import FINGERPRINT_KEY

INPUTS = ("words", "chars", "forms", "casing", "lengths")


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise SeqtagError(f"the ONNX runtime needs the {module} package: pip install 'seqtag[onnx]'") from None


def fingerprint(model: nn.Module) -> str:
    """SHA-256 over the names, shapes and values of ``model``'s state (parameters and buffers)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class ExportableTagger(nn.Module):
    """The emissions of a :class:`~seqtag.tasks.tagging.model.Tagger` in operations every ONNX
    runtime has: the character CNN as a convolution, each LSTM direction of each layer as a
    plain single-direction ``nn.LSTM`` (ONNX ``LSTM``), the backward one over each sentence
    reversed within its length. Same weights, same function (inference only).

    Inputs are the fields of a :class:`~seqtag.tasks.tagging.model.TaggingBatch`: ``words``,
    ``forms``, ``casing`` ``(B, T)``, ``chars`` ``(U, L)``, ``lengths`` ``(B,)``, and
    ``features`` ``(B, T, F)`` for models with feature columns. Output: ``(B, T, K)``.
    """

    def __init__(self, tagger: nn.Module) -> None:
        super().__init__()
        config = tagger.config
        if not cell(config.encoder.cell).onnx_exportable:
            exportable = ", ".join(name for name, c in CELLS.items() if c.onnx_exportable)
            raise SeqtagError(f"ONNX export supports LSTM encoders (model.encoder.cell: {exportable}), "
                              f"not {config.encoder.cell}")
        if getattr(tagger, "contextual", None) is not None:
            raise SeqtagError("ONNX export does not support contextual language-model embeddings "
                              "(embeddings.contextual); use the PyTorch runtime")
        if tagger.chars is not None and not isinstance(tagger.chars, CharCNN):
            raise SeqtagError("ONNX export supports the character CNN (model.char.encoder: cnn) or no character encoder")
        self.tagger = tagger
        self.num_trainable = tagger.words.num_trainable
        # The model file keeps the frozen table in half precision: exact, and half the size.
        self.register_buffer("frozen", tagger.words.frozen.half())
        encoder = tagger.encoder
        self.directions = nn.ModuleList()
        for layer in range(encoder.num_layers):
            size = encoder.input_size if layer == 0 else 2 * encoder.hidden_size
            for suffix in ("", "_reverse"):
                lstm = cell(config.encoder.cell).layer(size, encoder.hidden_size, batch_first=True)
                with torch.no_grad():
                    for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                        getattr(lstm, f"{kind}_l0").copy_(getattr(encoder, f"{kind}_l{layer}{suffix}"))
                self.directions.append(lstm)

    def forward(
        self,
        words: torch.Tensor,
        chars: torch.Tensor,
        forms: torch.Tensor,
        casing: torch.Tensor,
        lengths: torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        tagger = self.tagger
        if self.frozen.size(0) == 0:  # no pretrained-only words
            parts = [tagger.words.embedding(words)]  # (B, T, D)
        else:
            known = (words < self.num_trainable).unsqueeze(2)  # (B, T, 1)
            trained = tagger.words.embedding(words.clamp(max=self.num_trainable - 1))  # (B, T, D)
            frozen = nn.functional.embedding((words - self.num_trainable).clamp(min=0), self.frozen).float()
            parts = [torch.where(known, trained, frozen)]
        if tagger.chars is not None:
            embedded = tagger.chars.embedding(chars).transpose(1, 2)  # (U, C, L)
            convolved = tagger.chars.conv(embedded)[:, :, : chars.size(1)]  # (U, F, L) (even widths give L + 1)
            convolved = convolved.masked_fill(chars.eq(0).unsqueeze(1), float("-inf"))
            parts.append(convolved.max(dim=2).values[forms])  # (U, F) -> (B, T, F)
        if tagger.casing is not None:
            parts.append(tagger.casing(casing))
        for i, embed in enumerate(tagger.features):
            assert features is not None
            parts.append(embed(features[:, :, i]))
        output = torch.cat(parts, dim=2)  # (B, T, D_in)
        # Positions from the input itself rather than from its size: nothing shape-specific is traced.
        positions = torch.ones_like(words).cumsum(1) - 1  # (B, T)
        last = (lengths - 1).unsqueeze(1)  # (B, 1)
        reverse = torch.where(positions <= last, last - positions, positions).unsqueeze(2)  # (B, T, 1)
        for layer in range(len(self.directions) // 2):
            forward, _ = self.directions[2 * layer](output)  # (B, T, H)
            flipped = torch.gather(output, 1, reverse.repeat(1, 1, output.size(2)))
            backward, _ = self.directions[2 * layer + 1](flipped)
            backward = torch.gather(backward, 1, reverse.repeat(1, 1, backward.size(2)))
            output = torch.cat([forward, backward], dim=2)  # (B, T, 2H)
        real = (positions < lengths.unsqueeze(1)).unsqueeze(2)  # (B, T, 1)
        output = output * real.to(output.dtype)
        pooling = tagger.config.global_vector
        if pooling != "none":  # as seqtag.tasks.tagging.model.global_vector
            if pooling == "max":
                pooled = output.masked_fill(~real, float("-inf")).max(dim=1).values  # (B, 2H)
            else:
                pooled = output.sum(1) / lengths.unsqueeze(1).to(output.dtype)  # (B, 2H)
            # broadcast by addition: nothing shape-specific is traced
            output = torch.cat([output, torch.zeros_like(output) + pooled.unsqueeze(1)], dim=2)  # (B, T, 4H)
        return tagger.emissions(output)  # (B, T, K)


def _inputs(task: Any, batch: Any) -> tuple[torch.Tensor, ...]:
    values = (batch.words, batch.chars, batch.forms, batch.casing, batch.lengths)
    return (*values, batch.features) if task.features else values


def _sample_batches(task: Any) -> list[Any]:
    """Small batches of made-up sentences with distinct sizes, for tracing and checking."""
    itos = task.words.vocab.itos
    words = [*itos[2:40], *itos[-5:]]  # training words and pretrained-only ones (the frozen table)
    columns = 1 + max([task.recipe.data.word_column, *task.recipe.data.feature_columns])

    def sentence(length: int, offset: int) -> Sentence:
        tokens = [words[(offset + i) % len(words)] + ("xyzq" if i % 3 == 0 else "") for i in range(length)]
        rows = [[token] * columns for token in tokens]
        return Sentence(tokens, None, rows)

    groups = [(7, 3, 11), (1,), (5, 5), (23, 2, 9, 14)]
    return [task.collate([task.encode(sentence(n, 3 * n + k), with_tags=False) for k, n in enumerate(g)]) for g in groups]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter and its graph optimiser: notes on every folded constant, printed
    progress, warnings about packages the export does not use."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_onnx(task: Any, path: str | Path) -> Path:
    """Export ``task``'s tagger network to ``path`` (one ONNX file) and check it.

    The exported graph is run with ONNX Runtime on sample batches of several
    shapes and compared with PyTorch; a difference above 1e-3 raises
    :class:`~seqtag.errors.SeqtagError`.
    """
    if getattr(task, "name", None) != "tagging":
        raise SeqtagError("ONNX export is for tagging models")
    _require("onnxscript")
    _require("onnx")
    path = Path(path)
    model = task.model.eval()
    exportable = ExportableTagger(model).eval()
    samples = _sample_batches(task)
    names = [*INPUTS, "features"] if task.features else list(INPUTS)
    batch, steps, forms, letters = (torch.export.Dim(n) for n in ("batch", "steps", "forms", "letters"))
    shapes: dict[str, Any] = {"words": {0: batch, 1: steps}, "chars": {0: forms, 1: letters}, "forms": {0: batch, 1: steps},
                              "casing": {0: batch, 1: steps}, "lengths": {0: batch}}
    if task.features:
        shapes["features"] = {0: batch, 1: steps}
    with torch.no_grad(), _quiet():
        program = torch.onnx.export(exportable, _inputs(task, samples[0]), dynamo=True, input_names=names,
                                    output_names=["emissions"], dynamic_shapes=shapes, verbose=False)
    graph = program.model_proto
    # The exporter may annotate a dynamic dimension of an input or the output with the
    # sample's size (the graph itself is dynamic: the check below runs other sizes).
    declared = {name: {axis: dim.__name__ for axis, dim in axes.items()} for name, axes in shapes.items()}
    declared["emissions"] = {0: "batch", 1: "steps"}
    for value in [*graph.graph.input, *graph.graph.output]:
        for axis, name in declared.get(value.name, {}).items():
            dim = value.type.tensor_type.shape.dim[axis]
            dim.ClearField("dim_value")
            dim.dim_param = name
    del graph.graph.value_info[:]  # intermediate shape hints may carry the sample's sizes too; runtimes infer them
    entry = graph.metadata_props.add()
    entry.key, entry.value = FINGERPRINT_KEY, fingerprint(model)
    runtime = OnnxEmissions.from_proto(graph, model, path=path)
    with torch.no_grad():
        for sample in samples:
            difference = float((runtime(sample) - model(sample)).abs().max())
            if not difference <= 1e-3:
                raise SeqtagError(f"the exported graph differs from the model by {difference:.2g}; not written")
    atomic_write_bytes(path, graph.SerializeToString())
    return path


class OnnxEmissions:
    """Emission scores of a tagger from its exported ONNX graph, run by ONNX Runtime.

    Args:
        path: the ONNX file.
        model: the tagger it must have been exported from (checked by fingerprint).
        threads: ONNX Runtime's intra-op threads (default: ``torch.get_num_threads()``).
    """

    def __init__(self, path: str | Path, model: nn.Module, threads: int | None = None) -> None:
        onnx = _require("onnx")
        path = Path(path)
        if not path.is_file():
            raise SeqtagError(f"{path}: no such ONNX file; create it with: seqtag export MODEL --output {path}")
        try:
            proto = onnx.load_model(str(path), load_external_data=False)
        except Exception as error:  # onnx raises protobuf's DecodeError and others
            raise SeqtagError(f"{path}: not an ONNX file ({type(error).__name__})") from None
        self._start(proto, model, threads, path)

    @classmethod
    def from_proto(cls, proto: Any, model: nn.Module, threads: int | None = None, path: str | Path = "<graph>") -> "OnnxEmissions":
        """The runtime of a graph already in memory (an ``onnx.ModelProto``); ``path`` names it in errors."""
        runtime = cls.__new__(cls)
        runtime._start(proto, model, threads, Path(path))
        return runtime

    def _start(self, proto: Any, model: nn.Module, threads: int | None, path: Path) -> None:
        ort = _require("onnxruntime")
        stored = {entry.key: entry.value for entry in proto.metadata_props}.get(FINGERPRINT_KEY)
        if stored is None:
            raise SeqtagError(f"{path}: not exported by seqtag export (no model fingerprint)")
        if stored != fingerprint(model):
            raise SeqtagError(f"{path}: exported from a different model; run seqtag export again")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # Idle ONNX Runtime threads would otherwise spin and slow PyTorch's decoding in between.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own error types (Fail, InvalidGraph, ...)
            raise SeqtagError(f"{path}: ONNX Runtime cannot run this graph ({type(error).__name__}: "
                              f"{shorten(str(error))}); export it again with seqtag export") from None
        self.names = [item.name for item in self.session.get_inputs()]
        self.path = path

    def __call__(self, batch: Any) -> torch.Tensor:
        """``(B, T, K)`` emission scores of a :class:`~seqtag.tasks.tagging.model.TaggingBatch`."""
        values = {"words": batch.words, "chars": batch.chars, "forms": batch.forms, "casing": batch.casing,
                  "lengths": batch.lengths, "features": batch.features}
        feed = {name: values[name].numpy() for name in self.names}
        return torch.from_numpy(self.session.run(None, feed)[0])
