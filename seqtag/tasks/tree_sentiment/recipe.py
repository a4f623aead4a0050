"""The recipe of a Tree-LSTM sentiment run (``task: tree-sentiment``), with Tai et al.'s defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from seqtag.config import MAX_SIZE, EmbeddingsConfig, Recipe, Section, TrainingConfig


class TreeDataConfig(Section):
    """Bracketed trees with a sentiment label (0-4) on every node, one tree per line."""

    dir: str = "data/sst"
    train: str = "train.txt"
    dev: str | None = "dev.txt"
    test: str | None = "test.txt"
    classes: Literal["fine", "binary"] = Field(
        "fine", description="fine: 5 classes; binary: neutral sentences dropped, 0-1 negative, 3-4 positive"
    )
    neutral_phrases: bool = Field(
        True, description="binary: train neutral phrases as a third class (else they get no loss); "
        "predictions and scores are negative/positive either way"
    )


class TreeEmbeddingsConfig(EmbeddingsConfig):
    """Word vectors, fine-tuned with their own learning-rate factor and L2."""

    lr_scale: float = Field(0.1, gt=0, description="the word table's learning rate is training.lr times this")
    update: Literal["optimizer", "sgd"] = Field(
        "optimizer", description="how the word table learns: by training.optimizer like the other weights, or by "
        "plain SGD (Tai et al.'s code: AdaGrad for the network, SGD for the word vectors)"
    )
    weight_decay: float = Field(0.0, ge=0, description="L2 on the word table (the paper: none)")


class TreeLSTMModelConfig(Section):
    """Tree-LSTM classifier (Tai et al. 2015)."""

    cell: Literal["binary", "childsum"] = Field("binary", description="binary (N-ary, N=2) or Child-Sum Tree-LSTM")
    memory: int | None = Field(
        None, ge=1, le=MAX_SIZE, description="memory size; default the paper's: 150 for binary, 168 for Child-Sum"
    )
    dropout: float = Field(0.5, ge=0, lt=1, description="on node states before the classifier")
    input_dropout: float = Field(0.0, ge=0, lt=1, description="on word vectors")

    @property
    def memory_size(self) -> int:
        return self.memory if self.memory is not None else (150 if self.cell == "binary" else 168)


class TreeTrainingConfig(TrainingConfig):
    """The trainer's settings with Tai et al.'s defaults: AdaGrad, lr 0.05, L2 1e-4, batch 25,
    loss per tree, no clipping (they apply to keys a recipe's ``training`` section leaves out)."""

    optimizer: Literal["sgd", "adam", "adamw", "adagrad"] = "adagrad"
    lr: float = Field(0.05, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(25, ge=1)
    loss_reduction: Literal["sum", "mean"] = "mean"
    clip_grad_norm: float | None = Field(None, gt=0)


class TreeSentimentRecipe(Recipe):
    task: Literal["tree-sentiment"] = "tree-sentiment"
    data: TreeDataConfig = TreeDataConfig()
    embeddings: TreeEmbeddingsConfig = TreeEmbeddingsConfig()
    model: TreeLSTMModelConfig = TreeLSTMModelConfig()
    training: TreeTrainingConfig = TreeTrainingConfig()
