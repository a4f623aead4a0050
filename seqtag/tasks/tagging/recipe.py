"""The recipe of a tagging run (``task: tagging``): its ``data``, ``tokenizer``, ``embeddings`` and ``model`` sections."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from seqtag.config import MAX_LAYERS, MAX_SIZE, MAX_WINDOW, EmbeddingsConfig, Recipe, Section, TextRecipe
from seqtag.data.schemes import SCHEMES, normalize_scheme
from seqtag.modules.recurrent import CellName


class CharConfig(Section):
    """Character encoder of each word."""

    encoder: Literal["cnn", "intnet", "lstm", "none"] = Field(
        "cnn", description="cnn (Ma & Hovy), intnet (a wide densely connected funnel CNN, Xin et al. 2018), "
        "lstm (a character BiRNN, Lample et al.) or none")
    dim: int = Field(30, ge=1, le=MAX_SIZE)
    filters: int = Field(30, ge=1, le=MAX_SIZE)
    kernel_size: int = Field(3, ge=1, le=MAX_WINDOW)
    blocks: int = Field(2, ge=1, le=MAX_LAYERS, description="funnel blocks of the intnet encoder")
    widths: list[Annotated[int, Field(ge=1, le=MAX_WINDOW)]] = Field(default_factory=lambda: [3, 5], min_length=1, max_length=8,
                              description="odd convolution widths of each intnet block")
    hidden_size: int = Field(25, ge=1, le=MAX_SIZE)
    dropout: float = Field(0.5, ge=0, lt=1)
    cell: CellName = Field("lstm", description="recurrent cell of the character BiRNN (encoder: lstm): any recurrent cell, e.g. lstm or gru")


class CharLMConfig(Section):
    """A character language model trained jointly with the tagger (LM-LSTM-CRF, Liu et al. 2018): forward
    and backward character LSTMs over the sentence (with its document context), whose states at each
    word's boundaries reach the tagger through highway layers, with their next-character loss added to
    the tagger's."""

    hidden_size: int = Field(0, ge=0, le=MAX_SIZE, description="state size of each direction; 0 turns it off")
    embedding_dim: int = Field(30, ge=1, le=MAX_SIZE, description="size of the character embeddings")
    cell: CellName = Field("lstm", description="recurrent cell of both language models")
    dropout: float = Field(0.5, ge=0, lt=1, description="on the character embeddings and the states")
    highway_layers: int = Field(1, ge=0, le=MAX_LAYERS, description="highway layers between the language "
                                "models' states and the tagger (0: the states as they are)")
    loss_weight: float = Field(1.0, ge=0, le=100, description="weight of the mean per-character language-model "
                               "loss of a sentence (both directions) against its tagging loss")


class RNNConfig(Section):
    """The sentence encoder: a stacked bidirectional RNN."""

    cell: CellName = Field("lstm", description="recurrent cell: lstm, gru, rnn, peephole, coupled, nfg, nig, nog, noaf (seqtag.modules.recurrent)")
    hidden_size: int = Field(200, ge=1, le=MAX_SIZE, description="per direction")
    num_layers: int = Field(1, ge=1, le=MAX_LAYERS)
    dropout: float = Field(0.5, ge=0, lt=1, description="between stacked layers")


class CRFConfig(Section):
    backend: Literal["seqtag", "pytorch-crf"] = "seqtag"
    constrained: bool = True


#: The most ``model.document_context`` tokens on each side of a sentence.
MAX_CONTEXT = 512


class TaggerModelConfig(Section):
    """BiLSTM-CNN-CRF tagger (Ma & Hovy 2016)."""

    tag_scheme: str = Field("iobes", description="scheme the model is trained in; predictions are converted back")
    char: CharConfig = CharConfig()
    casing_dim: int = Field(0, ge=0, le=MAX_SIZE, description="size of casing-feature embeddings; 0 turns them off")
    feature_dim: int = Field(20, ge=1, le=MAX_SIZE, description="size of the embedding of each data.feature_columns column")
    encoder: RNNConfig = RNNConfig()
    dropout: float = Field(0.5, ge=0, lt=1, description="on the word representation and the encoder output")
    word_dropout: float = Field(
        0.0, ge=0, lt=1, description="probability of replacing a singleton word that has no pretrained vector by <unk>"
    )
    document_context: int = Field(
        0, ge=0, le=MAX_CONTEXT, description="tokens of the neighbouring sentences of the same document (CoNLL: "
        "between -DOCSTART- lines; raw text: one paragraph or tag() call; spaCy: one Doc) read by the encoder on "
        "each side of a sentence, which alone is tagged (0: each sentence alone)"
    )
    locked_dropout: bool = Field(False, description="dropout on the encoder's input and output with one mask per "
                                 "sentence and feature for all time steps (variational dropout)")
    global_vector: Literal["none", "max", "mean"] = Field(
        "none", description="a vector of the whole encoded input (the sentence with its document context), "
        "max- or mean-pooled over the encoder's outputs, concatenated to every token's before the output layer "
        "(after GCDT, Liu et al. 2019)")
    char_lm: CharLMConfig = CharLMConfig()
    decoder: Literal["crf", "softmax"] = "crf"
    crf: CRFConfig = CRFConfig()
    init_from: str | None = Field(
        None,
        description="a trained seqtag tagger (model file) to start from (transfer learning): its word and character "
        "vectors are copied by symbol, every other weight whose name and shape match is copied; the output layer "
        "and CRF start fresh unless both corpora have the same tags",
    )

    @field_validator("tag_scheme")
    @classmethod
    def _scheme(cls, value: str) -> str:
        return normalize_scheme(value)


