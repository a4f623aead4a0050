"""Tagging many or huge files (``seqtag predict MODEL INPUT... --output DIR``): a bounded, ordered,
resumable pipeline.

The driver (this process) reads each input in chunks of whole sentences
(:func:`seqtag.data.stream.read_chunks`), hands them to an :class:`Engine` (in this process,
``--workers N`` processes, or Ray actors from :mod:`seqtag.integrations.ray`) with at most a few
chunks in flight, and writes the results in input order. Memory therefore stays bounded by the
chunk size times the chunks in flight, whatever the size of the files.

In bulk mode each input ``NAME`` becomes ``DIR/NAME``, written as ``DIR/NAME.partial`` and renamed
when complete, so the final name appears only for a finished file. Beside the partial output,
``DIR/NAME.progress.json`` records after each chunk (flushed and fsynced, the output first) how
much input was read (bytes, lines, sentences) and how many output bytes belong to it. A rerun with
the same arguments skips inputs whose output exists, truncates a partial output to the recorded
size and continues reading the input where the record says: the output is byte for byte that of
an uninterrupted run. A record that does not match the job (another model, format, or a changed
input) makes that file start over.

A single input without a folder keeps the plain behaviour: predictions go to stdout, or to the
``--output`` file (written atomically), without a progress record. Models of other tasks go
through their predictor's ``predict_file`` for a single input.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from seqtag.data.files import display_name, is_stream
from seqtag.data.stream import (
    CHUNK_TOKENS,
    Chunk,
    ChunkResult,
    Position,
    count_sentences,
    count_tokens,
    format_chunk,
    read_chunks,
    resolve_format,
)
from seqtag.errors import DataError, SeqtagError
from seqtag.hub import download, is_hub_name
from seqtag.io import atomic_open, atomic_write_text, read_header

# PyTorch and the modules that import it (seqtag.api, .devices, .registry, the task packages)
# are imported where they are used: a job that runs ONNX Runtime without PyTorch
# (seqtag.tasks.tagging.lite) never loads them, and starts in a fraction of the time.
if TYPE_CHECKING:
    from tqdm import tqdm

    from seqtag.tasks.tagging.lite import LiteTagger, ModelFile
    from seqtag.tasks.tagging.predictor import TaggingPredictor

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: Version of the progress record beside a partial output.
RECORD_VERSION = 2  # 2: items count blank and -DOCSTART- lines (line-exact output)
PARTIAL_SUFFIX = ".partial"
RECORD_SUFFIX = ".progress.json"
#: The lock file a bulk job holds in its output folder while it runs.
LOCK_NAME = ".seqtag-predict.lock"
#: Seconds between progress lines when progress is asked for and stderr is not a terminal.
PROGRESS_LINE_SECONDS = 10.0
#: ``--runtime`` of seqtag predict: ``auto`` is ONNX Runtime when the model has a matching ONNX export
#: (PyTorch-free where :mod:`seqtag.tasks.tagging.lite` can tag exactly), else PyTorch.
RUNTIMES = ("auto", "torch", "onnx")
#: The devices ONNX Runtime stands in for (it runs on the CPU).
_CPU_DEVICES = (None, "auto", "cpu")


def available_cores() -> int:
    """CPU cores this process may run on (the default ``--threads`` budget)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class WorkerSpec:
    """How each worker loads the model: what :func:`load_predictor` needs, picklable for other processes
    (``runtime`` is ``torch`` or ``onnx``: the job's ``auto`` is settled before an engine is made)."""

    model: str
    runtime: str = "torch"
    onnx: str | None = None
    device: str | None = "auto"
    threads: int = 1
    batch_size: int = 256


def load_predictor(spec: WorkerSpec) -> TaggingPredictor:
    """Load a tagging model as ``spec`` says (the ONNX runtime with ``spec.threads`` threads); a
    SeqtagError when the model is not a tagger.

    Also turns off oneDNN's primitive cache in this process unless ``ONEDNN_PRIMITIVE_CACHE_CAPACITY``
    is set (it takes effect when no LSTM has run yet): the cache keeps a compiled LSTM for every
    batch shape seen, which made memory grow with the size of the input (peak RSS +290 MB from a
    10 MB to a 100 MB file with the CoNLL-03 model), and building them again is not measurably slower.
    """
    from seqtag.api import load
    from seqtag.tasks.tagging.predictor import TaggingPredictor

    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "0")
    predictor = load(spec.model, spec.runtime, spec.onnx, spec.device, spec.threads)
    if not isinstance(predictor, TaggingPredictor):
        raise SeqtagError(f"{spec.model}: bulk tagging and workers are for tagging models, this is a {predictor.task.name} model")
    return predictor


