"""The recipe of a target-sentiment run (``task: target-sentiment``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from seqtag.config import MAX_SIZE, Section, TextRecipe
from seqtag.modules.recurrent import CellName


class TargetDataConfig(Section):
    """A target sentiment corpus: 3-line files (sentence with ``$T$``, target, polarity) in ``dir``."""

    dir: str = "data/twitter-td"
    train: str = "train.raw"
    dev: str | None = Field(None, description="dev file; without one, part of train is held out")
    test: str | None = "test.raw"
    dev_fraction: float = Field(
        0.1, ge=0, lt=1, description="share of train held out as dev when there is no dev file; 0: none, train on "
        "all of train for training.max_epochs epochs and keep the last"
    )
    dev_seed: int = Field(1, description="seed of that held-out split (fixed, so every model seed sees the same split)")


class TargetModelConfig(Section):
    """LSTM / TD-LSTM / TC-LSTM (Tang et al. 2015)."""

    architecture: Literal["lstm", "td-lstm", "tc-lstm"] = "td-lstm"
    hidden_size: int = Field(100, ge=1, le=MAX_SIZE, description="state size of each LSTM")
    cell: CellName = Field("lstm", description="recurrent cell of the LSTMs: lstm, gru, rnn, peephole, coupled, nfg, nig, nog, noaf (seqtag.modules.recurrent)")
    dropout: float = Field(0.0, ge=0, lt=1, description="on the word vectors the LSTMs read")
    output_dropout: float = Field(0.0, ge=0, lt=1, description="on the final states before the softmax layer")
    init_range: float | None = Field(
        None, gt=0, description="uniform init U(-r, r) of LSTM and softmax weights (Tang et al.: 0.003); default PyTorch's"
    )
    word_lr_scale: float = Field(1.0, gt=0, description="learning-rate factor of the fine-tuned word vectors")
    word_dropout: float = Field(0.0, ge=0, lt=1, description="probability of reading a word as <unk> during training")
    target_dropout: float = Field(
        0.0, ge=0, lt=1, description="tc-lstm: dropout on the target vector appended to every word, one mask per "
        "example (the vector is the same at every step)"
    )
    class_balance: float = Field(
        0.0, ge=0, le=1, description="exponent a of the loss's class weights (n / (k n_c))^a, n_c the class's training "
        "examples: 0 unweighted, 1 balanced (each class weighs as much in total)"
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the cross-entropy loss")
    word_update: Literal["optimizer", "sgd"] = Field(
        "optimizer", description="how the fine-tuned word vectors learn: by training.optimizer like the other weights, "
        "or by plain SGD (at training.lr times word_lr_scale)"
    )
    init_from: str | None = Field(
        None,
        description="a trained target-sentiment model file to start from (transfer learning, e.g. from another "
        "corpus): word vectors are copied by symbol, every other weight whose name and shape match is copied",
    )


class TargetSentimentRecipe(TextRecipe):
    task: Literal["target-sentiment"] = "target-sentiment"
    data: TargetDataConfig = TargetDataConfig()
    model: TargetModelConfig = TargetModelConfig()
    select_by: Literal["accuracy", "macro_f1"] = Field("accuracy", description="dev metric that picks the best epoch")
