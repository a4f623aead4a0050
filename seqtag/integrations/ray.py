"""Ray Data: tag a column of a ``ray.data.Dataset`` with a seqtag tagging model, on one machine or a cluster.

Needs the extra: ``pip install 'seqtag[ray]'``. Ray itself is imported only when something here
is used, so ``import seqtag`` never needs it.

>>> import ray
>>> from seqtag.integrations.ray import SeqtagTagger
>>> ray.init()  # or ray.init(address="ray://head:10001") for a cluster
>>> ds = ray.data.from_items([{"text": "George Washington went to Washington."}])
>>> tagged = ds.map_batches(SeqtagTagger, fn_constructor_args=("model.seqtag",),
...                         compute=ray.data.ActorPoolStrategy(size=2), batch_size=256)

Each actor loads the model once. With ``input="text"`` a row's text is tokenised and split into
sentences by the model's own tokenizer and the batch gains the columns ``tokens`` and ``tags``
(a list per sentence) and ``entities`` (``text``, ``label``, character ``start`` / ``end`` in the
row's text); with ``input="tokens"`` a row holds one pre-tokenised sentence (a list of tokens, or a
string split at spaces) and gains ``tags`` (one per token) and ``entities`` (``start`` / ``end``
are token indices). On a cluster the model file must be readable at the same path on every node.

``seqtag predict MODEL INPUT... --engine ray`` runs the same class as Ray actors behind the
streaming reader and resumable writer of :mod:`seqtag.bulk` (:func:`ray_engine`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from seqtag.bulk import EngineFactory, WorkerSpec, load_predictor
from seqtag.data.conll import Sentence
from seqtag.data.schemes import spans_from_tags
from seqtag.data.stream import ChunkResult
from seqtag.errors import SeqtagError

INPUTS = ("text", "tokens")


def _ray() -> Any:
    """The ``ray`` module; a SeqtagError that says how to install it when it is missing."""
    # Ray's runtime-environment hook for `uv run` and its usage statistics reach out to the network
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise SeqtagError("the Ray integration needs Ray: pip install 'seqtag[ray]'") from None
    return ray


class SeqtagTagger:
    """A callable class for ``ray.data.Dataset.map_batches``: loads a tagging model once per actor
    and tags the column ``text_column`` of each batch (see the module docstring for the columns
    it adds).

    Args:
        model: the model file (``model.seqtag``), readable on every node.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        batch_size: sentences per forward pass.
        text_column: the column to tag.
        input: ``text`` (raw text) or ``tokens`` (one pre-tokenised sentence per row).
        threads: PyTorch threads of this actor (default: as PyTorch chooses).
        runtime: ``torch``, or ``onnx`` with the file ``seqtag export`` wrote (``onnx``).
    """

    def __init__(
        self,
        model: str | Path,
        device: str | None = "auto",
        batch_size: int = 256,
        text_column: str = "text",
        input: str = "text",
        threads: int | None = None,
        runtime: str = "torch",
        onnx: str | Path | None = None,
    ) -> None:
        if input not in INPUTS:
            raise SeqtagError(f"input={input!r}: choose text or tokens")
        if threads is not None:
            torch.set_num_threads(threads)
        self.text_column = text_column
        self.input = input
        self.batch_size = batch_size
        spec = WorkerSpec(str(model), runtime, None if onnx is None else str(onnx), device, threads or torch.get_num_threads(), batch_size)
        self.predictor = load_predictor(spec)

    def __call__(self, batch: Any) -> Any:
        """Tag one batch (a dict of columns, as numpy or lists, or a pandas DataFrame); returns it with the new columns."""
        try:
            values = list(batch[self.text_column])
        except KeyError:
            columns = ", ".join(map(str, batch.keys() if isinstance(batch, dict) else batch.columns))
            raise SeqtagError(f"no column {self.text_column!r} to tag (columns: {columns}); set text_column") from None
        columns = self._tag_tokens(values) if self.input == "tokens" else self._tag_texts(values)
        if isinstance(batch, dict):
            return {**batch, **columns}
        return batch.assign(**columns)

    def tag_chunk(self, format: str, items: list[Any]) -> ChunkResult:
        """Tags for one chunk of :mod:`seqtag.bulk` (what ``seqtag predict --engine ray`` calls)."""
        return self.predictor.tag_items(format, items, self.batch_size)

    def _tag_tokens(self, values: Sequence[Any]) -> dict[str, list[Any]]:
        token_lists = [value.split() if isinstance(value, str) else [str(token) for token in value] for value in values]
        tags = self.predictor.tag_items("tokens", [Sentence(tokens=tokens) for tokens in token_lists], self.batch_size)
        scheme = self.predictor.task.corpus_scheme
        span_task = self.predictor.task.is_span_task
        entities = [
            [{"text": " ".join(tokens[s.start:s.end]), "label": s.label, "start": s.start, "end": s.end}
             for s in (spans_from_tags(sentence_tags, scheme) if span_task else [])]
            for tokens, sentence_tags in zip(token_lists, tags, strict=True)
        ]
        return {"tags": tags, "entities": entities}

    def _tag_texts(self, values: Sequence[Any]) -> dict[str, list[Any]]:
        texts = ["" if value is None else str(value) for value in values]
        buffer = max(1, -(-len(texts) // self.batch_size))
        tokens, tags, entities = [], [], []
        for sentences in self.predictor.pipe(texts, batch_size=self.batch_size, buffer=buffer):
            tokens.append([[token.text for token in sentence.tokens] for sentence in sentences])
            tags.append([sentence.tags for sentence in sentences])
            entities.append([{"text": e.text, "label": e.label, "start": e.start_char, "end": e.end_char}
                             for sentence in sentences for e in sentence.entities])
        return {"tokens": tokens, "tags": tags, "entities": entities}


class RayEngine:
    """The engine of ``seqtag predict --engine ray``: ``workers`` actors of :class:`SeqtagTagger`
    (each loading the model once, with ``spec.threads`` threads), two chunks in flight per actor,
    results collected in order. Connects to ``address`` (``ray://head:10001``, ``auto``) or starts a
    local Ray with as many CPUs as the workers use; shuts down only a Ray it started."""

    def __init__(self, spec: WorkerSpec, workers: int, address: str | None = None) -> None:
        ray = self.ray = _ray()
        self.started = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"address": address} if address else {"num_cpus": workers * spec.threads}
            ray.init(include_dashboard=False, logging_level=logging.WARNING, **options)
            self.started = True
        actor = ray.remote(num_cpus=spec.threads)(SeqtagTagger)
        self.actors = [
            actor.remote(spec.model, spec.device, spec.batch_size, threads=spec.threads, runtime=spec.runtime, onnx=spec.onnx)
            for _ in range(workers)
        ]
        self.slots = 2 * workers
        self.submitted = 0

    def submit(self, format: str, items: list[Any]) -> Any:
        actor = self.actors[self.submitted % len(self.actors)]
        self.submitted += 1
        return actor.tag_chunk.remote(format, items)

    def result(self, handle: Any) -> ChunkResult:
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(handle)
        except exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, SeqtagError):
                raise cause from None
            raise SeqtagError(f"a Ray worker failed: {cause!r}") from None
        except exceptions.RayActorError as error:
            raise SeqtagError(f"a Ray worker died; the job stopped (outputs finished so far are complete; rerun the "
                              f"same command to continue): {str(error).strip().splitlines()[0]}") from None

    def close(self, failed: bool = False) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        if self.started:
            self.ray.shutdown()


def ray_engine(address: str | None = None) -> EngineFactory:
    """An engine factory for :func:`seqtag.bulk.predict` that runs the workers as Ray actors (on the cluster at ``address``)."""
    return lambda spec, workers: RayEngine(spec, workers, address)