class Engine(Protocol):
    """Tags chunks somewhere: :meth:`submit` returns a handle at once, :meth:`result` waits for it.
    The driver keeps at most ``slots`` chunks submitted and not yet collected, and collects them
    in the order it submitted them."""

    slots: int

    def submit(self, format: str, items: list[Any]) -> Any: ...

    def result(self, handle: Any) -> ChunkResult: ...

    def close(self, failed: bool = False) -> None: ...


#: Makes an engine of ``workers`` workers, each loading the model as the spec says.
EngineFactory = Callable[[WorkerSpec, int], Engine]


class InProcessEngine:
    """Tags in this process, one chunk at a time, with ``spec.threads`` PyTorch threads (restored on close)."""

    slots = 1

    def __init__(self, spec: WorkerSpec) -> None:
        import torch

        self._threads = torch.get_num_threads()
        torch.set_num_threads(spec.threads)
        self.batch_size = spec.batch_size
        self.predictor = load_predictor(spec)

    def submit(self, format: str, items: list[Any]) -> Any:
        return format, items

    def result(self, handle: Any) -> ChunkResult:
        format, items = handle
        return self.predictor.tag_items(format, items, self.batch_size)

    def close(self, failed: bool = False) -> None:
        import torch

        torch.set_num_threads(self._threads)


class LiteEngine:
    """Tags in this process without PyTorch (:class:`~seqtag.tasks.tagging.lite.LiteTagger`: the ONNX export
    run by ONNX Runtime). A chunk it cannot tag exactly as PyTorch does (e.g. ``jsonl`` input, whose
    confidences are CRF marginals) goes to an :class:`InProcessEngine` with ``spec`` (the ONNX runtime, the
    same session options), made when first needed: the same output, at PyTorch's start-up cost."""

    slots = 1

    def __init__(self, spec: WorkerSpec, tagger: LiteTagger) -> None:
        self.spec = spec
        self.tagger = tagger
        self.fallback: InProcessEngine | None = None

    def submit(self, format: str, items: list[Any]) -> Any:
        return format, items

    def result(self, handle: Any) -> ChunkResult:
        from seqtag.tasks.tagging.lite import Unsupported

        format, items = handle
        try:
            return self.tagger.tag_items(format, items, self.spec.batch_size)
        except Unsupported as reason:
            if self.fallback is None:
                log.debug(f"tagging with PyTorch and ONNX Runtime: the PyTorch-free path does not do {reason}")
                self.fallback = InProcessEngine(self.spec)
        return self.fallback.result(handle)

    def close(self, failed: bool = False) -> None:
        if self.fallback is not None:
            self.fallback.close(failed)


# What a worker process holds: its predictor, or why it could not load one.
_WORKER: dict[str, Any] = {}


def _init_worker(spec: WorkerSpec, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle

    def watch_parent() -> None:  # a worker whose driver was killed exits instead of waiting forever
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch_parent, daemon=True).start()
    import torch

    torch.set_num_threads(spec.threads)
    try:
        _WORKER["predictor"] = load_predictor(spec)
        _WORKER["batch_size"] = spec.batch_size
    except Exception as error:  # reported with the first chunk, as the driver's own error
        _WORKER["error"] = error if isinstance(error, SeqtagError) else SeqtagError(f"a worker could not load the model: {error!r}")


def _tag_in_worker(format: str, items: list[Any]) -> ChunkResult:
    if "error" in _WORKER:
        raise _WORKER["error"]
    return _WORKER["predictor"].tag_items(format, items, _WORKER["batch_size"])


