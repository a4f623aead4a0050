"""The training loop, written against the :class:`~seqtag.tasks.base.Task` interface only."""

from __future__ import annotations

import json
import logging
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqtag.config import TrainingConfig
from seqtag.errors import SeqtagError, TrainingInterrupted, shorten
from seqtag.tasks.base import Task
from seqtag.training.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    optimizer_from_checkpoint,
    optimizer_to_checkpoint,
    prefixed,
    random_states,
    restore_random_states,
    save_checkpoint,
    unprefixed,
)
from seqtag.training.curves import write_curves
from seqtag.training.distributed import Processes
from seqtag.training.loggers import make_loggers
from seqtag.training.optim import learning_rate, make_optimizer

log = logging.getLogger(__name__)


class TrainingDiverged(SeqtagError):
    """The loss became NaN or infinite."""


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a generator for batch order."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` reports."""

    best_epoch: int
    best_dev: dict[str, Any] | None
    test: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    model_path: Path | None = None
    seconds: float = 0.0
    #: With ``training.refit``: the early-stopped run that chose ``best_epoch`` (its dev and test figures).
    selection: TrainResult | None = None


class WeightAverage:
    """Exponential moving average of a model's floating-point parameters.

    ``swap()`` exchanges the live weights with the averaged ones, so the
    averaged model can be evaluated and saved and the live one restored.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.average = [p.detach().clone() for p in self.parameters]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.average, [p.detach() for p in self.parameters], 1.0 - self.decay)

    @torch.no_grad()
    def swap(self) -> None:
        for live, averaged in zip(self.parameters, self.average, strict=True):
            scratch = live.detach().clone()
            live.copy_(averaged)
            averaged.copy_(scratch)


class _Loss(torch.nn.Module):
    """The task's training loss as a module's ``forward``, which DistributedDataParallel needs
    (its gradient hooks run through ``forward``); the parameters are the task's model's."""

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.model = task.model
        self.task = task  # not a module: the model is registered above

    def forward(self, batch: Any, reduction: str) -> torch.Tensor:
        return self.task.loss(batch, reduction)


AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: Seconds between redrawings of training-curves.png during a run (it is drawn at the end too).
CURVES_EVERY_SECONDS = 60.0


@dataclass
class _Progress:
    """Where a run stands; saved in checkpoints so that a resumed run continues exactly."""

    epoch: int = 0  # epochs completed
    step: int = 0  # batches completed in the current epoch
    epoch_loss: float = 0.0
    epoch_seen: int = 0
    epoch_seconds: float = 0.0
    elapsed: float = 0.0  # seconds of training before this process (resumed runs)
    best_score: float = -math.inf
    best_epoch: int = -1
    best_dev: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Trains ``task.model`` on the train split, selects the epoch with the best dev score
    (without a dev split, trains ``max_epochs`` epochs and keeps the last).

    The run folder gets ``metrics.jsonl`` (one record per epoch), ``checkpoint.zip``
    (written atomically after every epoch, every ``checkpoint_every_steps`` steps and
    every ``checkpoint_every_minutes``) and finally ``model.seqtag``. A run killed at
    any moment continues with ``fit(splits, resume=True)`` (``seqtag train --resume``)
    and ends with the same weights as an uninterrupted one. Ctrl-C finishes the current
    step, saves a checkpoint and raises :class:`TrainingInterrupted`; a NaN/inf loss
    raises :class:`TrainingDiverged` and leaves the last good checkpoint in place.

    Args:
        task: the task (data encoding, loss, evaluation, model), on its device.
        config: the recipe's ``training`` section.
        run_dir: where ``metrics.jsonl``, ``checkpoint.zip`` and ``model.seqtag`` go.
        seed: the recipe's seed.
        processes: the processes of a distributed run (see seqtag.training.distributed): each
            trains on its shard of every batch, rank 0 alone evaluates and writes files.
            Default: this process alone.
    """

    def __init__(
        self, task: Task, config: TrainingConfig, run_dir: str | Path, seed: int, processes: Processes | None = None
    ) -> None:
        self.task = task
        self.config = config
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.processes = processes or Processes(device=task.device)
        self.checkpoint_path = self.run_dir / CHECKPOINT_NAME
        self._interrupted = False
        self._loggers: list[Any] = []
        self._curves_drawn = -math.inf
        self._step: torch.nn.Module = _Loss(task)
        self._amp: torch.dtype | None = None
        self._scaler = torch.amp.GradScaler("cuda", enabled=False)

    # -- checkpoints -------------------------------------------------------------------

    def _save_checkpoint(
        self,
        progress: _Progress,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        epoch_start_generator: torch.Tensor,
        best_state: dict[str, torch.Tensor] | None,
        average: WeightAverage | None,
        started: float,
    ) -> None:
        if not self.processes.is_main:
            return
        optimizer_tensors, optimizer_meta = optimizer_to_checkpoint(optimizer)
        rng_tensors, rng_meta = random_states(generator)
        tensors = {
            # Parameters only: buffers (the frozen pretrained table, constraint penalties) never
            # change in training and are rebuilt from the recipe on --resume; this keeps the
            # checkpoint small (24 MB instead of 170 MB for CoNLL-03 with GloVe).
            **prefixed("model.", {k: v.detach() for k, v in self.task.model.named_parameters()}),
            **prefixed("optimizer.", optimizer_tensors),
            **prefixed("rng.", rng_tensors),
            **prefixed("task.", self.task.training_state()),
            "epoch_start_generator": epoch_start_generator,
        }
        if best_state is not None:
            tensors.update(prefixed("best.", best_state))
        if average is not None:
            tensors.update(prefixed("average.", {str(i): t for i, t in enumerate(average.average)}))
        state = {
            "progress": {**progress.__dict__, "elapsed": progress.elapsed + time.perf_counter() - started},
            "optimizer": optimizer_meta,
            "rng": rng_meta,
            "seed": self.seed,
        }
        if not math.isfinite(state["progress"]["best_score"]):
            state["progress"]["best_score"] = None
        save_checkpoint(self.checkpoint_path, tensors, state)

    def _load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Load parameters into the model; every parameter must be there, buffers may be
        (checkpoints of earlier versions hold them too)."""
        model = self.task.model
        missing, unexpected = model.load_state_dict(weights, strict=False)
        buffers = {name for name, _ in model.named_buffers()}
        absent = [name for name in missing if name not in buffers]
        if absent or unexpected:
            raise KeyError(f"{len(absent)} tensor(s) missing {absent[:3]}, {len(unexpected)} unexpected {unexpected[:3]}")

    def _load_checkpoint(
        self, optimizer: torch.optim.Optimizer, generator: torch.Generator, average: WeightAverage | None
    ) -> tuple[_Progress, torch.Tensor, dict[str, torch.Tensor] | None]:
        tensors, state = load_checkpoint(self.checkpoint_path)
        if state.get("seed") != self.seed:
            raise SeqtagError(f"{self.checkpoint_path}: written with seed {state.get('seed')}, the recipe says {self.seed}")
        try:
            self._load_weights(unprefixed("model.", tensors))
            optimizer_from_checkpoint(optimizer, unprefixed("optimizer.", tensors), state["optimizer"])
            self.task.restore_training_state(unprefixed("task.", tensors))
        except (RuntimeError, ValueError, KeyError) as error:
            raise SeqtagError(
                f"{self.checkpoint_path}: does not fit this recipe's model ({type(error).__name__}: {error}); "
                "resume with the recipe the run was started with"
            ) from None
        if average is not None:
            stored = unprefixed("average.", tensors)
            if len(stored) != len(average.average):
                raise SeqtagError(f"{self.checkpoint_path}: has no weight average; the run was started without training.average_decay")
            for i, tensor in enumerate(average.average):
                tensor.copy_(stored[str(i)])
        try:
            restore_random_states(generator, unprefixed("rng.", tensors), state["rng"])
            epoch_start = tensors["epoch_start_generator"]
            torch.Generator().set_state(epoch_start)  # checked now, used when the epoch is replayed
        except (RuntimeError, ValueError, TypeError, KeyError, IndexError) as error:
            raise SeqtagError(f"{self.checkpoint_path}: the checkpoint's random states are corrupted "
                              f"({type(error).__name__}: {shorten(str(error))})") from None
        progress = _Progress(**state["progress"])
        if progress.best_score is None:
            progress.best_score = -math.inf
        best_state = unprefixed("best.", tensors) or None
        return progress, epoch_start, best_state

    # -- Ctrl-C --------------------------------------------------------------------------

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        if self._interrupted:  # second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self._interrupted = True
        log.warning("interrupted: finishing the current step and saving a checkpoint (Ctrl-C again to abort at once)")

    # -- training ------------------------------------------------------------------------

    def _log_metrics(self, record: dict[str, Any]) -> None:
        """Append the epoch's record to ``metrics.jsonl`` and pass it to the loggers."""
        if not self.processes.is_main:
            return
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        for logger in self._loggers:
            logger.log_epoch(record)

    def _draw_curves(self, final: bool = False) -> None:
        """Redraw ``training-curves.png``: at most once a minute during a run, and at its end (``final``)."""
        now = time.monotonic()
        if self.processes.is_main and (final or now - self._curves_drawn >= CURVES_EVERY_SECONDS):
            write_curves(self.run_dir)
            self._curves_drawn = now

    def train_epoch(
        self,
        train: list[Any],
        progress: _Progress,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        average: WeightAverage | None = None,
        checkpoint: Callable[[], None] | None = None,
        resume_rng: Callable[[], None] | None = None,
    ) -> dict[str, float]:
        """One pass over ``train`` from batch ``progress.step`` on; returns mean loss per example and throughput.

        ``checkpoint`` is called after steps the config asks to checkpoint at; ``resume_rng``
        (resumed runs) after skipping the batches done before, to restore the random state.
        """
        from tqdm import tqdm

        config, task, model, processes = self.config, self.task, self.task.model, self.processes
        epoch = progress.epoch
        lr = learning_rate(config, epoch) if config.optimizer == "sgd" else config.lr
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        model.train()
        started = last_checkpoint = time.perf_counter()
        parameters = [p for p in model.parameters() if p.requires_grad]
        bar = tqdm(total=len(train), initial=progress.epoch_seen, desc=f"epoch {epoch + 1}", unit="sent",
                   disable=not (config.progress and processes.is_main and sys.stderr.isatty()), leave=False,
                   dynamic_ncols=True)
        every_steps = config.checkpoint_every_steps
        every_seconds = None if config.checkpoint_every_minutes is None else 60.0 * config.checkpoint_every_minutes
        batches = task.shards(train, config.batch_size, shuffle=True, generator=generator, rank=processes.rank,
                              world_size=processes.world_size)
        for done in range(progress.step):  # resumed mid-epoch: replay the batch order
            if next(batches, None) is None:
                raise SeqtagError(f"{self.checkpoint_path}: the checkpoint is at step {progress.step} of epoch {epoch + 1}, "
                                  f"but the epoch has {done} batches: it does not belong to this recipe and data")
        if resume_rng is not None:
            resume_rng()
        total = config.loss_reduction == "sum"
        for batch, share in batches:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(processes.device.type, dtype=self._amp, enabled=self._amp is not None):
                loss = self._step(batch, config.loss_reduction)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"the training loss became {value} in epoch {epoch + 1}, step {progress.step + 1}; "
                    "lower training.lr or set training.clip_grad_norm"
                )
            # Each process holds a shard of the batch and DistributedDataParallel averages the
            # gradients: weigh the shard's loss so that the average is the whole batch's gradient.
            scale = processes.world_size * ((1.0 if share else 0.0) if total else share)
            self._scaler.scale(loss if scale == 1.0 else loss * scale).backward()
            if config.clip_grad_norm is not None:
                self._scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(parameters, config.clip_grad_norm, foreach=True)
            self._scaler.step(optimizer)
            self._scaler.update()
            if average is not None:
                average.update()
            size = round(task.batch_size_of(batch) / share) if share else 0  # examples in the whole batch
            progress.epoch_loss += (value / share if total else value * size) if share else 0.0
            progress.epoch_seen += size
            progress.step += 1
            bar.update(size)
            now = time.perf_counter()
            seconds = progress.epoch_seconds + now - started
            bar.set_postfix(loss=f"{progress.epoch_loss / progress.epoch_seen:.3f}",
                            sent_s=f"{progress.epoch_seen / seconds:.0f}", refresh=False)
            due = (every_steps is not None and progress.step % every_steps == 0) or (
                every_seconds is not None and now - last_checkpoint >= every_seconds)
            interrupted = processes.any(self._interrupted)  # every process stops at the same step
            if checkpoint is not None and (due or interrupted):
                progress.epoch_seconds, started = seconds, now
                checkpoint()
                last_checkpoint = time.perf_counter()
                if interrupted:
                    raise TrainingInterrupted(
                        f"interrupted in epoch {epoch + 1} after step {progress.step}; checkpoint saved to "
                        f"{self.checkpoint_path}.\nContinue with: seqtag train --resume {self.run_dir}"
                    )
        bar.close()
        seconds = progress.epoch_seconds + time.perf_counter() - started
        return {"lr": lr, "loss": progress.epoch_loss / max(progress.epoch_seen, 1), "train_seconds": seconds,
                "sentences_per_second": progress.epoch_seen / max(seconds, 1e-9)}

    def fit(self, splits: dict[str, list[Any]], resume: bool = False, notes: dict[str, Any] | None = None) -> TrainResult:
        """Train, early-stop on dev, evaluate the best model on test, save ``model.seqtag``.

        With ``resume``, continue from the run folder's checkpoint. ``notes`` (JSON) are
        stored with the model's metrics.
        """
        handler_installed = False
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, self._on_interrupt)
            handler_installed = True
        self._loggers = make_loggers(self.config.loggers, self.run_dir, self.task.recipe.model_dump(mode="json")) \
            if self.processes.is_main else []
        try:
            return self._fit(splits, resume, notes or {})
        finally:
            # Let go of DistributedDataParallel: it holds the process group, which run() destroys
            # at the end (even when this raised and a traceback still holds the trainer).
            self._step = _Loss(self.task)
            for logger in self._loggers:
                logger.close()
            if handler_installed:
                signal.signal(signal.SIGINT, previous)

    def _decorrelate(self, progress: _Progress | None = None) -> None:
        """In a distributed run, give each process other than rank 0 its own dropout masks (a
        seed from the run's seed, its rank and where the run stands)."""
        rank = self.processes.rank
        if self.processes.distributed and rank > 0:
            where = 0 if progress is None else 100_003 * progress.epoch + progress.step + 1
            torch.manual_seed(self.seed + 7_919 * rank + 104_729 * where)

    def _setup_precision(self) -> None:
        """``training.precision``: autocast to bf16 / fp16 on CUDA (fp16 with loss scaling)."""
        device = self.processes.device
        self._amp = AUTOCAST.get(self.config.precision)
        if self._amp is not None and device.type != "cuda":
            log.warning("training.precision %s needs a CUDA device; training in fp32 on %s", self.config.precision, device)
            self._amp = None
        self._scaler = torch.amp.GradScaler("cuda", enabled=self._amp is torch.float16)

    def _fit(self, splits: dict[str, list[Any]], resume: bool, notes: dict[str, Any]) -> TrainResult:
        config, task, processes = self.config, self.task, self.processes
        main = processes.is_main
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._interrupted = False
        if config.threads:
            torch.set_num_threads(config.threads)
        generator = seed_everything(self.seed)
        self._decorrelate()
        self._setup_precision()
        optimizer = make_optimizer(task.parameter_groups(), config)
        average = WeightAverage(task.model, config.average_decay) if config.average_decay else None
        train, dev, test = splits["train"], splits.get("dev"), splits.get("test")
        metric = task.main_metric
        sign = -1.0 if task.metric_goal == "min" else 1.0  # scores are kept as "higher is better"
        best_state: dict[str, torch.Tensor] | None = None
        resume_rng = None
        if resume:
            progress, epoch_start_generator, best_state = self._load_checkpoint(optimizer, generator, average)
            if not main:
                best_state = None  # only rank 0 keeps the best weights (it saves the model)
            self._decorrelate(progress)
            if progress.step:  # mid-epoch: replay this epoch's batch order, then restore the random state
                saved_rng = (torch.get_rng_state(), generator.get_state(), random.getstate(), np.random.get_state())
                generator.set_state(epoch_start_generator)

                def resume_rng() -> None:
                    torch.set_rng_state(saved_rng[0])
                    generator.set_state(saved_rng[1])
                    random.setstate(saved_rng[2])
                    np.random.set_state(saved_rng[3])
            if main:
                with open(self.run_dir / "metrics.jsonl", "w", encoding="utf-8") as out:
                    out.writelines(json.dumps(record) + "\n" for record in progress.history)
            log.info("resuming %s after epoch %d, step %d", self.run_dir, progress.epoch, progress.step)
        else:
            progress = _Progress()
            if main:
                (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
            epoch_start_generator = generator.get_state()
        # after loading: every process starts from rank 0's weights
        self._step = processes.wrap(_Loss(task), find_unused_parameters=task.may_skip_parameters)
        if processes.distributed:
            shard = -(-config.batch_size // processes.world_size)
            log.info("distributed: %d processes on %s, global batch %d (about %d per process)",
                     processes.world_size, processes.device.type, config.batch_size, shard)
        started = time.perf_counter()

        def checkpoint() -> None:
            self._save_checkpoint(progress, optimizer, generator, epoch_start_generator, best_state, average, started)

        log.info(task.describe(splits))
        while progress.epoch < config.max_epochs:
            if config.patience is not None and progress.best_epoch > 0 and progress.epoch - progress.best_epoch >= config.patience:
                log.info("no better dev %s for %d epochs: stopping", metric, config.patience)
                break
            try:
                trained = self.train_epoch(train, progress, optimizer, generator, average, checkpoint, resume_rng)
            except TrainingDiverged as error:
                raise TrainingDiverged(f"{error}. {self._kept(best_state)}") from None
            resume_rng = None
            record: dict[str, Any] = {"epoch": progress.epoch + 1, **trained}
            if average is not None:
                average.swap()  # evaluate (and keep, if best) the averaged weights
            if main:  # the others wait for its figures
                if dev is not None:
                    record["dev"] = task.evaluate(dev, config.eval_batch_size)
                if test is not None and config.evaluate_test_each_epoch:
                    record["test"] = task.evaluate(test, config.eval_batch_size)
            record = processes.broadcast(record)
            record["elapsed_seconds"] = progress.elapsed + time.perf_counter() - started
            score = sign * record["dev"][metric] if dev is not None else float(progress.epoch + 1)  # no dev: keep the last epoch
            improved = score > progress.best_score
            if improved:
                progress.best_score, progress.best_epoch, progress.best_dev = score, progress.epoch + 1, record.get("dev")
                if main:
                    best_state = {k: v.detach().clone() for k, v in task.model.named_parameters()}
            if average is not None:
                average.swap()
            record["best_epoch"] = progress.best_epoch
            record["metric"] = metric
            self._log_metrics(record)
            self._draw_curves(final=progress.epoch + 1 >= config.max_epochs)
            progress.history.append(record)
            log.info(self._epoch_line(record, metric, improved))
            progress.epoch += 1
            progress.step, progress.epoch_loss, progress.epoch_seen, progress.epoch_seconds = 0, 0.0, 0, 0.0
            epoch_start_generator = generator.get_state()
            checkpoint()
            if processes.any(self._interrupted):
                raise TrainingInterrupted(
                    f"interrupted after epoch {progress.epoch}; checkpoint saved to {self.checkpoint_path}.\n"
                    f"Continue with: seqtag train --resume {self.run_dir}"
                )
        seconds = progress.elapsed + time.perf_counter() - started
        if progress.history:
            self._draw_curves(final=True)
        if not main:  # rank 0 evaluates and saves the best model; the others wait for it, model and all
            processes.barrier()
            return TrainResult(progress.best_epoch, progress.best_dev, None, progress.history, seconds=seconds)
        if best_state is not None:
            self._load_weights(best_state)
        final_test = task.evaluate(test, config.eval_batch_size) if test is not None else None
        seconds = progress.elapsed + time.perf_counter() - started
        result = TrainResult(progress.best_epoch, progress.best_dev, final_test, progress.history, seconds=seconds)
        metrics = {"best_epoch": progress.best_epoch, "dev": progress.best_dev, "test": final_test,
                   "epochs": len(progress.history), "seconds": seconds, "history": progress.history, **notes}
        result.model_path = task.save(self.run_dir / "model.seqtag", metrics)
        processes.barrier()
        return result

    def _kept(self, best_state: dict[str, torch.Tensor] | None) -> str:
        """After a diverged step: what is still on disk for the user."""
        if not self.checkpoint_path.exists():
            return "No checkpoint was written before it happened"
        text = f"The last good checkpoint is kept in {self.checkpoint_path}"
        if best_state is not None:
            self._load_weights(best_state)
            self.task.save(self.run_dir / "model.seqtag", {"note": "saved after the training loss diverged"})
            text += f"; the best model so far is saved as {self.run_dir / 'model.seqtag'}"
        return text

    @staticmethod
    def _epoch_line(record: dict[str, Any], metric: str, improved: bool) -> str:
        parts = [f"epoch {record['epoch']:>3}", f"loss {record['loss']:.4f}", f"lr {record['lr']:.5f}",
                 f"{record['sentences_per_second']:.0f} sent/s"]
        for split in ("dev", "test"):
            if split in record:
                parts.append(f"{split} {metric} {record[split][metric]:.2f}")
        parts.append(f"{record['elapsed_seconds']:.0f}s")
        return "  ".join(parts) + ("  *" if improved else "")