class ConllDataConfig(Section):
    """A tagging corpus: CoNLL-style files in ``dir``, or a ``datasets`` source (hub, disk, json/csv/parquet)."""

    format: Literal["conll", "json", "csv", "parquet"] = "conll"
    hub: str | None = Field(None, description="Hugging Face hub dataset name (needs network access)")
    config: str | None = Field(None, description="hub dataset configuration")
    revision: str | None = Field(None, description="hub revision, e.g. refs/convert/parquet")
    disk: str | None = Field(None, description="folder of a dataset saved with save_to_disk")
    tokens_field: str = "tokens"
    tags_field: str = "ner_tags"
    tag_names: list[str] | None = Field(None, description="names of integer tags when the dataset has no ClassLabel")
    dir: str = "."
    train: str | list[str] = Field("train.txt", description="training file, or a list of files read one after another "
                                   "(e.g. [train.conll, dev.conll] to train on both; then set dev: null)")
    dev: str | list[str] | None = "valid.txt"
    test: str | list[str] | None = "test.txt"
    word_column: int = 0
    label_column: int = -1
    feature_columns: list[int] = Field(
        default_factory=list,
        description="more input columns (e.g. the POS column for chunking), each embedded with model.feature_dim; "
        "the model then needs them at prediction time too (CoNLL input, not raw text)",
    )
    scheme: str = Field("auto", description=f"scheme of the corpus tags: auto or one of {', '.join(SCHEMES)}")

    @field_validator("scheme")
    @classmethod
    def _scheme(cls, value: str) -> str:
        return value if value == "auto" else normalize_scheme(value)

    @field_validator("train", "dev", "test")
    @classmethod
    def _files(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not value:
            raise ValueError("an empty list of files")
        return value




class TaggingEmbeddingsConfig(EmbeddingsConfig):
    """Word vectors, and optionally contextual ones from a trained language model."""

    contextual: str | None = Field(
        None, description="a trained seqtag language model (task: language_model, model file) whose states are "
        "concatenated to each word's representation, flair-style: the forward state after the word's last "
        "character and the backward state before its first (a character model reads the sentence's tokens joined "
        "by spaces); its weights are copied into the tagger's model file"
    )
    contextual_trainable: bool = Field(False, description="fine-tune the language model with the tagger (default: "
                                       "frozen, no gradient, no dropout)")

    def problems(self, recipe: Recipe) -> list[str]:
        found = super().problems(recipe)
        if self.contextual is not None:
            path = recipe.resolve_path(self.contextual)
            if path is None or not path.is_file():
                found.append(f"embeddings.contextual: no model file {self.contextual}; train the language model first "
                             "(seqtag train recipes/lm-char-corpora.yaml) or set embeddings.contextual=null")
        return found


class TaggingRecipe(TextRecipe):
    task: Literal["tagging"] = "tagging"
    data: ConllDataConfig = ConllDataConfig()
    model: TaggerModelConfig = TaggerModelConfig()
    embeddings: TaggingEmbeddingsConfig = TaggingEmbeddingsConfig()

    def problems(self) -> list[str]:
        found = [*super().problems(), *self.source_problems()]
        data = self.data
        if not (data.hub or data.disk):
            if data.format == "conll" and data.word_column == data.label_column:
                found.append("data.label_column: the same column as data.word_column")
            for column in data.feature_columns:
                if column in (data.word_column, data.label_column):
                    found.append(f"data.feature_columns: column {column} is the word or label column")
        if data.feature_columns and (data.hub or data.disk or data.format != "conll"):
            found.append("data.feature_columns: only CoNLL files have feature columns")
        found.extend(self.embeddings.problems(self))
        if self.model.char_lm.hidden_size and self.embeddings.contextual:
            found.append("model.char_lm and embeddings.contextual: a tagger has one language model; set "
                         "model.char_lm.hidden_size=0 or embeddings.contextual=null")
        char = self.model.char
        if char.encoder == "intnet" and any(width % 2 == 0 for width in (char.kernel_size, *char.widths)):
            found.append(f"model.char: the intnet encoder needs odd widths, not kernel_size {char.kernel_size} "
                         f"and widths {char.widths}")
        return found