class ProcessEngine:
    """``workers`` processes (``spawn``), each loading the model once; two chunks in flight per worker."""

    def __init__(self, spec: WorkerSpec, workers: int) -> None:
        self.slots = 2 * workers
        self.executor = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker, initargs=(spec, os.getpid()),
        )

    def submit(self, format: str, items: list[Any]) -> Future[ChunkResult]:
        try:
            return self.executor.submit(_tag_in_worker, format, items)
        except BrokenProcessPool:
            raise SeqtagError(_DIED) from None

    def result(self, handle: Future[ChunkResult]) -> ChunkResult:
        try:
            return handle.result()
        except BrokenProcessPool:
            raise SeqtagError(_DIED) from None

    def close(self, failed: bool = False) -> None:
        if failed:
            for process in list(getattr(self.executor, "_processes", {}).values()):
                process.terminate()
        self.executor.shutdown(wait=not failed, cancel_futures=True)


_DIED = ("a worker process died (killed, or out of memory?); the job stopped. Outputs finished so far are "
         "complete; rerun the same command to continue")


def local_engine(spec: WorkerSpec, workers: int) -> Engine:
    """The default engine: this process for one worker, else ``workers`` worker processes."""
    return InProcessEngine(spec) if workers == 1 else ProcessEngine(spec, workers)


@dataclass
class PredictJob:
    """What ``seqtag predict`` was asked to do.

    ``output`` None prints a single input to ``out`` (stdout); a folder (an existing one, a
    name ending in ``/``, or any name with several inputs) is bulk mode; otherwise the one
    input's predictions go to that file (``folder`` True or False says which, whatever the name).
    ``threads`` is the budget of CPU threads (default: all
    cores), shared so that workers x threads per worker fits in it. ``progress`` None shows a
    progress bar when stderr is a terminal. ``runtime`` (:data:`RUNTIMES`): ``auto`` runs ONNX
    Runtime when ``onnx`` (default: the model with suffix ``.onnx``) is the model's export and the
    device is the CPU, PyTorch otherwise; ``onnx`` always runs ONNX Runtime; ``torch`` PyTorch.
    ONNX Runtime runs without PyTorch (:mod:`seqtag.tasks.tagging.lite`) for one local worker where
    that path tags exactly as PyTorch with ONNX Runtime does, writing the same bytes.
    """

    model: str | Path  # a model file, or hf://OWNER/NAME[@REVISION]
    inputs: Sequence[str | Path]
    output: str | Path | None = None
    format: str = "auto"
    word_column: int | None = None
    batch_size: int = 256
    device: str | None = "auto"
    runtime: str = "auto"  # one of RUNTIMES
    onnx: str | Path | None = None
    workers: int = 1
    threads: int | None = None
    progress: bool | None = None
    chunk_tokens: int = CHUNK_TOKENS
    overwrite: bool = False
    folder: bool | None = None


