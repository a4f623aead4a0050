"""The training loop, written against the :class:`~seqtag.tasks.base.Task` interface only."""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqtag.archive import save_model
from seqtag.errors import SeqtagError
from seqtag.recipe import TrainingConfig
from seqtag.tasks.base import Task
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


class Trainer:
    """Trains ``task.model`` on the train split, selects the epoch with the best dev score.

    Args:
        task: the task (data encoding, loss, evaluation, model).
        config: the recipe's ``training`` section.
        run_dir: where ``metrics.jsonl`` and ``model.seqtag`` go.
        seed: the recipe's seed.
    """

    def __init__(self, task: Task, config: TrainingConfig, run_dir: str | Path, seed: int) -> None:
        self.task = task
        self.config = config
        self.run_dir = Path(run_dir)
        self.seed = seed

    def _log_metrics(self, record: dict[str, Any]) -> None:
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")

    def train_epoch(
        self,
        train: list[Any],
        epoch: int,
        optimizer: torch.optim.Optimizer,
        generator: torch.Generator,
        average: WeightAverage | None = None,
    ) -> dict[str, float]:
        """One pass over ``train``; returns mean loss per example and throughput."""
        from tqdm import tqdm

        config, task, model = self.config, self.task, self.task.model
        lr = learning_rate(config, epoch) if config.optimizer == "sgd" else config.lr
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        model.train()
        total_loss, seen, started = 0.0, 0, time.perf_counter()
        parameters = [p for p in model.parameters() if p.requires_grad]
        bar = tqdm(total=len(train), desc=f"epoch {epoch + 1}", unit="sent", disable=not config.progress, leave=False, dynamic_ncols=True)
        for batch in task.batches(train, config.batch_size, shuffle=True, generator=generator):
            optimizer.zero_grad(set_to_none=True)
            loss = task.loss(batch, config.loss_reduction)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingDiverged(
                    f"the training loss became {value} in epoch {epoch + 1}; lower training.lr or set training.clip_grad_norm"
                )
            loss.backward()
            if config.clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(parameters, config.clip_grad_norm)
            optimizer.step()
            if average is not None:
                average.update()
            size = task.batch_size_of(batch)
            total_loss += value if config.loss_reduction == "sum" else value * size
            seen += size
            bar.update(size)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}", sent_s=f"{seen / (time.perf_counter() - started):.0f}", refresh=False)
        bar.close()
        seconds = time.perf_counter() - started
        return {"lr": lr, "loss": total_loss / max(seen, 1), "train_seconds": seconds, "sentences_per_second": seen / seconds}

    def fit(self, splits: dict[str, list[Any]]) -> TrainResult:
        """Train, early-stop on dev, evaluate the best model on test, save ``model.seqtag``."""
        config, task = self.config, self.task
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "metrics.jsonl").unlink(missing_ok=True)
        if config.threads:
            torch.set_num_threads(config.threads)
        generator = seed_everything(self.seed)
        optimizer = make_optimizer(task.parameter_groups(), config)
        average = WeightAverage(task.model, config.average_decay) if config.average_decay else None
        train, dev, test = splits["train"], splits.get("dev"), splits.get("test")
        metric = task.main_metric
        best_score, best_epoch, best_state, best_dev = -math.inf, -1, None, None
        history: list[dict[str, Any]] = []
        started = time.perf_counter()
        log.info(task.describe(splits))
        for epoch in range(config.max_epochs):
            record: dict[str, Any] = {"epoch": epoch + 1, **self.train_epoch(train, epoch, optimizer, generator, average)}
            if average is not None:
                average.swap()  # evaluate (and keep, if best) the averaged weights
            if dev is not None:
                record["dev"] = task.evaluate(dev, config.eval_batch_size)
            if test is not None and config.evaluate_test_each_epoch:
                record["test"] = task.evaluate(test, config.eval_batch_size)
            record["elapsed_seconds"] = time.perf_counter() - started
            score = record["dev"][metric] if dev is not None else -record["loss"]
            improved = score > best_score
            if improved:
                best_score, best_epoch, best_dev = score, epoch + 1, record.get("dev")
                best_state = {k: v.detach().clone() for k, v in task.model.state_dict().items()}
            if average is not None:
                average.swap()
            record["best_epoch"] = best_epoch
            self._log_metrics(record)
            history.append(record)
            log.info(self._epoch_line(record, metric, improved))
            if config.patience is not None and epoch + 1 - best_epoch >= config.patience:
                log.info("no better dev %s for %d epochs: stopping", metric, config.patience)
                break
        if best_state is not None:
            task.model.load_state_dict(best_state)
        final_test = task.evaluate(test, config.eval_batch_size) if test is not None else None
        result = TrainResult(best_epoch, best_dev, final_test, history, seconds=time.perf_counter() - started)
        metrics = {"best_epoch": best_epoch, "dev": best_dev, "test": final_test, "epochs": len(history),
                   "seconds": result.seconds, "history": history}
        result.model_path = save_model(task, self.run_dir / "model.seqtag", metrics)
        return result

    @staticmethod
    def _epoch_line(record: dict[str, Any], metric: str, improved: bool) -> str:
        parts = [f"epoch {record['epoch']:>3}", f"loss {record['loss']:.4f}", f"lr {record['lr']:.5f}",
                 f"{record['sentences_per_second']:.0f} sent/s"]
        for split in ("dev", "test"):
            if split in record:
                parts.append(f"{split} {metric} {record[split][metric]:.2f}")
        parts.append(f"{record['elapsed_seconds']:.0f}s")
        return "  ".join(parts) + ("  *" if improved else "")
