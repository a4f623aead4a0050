"""seqtag: BiLSTM-CNN-CRF sequence taggers and the LSTM models around them.

The public API: :func:`load` a model file, :func:`train` from a recipe, the
predictors and result types they return, and the errors seqtag raises.

The names are imported when first used (PEP 562), so ``import seqtag`` and the
``seqtag`` command start at once; torch loads with the first model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from seqtag.errors import ArchiveError, DataError, RecipeError, SeqtagError
from seqtag.version import __version__

if TYPE_CHECKING:
    from seqtag.api import load, train
    from seqtag.tasks.tagging.predictor import SequenceTagger, TaggedSentence, TaggingPredictor
    from seqtag.tasks.target_sentiment.predictor import (
        SentimentPrediction,
        TargetSentimentClassifier,
        TargetSentimentPredictor,
    )
    from seqtag.tasks.tree_sentiment.predictor import TreePrediction, TreeSentimentPredictor

#: Where each lazily imported public name lives.
_LAZY = {
    "load": "seqtag.api",
    "train": "seqtag.api",
    "SequenceTagger": "seqtag.tasks.tagging.predictor",
    "TaggedSentence": "seqtag.tasks.tagging.predictor",
    "TaggingPredictor": "seqtag.tasks.tagging.predictor",
    "SentimentPrediction": "seqtag.tasks.target_sentiment.predictor",
    "TargetSentimentClassifier": "seqtag.tasks.target_sentiment.predictor",
    "TargetSentimentPredictor": "seqtag.tasks.target_sentiment.predictor",
    "TreePrediction": "seqtag.tasks.tree_sentiment.predictor",
    "TreeSentimentPredictor": "seqtag.tasks.tree_sentiment.predictor",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'seqtag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "ArchiveError",
    "DataError",
    "RecipeError",
    "SentimentPrediction",
    "SeqtagError",
    "SequenceTagger",
    "TaggedSentence",
    "TaggingPredictor",
    "TargetSentimentClassifier",
    "TargetSentimentPredictor",
    "TreePrediction",
    "TreeSentimentPredictor",
    "__version__",
    "load",
    "train",
]