@dataclass
class Summary:
    """What a job did: files written and skipped, sentences and tokens tagged, seconds taken."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    sentences: int = 0
    tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        """Tokens tagged per second of the whole job (model loading included)."""
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def is_bulk(job: PredictJob) -> bool:
    """Whether ``job`` writes one file per input into a folder."""
    if job.output is None:
        return False
    if job.folder is not None:
        return job.folder
    name = str(job.output)
    return len(job.inputs) > 1 or Path(name).is_dir() or name.endswith(("/", os.sep))


def predict(
    job: PredictJob,
    engine: EngineFactory | None = None,
    out: TextIO | None = None,
    on_chunk: Callable[[Path, Chunk], None] | None = None,
) -> Summary:
    """Run a ``seqtag predict`` job (see the module docstring).

    Args:
        job: the inputs, output and options.
        engine: makes the engine (default :func:`local_engine`); :func:`seqtag.integrations.ray.ray_engine` runs Ray actors.
        out: where a single input without ``--output`` goes (default: stdout).
        on_chunk: called with the output path and the chunk after each chunk is written and recorded.
    """
    started = time.perf_counter()
    inputs = [Path(p) for p in job.inputs]
    if not inputs:
        raise SeqtagError("no input file given")
    if job.workers < 1:
        raise SeqtagError(f"--workers must be at least 1, not {job.workers}")
    if job.batch_size < 1:
        raise SeqtagError(f"--batch-size must be at least 1, not {job.batch_size}")
    if job.runtime not in RUNTIMES:
        raise SeqtagError(f"unknown runtime {job.runtime!r}; choose {', '.join(RUNTIMES)}")
    if is_hub_name(job.model):  # hf://OWNER/NAME: the file from the hub's cache, once for every worker
        job = replace(job, model=download(str(job.model)))
    if job.runtime == "auto" and job.onnx is not None and not onnx_path(job).is_file():
        log.warning(f"--onnx {job.onnx}: no such file; tagging with PyTorch (create it with seqtag export)")
    model_file = _lite_model_file(job)
    header = model_file.header if model_file is not None else read_header(job.model)
    bulk = is_bulk(job)
    if header["meta"].get("task") != "tagging":  # the registry knows which predictors tag
        from seqtag.registry import task_entry
        from seqtag.tasks.tagging.predictor import TaggingPredictor

        if not issubclass(task_entry(str(header["meta"].get("task"))).predictor, TaggingPredictor):
            return _predict_other(job, header, bulk, engine, out, started)
    if job.output is None and len(inputs) > 1:
        raise SeqtagError("several inputs: name an output folder with --output DIR")
    threads = available_cores() if job.threads is None else job.threads
    if threads < job.workers:
        raise SeqtagError(f"--workers {job.workers} needs a budget of at least {job.workers} threads, not {threads} "
                          f"(--threads; the default is the {available_cores()} cores of this machine)")
    if job.device not in _CPU_DEVICES:  # a device this machine lacks: the error now, not from every worker
        from seqtag.devices import resolve_device

        resolve_device(job.device)
    for path in inputs:
        if is_stream(path):
            if bulk or len(inputs) > 1:
                raise SeqtagError(f"{display_name(path)} can be read only once: it can be the only input, without an output folder")
        elif not path.is_file():
            raise DataError("file not found" if not path.exists() else "is not a file", path)
    recipe_data = header["recipe"].get("data") or {}
    column = job.word_column if job.word_column is not None else int(recipe_data.get("word_column", 0))
    spec = WorkerSpec(str(job.model), job.runtime, None if job.onnx is None else str(job.onnx), job.device,
                      max(1, threads // job.workers), job.batch_size)
    with _folder_lock(_output_folder(job)) if bulk else contextlib.nullcontext():
        summary = _predict_tagging(job, inputs, column, header, spec, bulk, _runtime_engine(job, model_file, engine),
                                   out, on_chunk)
    summary.seconds = time.perf_counter() - started
    if bulk:
        log.info(f"tagged {summary.sentences:,} sentences, {summary.tokens:,} tokens in {summary.seconds:.1f} s "
                 f"({summary.tokens_per_second:,.0f} tokens/s): {len(summary.written)} files written, "
                 f"{len(summary.skipped)} already done")
    return summary


def onnx_path(job: PredictJob) -> Path:
    """The ONNX file of ``job``: ``job.onnx``, or the model with suffix ``.onnx``."""
    return Path(job.model).with_suffix(".onnx") if job.onnx is None else Path(job.onnx)


def may_run_without_torch(job: PredictJob, engine: str = "local") -> bool:
    """Whether ``job`` may run ONNX Runtime without PyTorch (:mod:`seqtag.tasks.tagging.lite`): asked
    for (``auto`` or ``onnx``), on the CPU, with the local engine, its ONNX file present and onnxruntime
    installed. Whether it does depends on the files (:func:`predict` checks the export and the model)."""
    return (job.runtime in ("auto", "onnx") and job.device in _CPU_DEVICES and engine == "local"
            and not is_hub_name(job.model) and onnx_path(job).is_file() and find_spec("onnxruntime") is not None)


def import_for(job: PredictJob, engine: str = "local") -> None:
    """Import the modules ``job`` runs on now: ONNX Runtime and :mod:`seqtag.tasks.tagging.lite` when it may
    run without PyTorch, else PyTorch and the task packages. ``seqtag predict`` calls it while the command's
    start-up pauses the garbage collector (:func:`seqtag.cli.entry`)."""
    if may_run_without_torch(job, engine):
        from seqtag.tasks.tagging import lite

        lite.preload()
    else:
        import seqtag.api  # noqa: F401
        import seqtag.registry  # noqa: F401


def _lite_model_file(job: PredictJob) -> ModelFile | None:
    """The model file read without PyTorch when the job may run ONNX Runtime (to check its export, and to tag
    without PyTorch); None otherwise, or when that reader does not know the file (:func:`seqtag.io.read_header`
    then reads it, or says what is wrong with it)."""
    if not may_run_without_torch(job):
        return None
    from seqtag.tasks.tagging.lite import ModelFile, Unsupported

    try:
        return ModelFile.read(job.model)
    except Unsupported as reason:
        log.debug(f"reading the model with PyTorch: {reason}")
        return None


def _runtime_engine(job: PredictJob, model_file: ModelFile | None, engine: EngineFactory | None) -> EngineFactory:
    """The factory of the job's engine. When it is called (there is something to tag), it settles the runtime:
    with a model file read without PyTorch, the ONNX file is checked against it; a matching export runs
    ONNX Runtime, without PyTorch (a :class:`LiteEngine`) for one local worker on a model that path tags
    exactly, else through PyTorch. ``auto`` runs PyTorch otherwise (with a warning for a stale export);
    ``onnx`` then goes through PyTorch, which reports what is wrong with the ONNX file."""
    made = engine or local_engine

    def make(spec: WorkerSpec, workers: int) -> Engine:
        runtime = "torch" if job.runtime == "auto" else job.runtime
        if model_file is not None:
            from seqtag.tasks.tagging import lite

            try:
                session = lite.open_export(model_file, onnx_path(job), spec.threads)
            except lite.StaleExport as error:
                if job.runtime == "auto":
                    log.warning(f"{error}; tagging with PyTorch")
            except lite.Unsupported as reason:
                log.debug(f"not running ONNX Runtime without PyTorch: {reason}")
            else:
                runtime = "onnx"
                if engine is None and workers == 1:
                    try:
                        return LiteEngine(replace(spec, runtime=runtime), lite.LiteTagger(model_file, session))
                    except lite.Unsupported as reason:
                        log.debug(f"ONNX Runtime through PyTorch: the PyTorch-free path does not do {reason}")
        return made(replace(spec, runtime=runtime), workers)

    return make


def _predict_tagging(
    job: PredictJob,
    inputs: list[Path],
    column: int,
    header: dict[str, Any],
    spec: WorkerSpec,
    bulk: bool,
    engine: EngineFactory,
    out: TextIO | None,
    on_chunk: Callable[[Path, Chunk], None] | None,
) -> Summary:
    if bulk:
        files = _plan(job, inputs, column, header)
    else:
        files = [_FileJob(inputs[0], None, _format(inputs[0], job.format), column, _documents(header))]
    summary = Summary()
    pending = [f for f in files if not f.done]
    summary.skipped = [f.output for f in files if f.done and f.output is not None]
    if pending:
        made = engine(spec, job.workers)
        failed = True
        try:
            if bulk:
                _run(pending, made, job, summary, None, on_chunk)
            elif job.output is None:
                _run(pending, made, job, summary, out if out is not None else sys.stdout, on_chunk)
            else:
                with atomic_open(job.output, "w") as handle:
                    _run(pending, made, job, summary, handle, on_chunk)
                summary.written.append(Path(job.output))
            failed = False
        except KeyboardInterrupt:
            if bulk:
                log.warning("stopped: the outputs finished so far are complete; rerun the same command to continue")
            raise
        finally:
            made.close(failed)
    return summary


def _predict_other(
    job: PredictJob, header: dict[str, Any], bulk: bool, engine: EngineFactory | None, out: TextIO | None, started: float
) -> Summary:
    """A model of another task: one input through its predictor's ``predict_file``."""
    task = header["meta"].get("task")
    if bulk or len(job.inputs) > 1 or job.workers > 1 or engine is not None:
        raise SeqtagError(f"several inputs, an output folder, --workers and --engine are for tagging models; this is a "
                          f"{task} model: give one input (and --output FILE)")
    from seqtag.api import load

    predictor = load(job.model, "torch" if job.runtime == "auto" else job.runtime, job.onnx, job.device, job.threads)
    options: dict[str, Any] = {"format": None if job.format == "auto" else job.format, "word_column": job.word_column}
    options = {name: value for name, value in options.items() if value is not None}
    summary = Summary()
    if job.output is None:
        summary.sentences = predictor.predict_file(job.inputs[0], out if out is not None else sys.stdout, job.batch_size, **options)
    else:
        with atomic_open(job.output, "w") as handle:
            summary.sentences = predictor.predict_file(job.inputs[0], handle, job.batch_size, **options)
        summary.written.append(Path(job.output))
    summary.seconds = time.perf_counter() - started
    return summary


