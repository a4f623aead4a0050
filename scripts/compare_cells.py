#!/usr/bin/env python
"""A Greff-style comparison of recurrent cells on a real tagging task: one training per (cell, seed).

    python scripts/compare_cells.py recipes/conll03.yaml --cells lstm gru peephole coupled nfg nig nog noaf rnn \\
        --seeds 1 2 --set data.dir=../shared/data/conll03 --out runs/cells-conll03

Each run is ``seqtag train RECIPE --set model.encoder.cell=CELL --set seed=SEED`` in its own folder
``OUT/CELL-sSEED`` (a finished run is read, not trained again, so the command can be rerun to
continue). The table (``OUT/cells.md``, and ``OUT/cells.json``) gives per cell the test score's mean
and standard deviation over seeds, the dev score, the epochs, the training speed (sentences/s) and
the training time relative to ``lstm`` (the issue asks custom cells to stay under 3 times).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def run_one(recipe: str, cell: str, seed: int, overrides: list[str], folder: Path) -> dict:
    """Train one (cell, seed) into ``folder`` unless it holds a finished run; its figures."""
    model = folder / "model.seqtag"
    if not model.is_file():
        command = [sys.executable, "-m", "seqtag.cli", "train", recipe, "-o", str(folder), "--force",
                   "--set", f"model.encoder.cell={cell}", "--set", f"seed={seed}", "--set", "training.progress=false"]
        for item in overrides:
            command += ["--set", item]
        print(" ".join(command), file=sys.stderr, flush=True)
        subprocess.run(command, check=True)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if line]
    metric = records[-1].get("metric", "f1")
    best = max((r for r in records if isinstance(r.get("dev"), dict)), key=lambda r: r["dev"][metric], default=records[-1])
    stored = json.loads(subprocess.run([sys.executable, "-m", "seqtag.cli", "info", str(model), "--json"],
                                       capture_output=True, text=True, check=True).stdout)["metrics"]
    speeds = [r["sentences_per_second"] for r in records if r.get("sentences_per_second")]
    return {"cell": cell, "seed": seed, "metric": metric, "test": (stored.get("test") or {}).get(metric),
            "dev": (stored.get("dev") or {}).get(metric), "best_epoch": best.get("epoch"), "epochs": len(records),
            "seconds": records[-1].get("elapsed_seconds"), "sentences_per_second": statistics.median(speeds) if speeds else None}


def table(results: list[dict]) -> str:
    """Markdown: per cell, test mean +- sd over seeds, dev mean, epochs, speed, and the training time
    relative to ``lstm`` (its median sentences/s over the cell's), when lstm was run."""
    def speed_of(rows: list[dict]) -> float:
        speeds = [r["sentences_per_second"] for r in rows if r["sentences_per_second"]]
        return statistics.median(speeds) if speeds else 0.0

    lstm = speed_of([r for r in results if r["cell"] == "lstm" and r["test"] is not None])
    lines = ["| cell | seeds | test mean | test sd | dev mean | best epochs | sentences/s (median) | time / lstm |",
             "|---|---|---|---|---|---|---|---|"]
    for cell in dict.fromkeys(r["cell"] for r in results):
        rows = [r for r in results if r["cell"] == cell and r["test"] is not None]
        if not rows:
            lines.append(f"| {cell} | 0 | - | - | - | - | - | - |")
            continue
        tests, devs = [r["test"] for r in rows], [r["dev"] for r in rows if r["dev"] is not None]
        sd = f"{statistics.stdev(tests):.2f}" if len(tests) > 1 else "-"
        speed = speed_of(rows)
        relative = f"{lstm / speed:.2f}" if lstm and speed else "-"
        lines.append(f"| {cell} | {len(rows)} | {statistics.mean(tests):.2f} | {sd} | {statistics.mean(devs):.2f} | "
                     f"{', '.join(str(r['best_epoch']) for r in rows)} | {speed:,.0f} | {relative} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe")
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru", "peephole", "coupled", "nfg", "nig", "nog", "noaf", "rnn"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override (repeatable)")
    parser.add_argument("--out", required=True, help="folder for the runs and the table")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = [run_one(args.recipe, cell, seed, args.set, out / f"{cell}-s{seed}") for cell in args.cells for seed in args.seeds]
    (out / "cells.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (out / "cells.md").write_text(table(results), encoding="utf-8")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
