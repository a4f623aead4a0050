"""Pictures of training runs: ``training-curves.png`` in every run folder, and ``seqtag plot`` to overlay runs.

The figures come from the run folder's ``metrics.jsonl`` (one record per epoch), so
they can be drawn again at any time, for a run still going or long finished.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seqtag.errors import DataError
from seqtag.io import atomic_open

CURVES_NAME = "training-curves.png"


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The epoch records of a run folder's ``metrics.jsonl``; DataError naming the line of a broken one."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise DataError("no metrics.jsonl here: not a seqtag run folder, or no epoch finished yet", run_dir)
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise DataError("not a JSON record", path, number) from None
        if not isinstance(record, dict) or "epoch" not in record:
            raise DataError("not an epoch record", path, number)
        records.append(record)
    return records


def main_metric(records: Sequence[dict[str, Any]]) -> str | None:
    """The metric the run selected epochs by (stored in each record; older runs: the first float
    of the dev figures, preferring ``f1``)."""
    for record in records:
        if record.get("metric"):
            return str(record["metric"])
    for record in records:
        figures = record.get("dev") or record.get("test") or {}
        if "f1" in figures:
            return "f1"
        floats = [k for k, v in figures.items() if isinstance(v, float)]
        if floats:
            return floats[0]
    return None


def plot_runs(run_dirs: Sequence[str | Path], output: str | Path, labels: Sequence[str] | None = None) -> Path:
    """Draw the curves of one or more runs into ``output`` (PNG): loss, the dev and test metric,
    learning rate and throughput per epoch, one colour per run."""
    # matplotlib is imported here, not with the module (it takes a second), and drawn on an Agg
    # canvas of its own: no display is needed, and a caller's pyplot backend is left alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    runs = [(Path(d), read_history(d)) for d in run_dirs]
    names = list(labels) if labels is not None else [d.name or str(d) for d, _ in runs]
    figure = Figure(figsize=(11, 7.5))
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 2)
    panels = {"loss": axes[0][0], "metric": axes[0][1], "lr": axes[1][0], "speed": axes[1][1]}
    metric = None
    for (_folder, records), name in zip(runs, names, strict=True):
        metric = metric or main_metric(records)
        epochs = [r["epoch"] for r in records]
        line = panels["loss"].plot(epochs, [r.get("loss") for r in records], marker=".", label=name)[0]
        colour = line.get_color()
        for split, style in (("dev", "-"), ("test", ":")):
            values = [(r["epoch"], r[split].get(metric)) for r in records if isinstance(r.get(split), dict) and metric]
            if values:
                panels["metric"].plot(*zip(*values, strict=True), style, marker=".", color=colour, label=f"{name} {split}")
        best = [r for r in records if r.get("best_epoch") == r["epoch"]]
        if best and metric and isinstance(best[-1].get("dev"), dict):
            panels["metric"].plot([best[-1]["epoch"]], [best[-1]["dev"].get(metric)], "*", color=colour, markersize=12)
        panels["lr"].plot(epochs, [r.get("lr") for r in records], marker=".", color=colour, label=name)
        panels["speed"].plot(epochs, [r.get("sentences_per_second") for r in records], marker=".", color=colour,
                             label=name)
    titles = {"loss": "training loss (per example)", "metric": f"{metric or 'metric'} (dev solid, test dotted; * best)",
              "lr": "learning rate", "speed": "training speed (examples/s)"}
    for key, axis in panels.items():
        axis.set_title(titles[key])
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        if axis.has_data():
            axis.legend(fontsize="small")
    figure.suptitle(", ".join(names) if len(names) <= 3 else f"{len(names)} runs")
    figure.tight_layout()
    output = Path(output)
    with atomic_open(output, "wb") as out:
        figure.savefig(out, format="png", dpi=90)
    return output


def write_curves(run_dir: str | Path) -> Path:
    """``training-curves.png`` of one run folder, drawn from its ``metrics.jsonl``."""
    run_dir = Path(run_dir)
    return plot_runs([run_dir], run_dir / CURVES_NAME, labels=[run_dir.name])
