#!/usr/bin/env python
"""Throughput of the Tree-LSTM sentiment models on the Stanford Sentiment Treebank.

Builds the task of a recipe (default ``recipes/sst-treelstm.yaml``) and measures

* training: trees/s over the first ``--train-trees`` training trees (the trainer's
  step: forward, all-node loss, backward, AdaGrad update) in the recipe's shuffled,
  size-bucketed batches, after a warm-up on ``--warmup`` other trees;
* prediction: trees/s classifying every node of the whole test set
  (``predict_probabilities``: batching, level-wise forward, softmax).

for each cell, thread count and batch size asked for. The weights are freshly
initialised: speed does not depend on them.

    python scripts/bench_trees.py --data ../shared/data/sst --threads 1 --batch-sizes 25 --cells binary,childsum

Prints a table and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(recipe_path: Path, data: str, cell: str, threads: int, batch_size: int, train_trees: int, warmup: int,
            eval_batch_size: int) -> dict[str, float | int | str]:
    """One configuration: train and predict trees/s."""
    import torch

    from seqtag.registry import load_recipe
    from seqtag.tasks.tree_sentiment.task import TreeSentimentTask
    from seqtag.training.optim import make_optimizer
    from seqtag.training.trainer import seed_everything

    torch.set_num_threads(threads)
    recipe = load_recipe(recipe_path, [f"data.dir={data}", f"model.cell={cell}", f"training.batch_size={batch_size}"])
    seed_everything(recipe.seed)
    task, splits = TreeSentimentTask.from_recipe(recipe)
    optimizer = make_optimizer(task.parameter_groups(), recipe.training)
    generator = torch.Generator().manual_seed(recipe.seed)

    def train(trees: list) -> float:
        task.model.train()
        started = time.perf_counter()
        for batch in task.batches(trees, batch_size, shuffle=True, generator=generator):
            optimizer.zero_grad(set_to_none=True)
            task.loss(batch, recipe.training.loss_reduction).backward()
            optimizer.step()
        return time.perf_counter() - started

    train_split = splits["train"]
    train(train_split[train_trees : train_trees + warmup])
    seconds = train(train_split[:train_trees])
    test = splits["test"]
    structures = [task.encode(t, with_labels=False) for t in test]
    task.predict_probabilities(structures[:200], eval_batch_size)  # warm-up
    started = time.perf_counter()
    structures = [task.encode(t, with_labels=False) for t in test]  # encoding counts: it is part of predicting
    task.predict_probabilities(structures, eval_batch_size)
    predict_seconds = time.perf_counter() - started
    return {
        "cell": cell, "threads": threads, "batch_size": batch_size, "memory": recipe.model.memory_size,
        "train_trees": min(train_trees, len(train_split)), "train_trees_per_second": min(train_trees, len(train_split)) / seconds,
        "predict_trees": len(test), "predict_batch_size": eval_batch_size, "predict_trees_per_second": len(test) / predict_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "sst-treelstm.yaml"))
    parser.add_argument("--data", default="../shared/data/sst", help="folder with train.txt / dev.txt / test.txt")
    parser.add_argument("--cells", default="binary", help="comma-separated: binary, childsum")
    parser.add_argument("--threads", default="1", help="comma-separated thread counts")
    parser.add_argument("--batch-sizes", default="25", help="comma-separated training batch sizes")
    parser.add_argument("--eval-batch-size", type=int, default=256)
    parser.add_argument("--train-trees", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    logging_off()
    results = []
    for cell in args.cells.split(","):
        for threads in map(int, args.threads.split(",")):
            for batch_size in map(int, args.batch_sizes.split(",")):
                result = measure(Path(args.recipe), args.data, cell, threads, batch_size, args.train_trees, args.warmup,
                                 args.eval_batch_size)
                results.append(result)
                print(f"{cell:>8}  memory {result['memory']:>3}  threads {threads}  batch {batch_size:>3}  "
                      f"train {result['train_trees_per_second']:7.0f} trees/s  "
                      f"predict (batch {args.eval_batch_size}) {result['predict_trees_per_second']:7.0f} trees/s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


def logging_off() -> None:
    import logging

    logging.basicConfig(level=logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