@dataclass
class _FileJob:
    """One input of a job, where its output goes (None: a stream) and where it starts."""

    input: Path
    output: Path | None
    format: str
    word_column: int
    documents: bool = False  # the model reads document context: chunks end where documents do
    key: dict[str, Any] = field(default_factory=dict)
    start: Position = Position()
    start_bytes: int = 0
    done: bool = False

    @property
    def partial(self) -> Path:
        assert self.output is not None
        return self.output.with_name(self.output.name + PARTIAL_SUFFIX)

    @property
    def record(self) -> Path:
        assert self.output is not None
        return self.output.with_name(self.output.name + RECORD_SUFFIX)


def _documents(header: dict[str, Any]) -> bool:
    """Whether the model reads document context (then chunks should not cut documents)."""
    model = (header["recipe"].get("model") or {}) if isinstance(header["recipe"], dict) else {}
    return isinstance(model, dict) and bool(model.get("document_context"))


def _format(path: Path, format: str) -> str:
    """The input format of ``path``; a detected one is said on stderr."""
    resolved = resolve_format(path, format)
    if format == "auto":
        log.info(f"{display_name(path)}: read as {resolved} ({FORMAT_NAMES[resolved]}; detected, --format to choose)")
    return resolved


#: How messages describe the input formats.
FORMAT_NAMES = {"conll": "CoNLL columns", "tokens": "one tokenised sentence per line", "text": "raw text",
                "jsonl": "JSON lines"}


