"""seqtag: BiLSTM-CNN-CRF sequence taggers and the LSTM models around them.

The public API: :func:`load` a model file, :func:`train` from a recipe, the
predictors and result types they return, and the errors seqtag raises.
"""

from seqtag.api import load, train
from seqtag.errors import ArchiveError, DataError, RecipeError, SeqtagError
from seqtag.tasks.tagging.predictor import SequenceTagger, TaggedSentence, TaggingPredictor
from seqtag.tasks.target_sentiment.predictor import (
    SentimentPrediction,
    TargetSentimentClassifier,
    TargetSentimentPredictor,
)
from seqtag.tasks.tree_sentiment.predictor import TreePrediction, TreeSentimentPredictor
from seqtag.version import __version__

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
