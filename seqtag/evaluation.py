"""Metrics of every task: entity P/R/F1 (seqeval), token accuracy, classification accuracy and macro-F1,
tree accuracies; and how the CLI shows them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

from seqtag.data.schemes import convert_tags


def span_metrics(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]], scheme: str) -> dict[str, Any]:
    """Entity precision/recall/F1 (micro and per type) with seqeval in strict mode.

    Both sides are first re-encoded in IOB2 from their spans in ``scheme``,
    so that strict mode counts exactly the spans the tags encode (as
    conlleval does for well-formed input). Figures are percentages.
    """
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    gold2 = [convert_tags(tags, scheme, "iob2") for tags in gold]
    pred2 = [convert_tags(tags, scheme, "iob2") for tags in predicted]
    report = classification_report(gold2, pred2, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    per_type = {
        label: {
            "precision": 100 * values["precision"],
            "recall": 100 * values["recall"],
            "f1": 100 * values["f1-score"],
            "support": int(values["support"]),
        }
        for label, values in report.items()
        if not label.endswith(" avg")
    }
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0})
    return {
        "precision": 100 * micro["precision"],
        "recall": 100 * micro["recall"],
        "f1": 100 * micro["f1-score"],
        "accuracy": token_accuracy(gold, predicted),
        "per_type": per_type,
    }


def token_accuracy(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Share of tokens whose tag is right, in percent."""
    total = correct = 0
    for g, p in zip(gold, predicted, strict=True):
        total += len(g)
        correct += sum(a == b for a, b in zip(g, p, strict=True))
    return 100.0 * correct / max(total, 1)


def confusion_table(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> str:
    """Token-level confusion counts as TSV: one row per gold tag, one column per predicted tag."""
    counts = Counter((g, p) for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True))
    labels = sorted({label for pair in counts for label in pair})
    lines = ["gold\\predicted\t" + "\t".join(labels)]
    for g in labels:
        lines.append(g + "\t" + "\t".join(str(counts.get((g, p), 0)) for p in labels))
    return "\n".join(lines) + "\n"


def format_report(metrics: dict[str, Any]) -> str:
    """A conlleval-like table of the metrics returned by :func:`span_metrics`."""
    if "per_type" not in metrics:
        return "\n".join(f"{key}: {value:.2f}" if isinstance(value, float) else f"{key}: {value}" for key, value in metrics.items())
    lines = [f"{'type':<16}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for label, values in sorted(metrics["per_type"].items()):
        lines.append(
            f"{label:<16}{values['precision']:>10.2f}{values['recall']:>10.2f}{values['f1']:>10.2f}{values['support']:>10}"
        )
    support = sum(v["support"] for v in metrics["per_type"].values())
    lines.append(
        f"{'micro avg':<16}{metrics['precision']:>10.2f}{metrics['recall']:>10.2f}{metrics['f1']:>10.2f}{support:>10}"
    )
    lines.append(f"token accuracy: {metrics['accuracy']:.2f}")
    return "\n".join(lines)


def classification_metrics(gold: Sequence[int], predicted: Sequence[int], class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 (mean of the per-class F1, classes absent from both sides count 0) and
    per-class precision/recall/F1/support, all in percent; labels are indices into ``class_names``."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    pairs = Counter(zip(gold, predicted, strict=True))
    per_class: dict[str, dict[str, float | int]] = {}
    f1s = []
    for c, name in enumerate(class_names):
        tp = pairs[(c, c)]
        gold_c = sum(n for (g, _), n in pairs.items() if g == c)
        pred_c = sum(n for (_, p), n in pairs.items() if p == c)
        precision = tp / pred_c if pred_c else 0.0
        recall = tp / gold_c if gold_c else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        per_class[name] = {"precision": 100 * precision, "recall": 100 * recall, "f1": 100 * f1, "support": gold_c}
    correct = sum(n for (g, p), n in pairs.items() if g == p)
    return {
        "accuracy": 100.0 * correct / max(len(gold), 1),
        "macro_f1": 100.0 * sum(f1s) / len(class_names),
        "per_class": per_class,
    }


def tree_accuracies(predicted: Sequence[torch.Tensor], gold: Sequence[torch.Tensor], roots: Sequence[int]) -> dict[str, Any]:
    """Root accuracy and all-node accuracy (percent) of trees: per tree, the predicted and gold class
    of every node ``(n_i,)`` (gold ``< 0``: unlabelled, not scored) and the root's node index."""
    root_right = node_right = nodes = 0
    for guess, truth, root in zip(predicted, gold, roots, strict=True):
        labelled = truth >= 0
        node_right += int((guess[labelled] == truth[labelled]).sum())
        nodes += int(labelled.sum())
        root_right += int(guess[root] == truth[root])
    return {
        "root_accuracy": 100.0 * root_right / max(len(roots), 1),
        "all_accuracy": 100.0 * node_right / max(nodes, 1),
        "trees": len(roots),
        "nodes": nodes,
    }


def headline(metrics: dict[str, Any]) -> str:
    """The main figures of a metrics dictionary on one line (entity F1 with P/R, else every float)."""
    if "f1" in metrics:
        return f"F1 {metrics['f1']:.2f} (precision {metrics['precision']:.2f}, recall {metrics['recall']:.2f})"
    return ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, float))