def _output_folder(job: PredictJob) -> Path:
    """The output folder of a bulk job, made if needed."""
    folder = Path(job.output)  # type: ignore[arg-type]
    if folder.exists() and not folder.is_dir():
        raise SeqtagError(f"--output {folder}: several inputs need an output folder, and this is a file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SeqtagError(f"--output {folder}: cannot make the folder ({error.strerror})") from None
    return folder


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (``LOCK_NAME`` in it, removed at the end) for a bulk job: a
    second job writing into the same folder at the same time is a SeqtagError. The operating system
    drops the lock of a process that dies, so a killed job never blocks the next."""
    path = folder / LOCK_NAME
    while True:
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115
        if fcntl is None:  # no flock (Windows): no protection against two jobs at once
            break
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip()[:20]
            handle.close()
            raise SeqtagError(f"{folder}: another seqtag predict is writing into this folder"
                              f"{f' (process {owner})' if owner else ''}; wait for it to end or stop it") from None
        try:
            current = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        handle.close()  # the job before removed the file as this one locked it: lock the new one
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    try:
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()


def _plan(job: PredictJob, inputs: list[Path], column: int, header: dict[str, Any]) -> list[_FileJob]:
    """Each input's output in the folder, and whether it is done, partly done or still to do."""
    folder = Path(job.output)  # type: ignore[arg-type]
    names: dict[str, Path] = {}
    for path in inputs:
        if path.name in names:
            raise SeqtagError(f"{names[path.name]} and {path} would both be written to {folder / path.name}; "
                              "inputs need different file names")
        names[path.name] = path
    files = []
    for path in inputs:
        output = folder / path.name
        if output.exists() and output.samefile(path):
            raise SeqtagError(f"{path}: the output would overwrite this input; choose another --output folder")
        file = _FileJob(path, output, "", column, _documents(header))
        if output.exists() and not job.overwrite:
            log.info(f"{path}: {output} exists, skipped")
            file.done = True
            file.record.unlink(missing_ok=True)  # left over when a run stopped between the rename and the clean-up
            file.partial.unlink(missing_ok=True)
            files.append(file)
            continue
        file.format = _format(path, job.format)
        stat = path.stat()
        file.key = {
            "version": RECORD_VERSION, "input": str(path.resolve()), "input_size": stat.st_size,
            "input_mtime_ns": stat.st_mtime_ns, "format": file.format, "word_column": column,
            "model_weights": header["meta"].get("weights_sha256"), "runtime": job.runtime,
            "chunk_tokens": job.chunk_tokens, "documents": file.documents,
        }
        _resume_point(file)
        files.append(file)
    return files


def _resume_point(file: _FileJob) -> None:
    """Set where ``file`` starts from its progress record, when there is one that fits the job."""
    if not file.record.exists():
        return
    reason = None
    try:
        record = json.loads(file.record.read_text(encoding="utf-8"))
        position = Position.from_json(record.get("position"))
        written = record.get("bytes")
        if not isinstance(written, int) or written < 0:
            raise ValueError("no output size")
    except (OSError, ValueError, AttributeError) as error:
        reason = f"its progress record {file.record} cannot be read ({error})"
    else:
        changed = [name for name, value in file.key.items() if record.get(name) != value]
        if changed:
            reason = "the input, model or options changed since the partial run (" + ", ".join(changed) + ")"
        elif not file.partial.exists() or file.partial.stat().st_size < written:
            reason = f"the partial output {file.partial} is missing or shorter than recorded"
    if reason is not None:
        log.warning(f"{file.input}: starting over: {reason}")
        return
    file.start, file.start_bytes = position, written
    log.info(f"{file.input}: continuing after {position.items:,} items (line {position.line:,}) of a partial run")


class _Writer:
    """The output of one input: the stream, or the partial file and its progress record."""

    def __init__(self, file: _FileJob, stream: TextIO | None) -> None:
        self.file = file
        self.stream = stream
        self.position = file.start
        self.bytes = file.start_bytes
        self.sentences = 0
        self.tokens = 0
        self.handle = None
        if stream is None:
            self.handle = open(file.partial, "r+b" if file.start != Position() else "wb")  # noqa: SIM115
            self.handle.truncate(file.start_bytes)
            self.handle.seek(file.start_bytes)

    def write(self, chunk: Chunk, result: ChunkResult) -> None:
        text = format_chunk(chunk, result)
        self.sentences += count_sentences(chunk, result)
        self.tokens += count_tokens(chunk, result)
        self.position = chunk.end
        if self.handle is None:
            self.stream.write(text)  # type: ignore[union-attr]
            return
        data = text.encode("utf-8")
        self.handle.write(data)
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.bytes += len(data)
        record = {**self.file.key, "position": self.position.to_json(), "bytes": self.bytes}
        atomic_write_text(self.file.record, json.dumps(record, indent=1) + "\n")

    def finish(self) -> None:
        if self.handle is None:
            return
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.file.partial, self.file.output)  # type: ignore[arg-type]
        self.file.record.unlink(missing_ok=True)
        _fsync_folder(self.file.partial.parent)

    def abandon(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _chunks(files: list[_FileJob], chunk_tokens: int) -> Iterator[tuple[_FileJob, Chunk | None]]:
    """Every chunk of every file still to do, then ``(file, None)`` when a file's chunks are all out."""
    for file in files:
        for chunk in read_chunks(file.input, file.format, file.word_column, chunk_tokens, file.start, file.documents):
            yield file, chunk
        yield file, None


def _run(
    files: list[_FileJob],
    engine: Engine,
    job: PredictJob,
    summary: Summary,
    stream: TextIO | None,
    on_chunk: Callable[[Path, Chunk], None] | None,
) -> None:
    """Feed the chunks of ``files`` to ``engine`` (``engine.slots`` in flight) and write them in order."""
    progress = _Progress(files, job.progress)
    source = _chunks(files, job.chunk_tokens)
    queue: deque[tuple[_FileJob, Chunk | None, Any]] = deque()
    in_flight = 0
    exhausted = False
    unreadable: SeqtagError | None = None  # raised once the work read before it is written
    writer: _Writer | None = None
    try:
        with progress:
            while True:
                while not exhausted and in_flight < engine.slots and len(queue) < 2 * engine.slots + 2:
                    try:
                        item = next(source, None)
                    except SeqtagError as error:
                        item, unreadable = None, error
                    if item is None:
                        exhausted = True
                        break
                    file, chunk = item
                    handle = None if chunk is None else engine.submit(chunk.format, chunk.inputs)
                    in_flight += chunk is not None
                    queue.append((file, chunk, handle))
                if not queue:
                    if unreadable is not None:
                        raise unreadable
                    break
                file, chunk, handle = queue.popleft()
                if writer is None or writer.file is not file:
                    writer = _Writer(file, stream)
                if chunk is None:
                    writer.finish()
                    summary.sentences += writer.sentences
                    summary.tokens += writer.tokens
                    if file.output is not None:
                        summary.written.append(file.output)
                        log.info(f"{file.input}: wrote {writer.sentences:,} sentences to {file.output}")
                    progress.file_done(file)
                    writer = None
                    continue
                result = engine.result(handle)
                in_flight -= 1
                writer.write(chunk, result)
                progress.advance(chunk.end.offset - chunk.start.offset, count_tokens(chunk, result))
                if on_chunk is not None:
                    on_chunk(file.output if file.output is not None else file.input, chunk)
    finally:
        if writer is not None:
            writer.abandon()
            if writer.file.output is not None:
                summary.sentences += writer.sentences
                summary.tokens += writer.tokens


class _Progress:
    """A progress bar (bytes read, tokens/s, ETA) on a terminal, plain lines when asked for elsewhere, or nothing."""

    def __init__(self, files: list[_FileJob], wanted: bool | None) -> None:
        terminal = sys.stderr.isatty()
        self.mode = "bar" if (wanted is None and terminal) or (wanted and terminal) else "lines" if wanted else None
        streams = any(is_stream(f.input) for f in files)
        self.total: int | None = None if streams else sum(f.input.stat().st_size for f in files)  # stdin: unknown
        self.done = self.initial = sum(f.start.offset for f in files)
        self.files = len(files)
        self.finished = 0
        self.tokens = 0
        self.started = time.perf_counter()
        self.last_line = self.started
        self.bar: tqdm | None = None
        self._redirect: Any = None

    def __enter__(self) -> _Progress:
        if self.mode == "bar":
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
            self.bar = tqdm(total=self.total, initial=self.done, unit="B", unit_scale=True, unit_divisor=1024,
                            file=sys.stderr, dynamic_ncols=True, desc=self._description())
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
        if self._redirect is not None:
            self._redirect.__exit__(*exc)

    def _description(self) -> str:
        return f"file {min(self.finished + 1, self.files)}/{self.files}" if self.files > 1 else "tagging"

    def advance(self, read: int, tokens: int) -> None:
        self.done += read
        self.tokens += tokens
        now = time.perf_counter()
        rate = self.tokens / max(now - self.started, 1e-9)
        if self.bar is not None:
            self.bar.set_postfix_str(f"{rate:,.0f} tok/s", refresh=False)
            self.bar.update(read)
        elif self.mode == "lines" and now - self.last_line >= PROGRESS_LINE_SECONDS:
            self.last_line = now
            self._line(now, rate)

    def file_done(self, file: _FileJob) -> None:
        self.finished += 1
        if self.bar is not None:
            self.bar.set_description(self._description(), refresh=False)
        elif self.mode == "lines":
            now = time.perf_counter()
            self._line(now, self.tokens / max(now - self.started, 1e-9))

    def _line(self, now: float, rate: float) -> None:
        if self.total is None:
            print(f"seqtag predict: {self.done / 2**20:,.1f} MB read, {self.tokens:,} tokens, {rate:,.0f} tokens/s",
                  file=sys.stderr, flush=True)
            return
        share = self.done / self.total if self.total else 1.0
        speed = (self.done - self.initial) / max(now - self.started, 1e-9)  # bytes/s in this run
        left = (self.total - self.done) / speed if speed > 0 else 0.0
        print(f"seqtag predict: {share:.0%} of {self.total / 2**20:,.1f} MB, file {self.finished}/{self.files} done, "
              f"{self.tokens:,} tokens, {rate:,.0f} tokens/s, ETA {_clock(left)}", file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


__all__ = [
    "Engine",
    "EngineFactory",
    "InProcessEngine",
    "PredictJob",
    "ProcessEngine",
    "Summary",
    "WorkerSpec",
    "available_cores",
    "is_bulk",
    "load_predictor",
    "local_engine",
    "predict",
]
