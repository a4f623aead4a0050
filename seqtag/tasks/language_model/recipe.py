"""The recipe of a language-model run (``task: language_model``): character or word level, forward and/or backward."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from seqtag.config import MAX_LAYERS, MAX_SIZE, Recipe, Section, TrainingConfig
from seqtag.modules.recurrent import CellName

#: Truncated-BPTT window by level when ``training.bptt`` is not set.
DEFAULT_BPTT = {"char": 100, "word": 35}


class LMDataConfig(Section):
    """Plain text: UTF-8 files in ``dir`` (one line of text per line), the word column of CoNLL files, or a
    ``datasets`` source (hub, disk, json/csv/parquet files) with a text field."""

    format: Literal["text", "conll", "json", "csv", "parquet"] = Field(
        "text", description="text: plain UTF-8 files, each line a line of text; conll: column files whose "
        "data.word_column is read, a sentence per line (tokens joined by spaces); json, csv, parquet: files read "
        "through the datasets library, data.text_field of each row a line"
    )
    dir: str = Field(".", description="folder of the files; a relative folder is looked up in the working directory, "
                     "then beside the recipe")
    train: str | list[str] = Field("train.txt", description="training file, or a list of files read one after another")
    dev: str | list[str] | None = Field("valid.txt", description="dev file(s): the epoch with the lowest dev "
                                        "perplexity / bits per character is kept; null: train max_epochs, keep the last")
    test: str | list[str] | None = Field("test.txt", description="test file(s), scored after training; null: none")
    word_column: int = Field(0, description="format conll: the token column (negative counts from the end)")
    hub: str | None = Field(None, description="Hugging Face hub dataset name (needs network access)")
    config: str | None = Field(None, description="hub dataset configuration")
    revision: str | None = Field(None, description="hub revision, e.g. refs/convert/parquet")
    disk: str | None = Field(None, description="folder of a dataset saved with save_to_disk")
    text_field: str = Field("text", description="the text field of a datasets source")

    @field_validator("train", "dev", "test")
    @classmethod
    def _files(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not value:
            raise ValueError("an empty list of files")
        return value

    def uses_datasets(self) -> bool:
        """Whether the text is read through the ``datasets`` library."""
        return bool(self.hub or self.disk or self.format in ("json", "csv", "parquet"))


class LMModelConfig(Section):
    """A recurrent language model: embeddings, dropout, stacked cells, softmax (optionally tied)."""

    level: Literal["char", "word"] = Field(
        "char", description="char: the text as a stream of characters, lines ended by a newline (metric: bits per "
        "character); word: whitespace tokens, each line ended by <eos> (metric: perplexity)"
    )
    direction: Literal["forward", "backward", "both"] = Field(
        "forward", description="forward (predict the next symbol), backward (the previous one, reading right to "
        "left) or both: two language models trained side by side (as flair's contextual embeddings need)"
    )
    cell: CellName = Field("lstm", description="recurrent cell: lstm, gru, rnn, peephole, coupled, nfg, nig, nog, noaf "
                           "(seqtag.modules.recurrent)")
    embedding_dim: int = Field(64, ge=1, le=MAX_SIZE, description="size of the symbol embeddings")
    hidden_size: int = Field(256, ge=1, le=MAX_SIZE, description="state size of each recurrent layer")
    num_layers: int = Field(1, ge=1, le=MAX_LAYERS, description="stacked recurrent layers")
    dropout: float = Field(0.1, ge=0, lt=1, description="on the embeddings, between layers and on the outputs")
    tie_weights: bool = Field(False, description="the softmax layer shares the embedding matrix (Press & Wolf 2017); "
                              "needs hidden_size == embedding_dim")
    min_count: int = Field(1, ge=1, description="symbols seen fewer times in train are <unk>")
    max_vocab: int | None = Field(None, ge=1, description="keep at most this many of the most frequent symbols "
                                  "(besides <pad>, <unk> and the line separator); null: all")

    @model_validator(mode="after")
    def _tied(self) -> "LMModelConfig":
        if self.tie_weights and self.hidden_size != self.embedding_dim:
            raise ValueError(f"tie_weights needs hidden_size == embedding_dim (here {self.hidden_size} and "
                             f"{self.embedding_dim})")
        return self


class LMTrainingConfig(TrainingConfig):
    """The trainer's settings with a language model's defaults (Adam, mean loss per symbol) and
    truncated back-propagation through time: ``batch_size`` is the number of parallel streams."""

    optimizer: Literal["sgd", "adam", "adamw", "adagrad"] = "adam"
    lr: float = Field(0.002, gt=0)
    batch_size: int = Field(32, ge=1, description="parallel streams: the text is cut into this many contiguous "
                            "parts, read side by side, a window of bptt symbols per step")
    loss_reduction: Literal["sum", "mean"] = "mean"
    eval_batch_size: int = Field(256, ge=1, description="not used by language models: training.eval_streams decides "
                                 "how dev and test are read")
    max_epochs: int = Field(20, ge=1)
    patience: int | None = Field(3, ge=1, description="stop after this many epochs without a lower dev "
                                 "perplexity / bits per character")
    bptt: int | None = Field(None, ge=1, le=100_000, description="truncated back-propagation through time: symbols "
                             "per window (the state is carried from window to window, the gradient is not); "
                             "null: 100 for characters, 35 for words")
    eval_streams: int = Field(10, ge=1, description="parallel streams when scoring dev and test, at most one per bptt "
                              "symbols (each starts from a zero state, so fewer streams score a little better)")


class LanguageModelRecipe(Recipe):
    task: Literal["language_model"] = "language_model"
    data: LMDataConfig = LMDataConfig()
    model: LMModelConfig = LMModelConfig()
    training: LMTrainingConfig = LMTrainingConfig()
    # A language model learns its own symbol vectors (model.embedding_dim): no embeddings section.
    embeddings: SkipJsonSchema[None] = Field(None, exclude=True)  # type: ignore[assignment]

    @field_validator("embeddings", mode="before")
    @classmethod
    def _no_embeddings(cls, value: Any) -> None:
        if value is not None:
            raise ValueError("a language model has no embeddings section: its symbol vectors are model.embedding_dim")
        return None

    @property
    def bptt(self) -> int:
        """The truncated-BPTT window (``training.bptt`` or the level's default)."""
        return self.training.bptt or DEFAULT_BPTT[self.model.level]

    def problems(self) -> list[str]:
        return [*super().problems(), *self.source_problems()]
