"""seqtag: BiLSTM-CNN-CRF sequence taggers and the LSTM models around them."""

from seqtag.errors import ArchiveError, DataError, RecipeError, SeqtagError
from seqtag.predictor import SequenceTagger, TaggedSentence, load
from seqtag.target_predictor import SentimentPrediction, TargetSentimentClassifier
from seqtag.tree_predictor import TreePrediction, TreeSentimentPredictor
from seqtag.version import __version__

__all__ = [
    "ArchiveError",
    "DataError",
    "RecipeError",
    "SentimentPrediction",
    "SeqtagError",
    "SequenceTagger",
    "TaggedSentence",
    "TargetSentimentClassifier",
    "TreePrediction",
    "TreeSentimentPredictor",
    "__version__",
    "load",
    "train",
]


def train(recipe: str, overrides: list[str] | None = None, output: str | None = None, resume: str | None = None):  # type: ignore[no-untyped-def]
    """Train from a recipe file (as ``seqtag train``); returns the :class:`~seqtag.training.trainer.TrainResult`.

    ``resume`` names a run folder whose checkpoint the training continues from."""
    from seqtag.training.run import run_recipe

    return run_recipe(recipe, overrides or [], output, resume)
