"""LSTM, TD-LSTM and TC-LSTM target-dependent sentiment classifiers (Tang et al. 2015).

* ``lstm``: one LSTM reads the whole sentence left to right; its last state
  goes to a softmax layer. The target is ignored (the paper's baseline).
* ``td-lstm``: a left LSTM reads the sentence from its start through the
  target, left to right; a right LSTM reads it from its end back through the
  target, right to left. Their last states are concatenated and classified.
* ``tc-lstm``: TD-LSTM whose every input word vector is concatenated with the
  target vector, the mean of the target words' vectors. Input dropout applies to
  the word vectors; the target vector has its own (``target_dropout``), one mask
  per example, since it is the same at every step.

When the target occurs several times, the left LSTM stops at the end of the
last mention and the right LSTM at the start of the first, so both see every
mention and all of the text between them. Each LSTM reads at most
``seqtag.data.target.MAX_CONTEXT`` tokens (200) of that, those nearest the target,
and the LSTM baseline at most twice as many around the first mention, so a huge
example costs no more than a long sentence (the task's ``encode`` makes the window).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqtag.modules.dropout import Dropout
from seqtag.modules.embedders import WordEmbedder
from seqtag.modules.recurrent import cell as recurrent_cell

ARCHITECTURES = ("lstm", "td-lstm", "tc-lstm")
UNK_INDEX = 1  # row of <unk> in the word vocabulary (0 is padding)


@dataclass
class TargetBatch:
    """Padded tensors of a batch of (sentence, target) examples; index 0 is padding.

    left: ``(B, L)`` word indices the left LSTM reads, in reading order: the sentence
        start through the (last) target mention; the whole sentence for ``lstm`` (both
        within the window of ``MAX_CONTEXT`` tokens, see the module docstring).
    left_lengths: ``(B,)`` long (CPU), real lengths of ``left``.
    right: ``(B, R)`` word indices the right LSTM reads, in reading order: the sentence
        end back to the (first) target mention, i.e. reversed.
    right_lengths: ``(B,)`` long (CPU).
    target: ``(B, M)`` the target's word indices.
    target_lengths: ``(B,)`` long.
    labels: ``(B,)`` gold class indices, or None.
    """

    left: torch.Tensor
    left_lengths: torch.Tensor
    right: torch.Tensor
    right_lengths: torch.Tensor
    target: torch.Tensor
    target_lengths: torch.Tensor
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.left.size(0))


class TargetLSTM(nn.Module):
    """The network; sizes come from the vocabularies, the rest from the recipe's ``model`` section.

    Args:
        architecture: ``lstm``, ``td-lstm`` or ``tc-lstm``.
        words: the word tables (training vocabulary with row 0 padding, pretrained-only words).
        hidden_size: LSTM state size (each LSTM).
        num_classes: number of polarity classes.
        dropout: dropout on the word vectors the LSTMs read.
        output_dropout: dropout on the concatenated final states.
        init_range: if set, LSTM and softmax weights are drawn from ``U(-init_range, init_range)``
            and biases set to zero (Tang et al. use 0.003); otherwise PyTorch's initialisation
            with the forget-gate bias at 1.
        word_dropout: probability of reading a word as ``<unk>`` during training.
        target_dropout: ``tc-lstm``: dropout on the target vector, one mask per example shared
            by every step of both LSTMs.
        cell: the recurrent cell's name (seqtag.modules.recurrent), ``lstm`` by default.
        label_smoothing: label smoothing of the training loss.

    ``class_weights`` ``(C,)``, if set, weighs each example's loss by its class (not a weight
    of the model: it is not saved).
    """

    def __init__(
        self,
        architecture: str,
        words: WordEmbedder,
        hidden_size: int,
        num_classes: int,
        dropout: float = 0.0,
        output_dropout: float = 0.0,
        init_range: float | None = None,
        word_dropout: float = 0.0,
        target_dropout: float = 0.0,
        cell: str = "lstm",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
        self.architecture = architecture
        self.word_dropout = word_dropout
        self.words = words
        word_dim = words.output_dim
        input_size = 2 * word_dim if architecture == "tc-lstm" else word_dim
        self.dropout = Dropout(dropout)
        self.target_dropout = Dropout(target_dropout)
        self.output_dropout = Dropout(output_dropout)
        self.label_smoothing = label_smoothing
        # (C,) loss weights of the classes, or None; a buffer so that it follows the model's
        # device, not persistent: model files do not hold it.
        self.register_buffer("class_weights", None, persistent=False)
        self.cell = recurrent_cell(cell)
        self.left = self.cell.build(input_size, hidden_size)
        self.right = self.cell.build(input_size, hidden_size) if architecture != "lstm" else None
        features = hidden_size if self.right is None else 2 * hidden_size
        self.output = nn.Linear(features, num_classes)
        for module in (self.left, self.right, self.output):
            if module is None:
                continue
            if init_range is not None:
                for name, parameter in module.named_parameters():
                    with torch.no_grad():
                        if name.startswith("bias"):
                            parameter.zero_()
                        else:
                            parameter.uniform_(-init_range, init_range)
            elif module is not self.output:
                self.cell.initialize(module)

    def target_vector(self, batch: TargetBatch) -> torch.Tensor:
        """Mean of the target words' vectors, ``(B, word_dim)``."""
        vectors = self.words(batch.target)  # (B, M, D)
        lengths = batch.target_lengths.to(vectors.device)
        mask = torch.arange(vectors.size(1), device=vectors.device).unsqueeze(0) < lengths.unsqueeze(1)  # (B, M)
        total = (vectors * mask.unsqueeze(2).to(vectors.dtype)).sum(1)  # (B, D)
        return total / lengths.clamp(min=1).unsqueeze(1).to(vectors.dtype)

    def _read(self, lstm: nn.RNNBase, words: torch.Tensor, lengths: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """Last state of ``lstm`` over ``words`` ``(B, T)`` -> ``(B, H)``."""
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(words.shape, device=words.device) < self.word_dropout) & (words != 0)
            words = words.masked_fill(drop, UNK_INDEX)
        inputs = self.dropout(self.words(words))  # (B, T, D)
        if target is not None:
            inputs = torch.cat([inputs, target.unsqueeze(1).expand(-1, inputs.size(1), -1)], dim=2)  # (B, T, 2D)
        return self.cell.final_states(lstm, inputs, lengths)  # (B, H)

    def forward(self, batch: TargetBatch) -> torch.Tensor:
        """Class scores (logits) ``(B, num_classes)``."""
        target = self.target_dropout(self.target_vector(batch)) if self.architecture == "tc-lstm" else None  # (B, D)
        features = self._read(self.left, batch.left, batch.left_lengths, target)  # (B, H)
        if self.right is not None:
            right = self._read(self.right, batch.right, batch.right_lengths, target)  # (B, H)
            features = torch.cat([features, right], dim=1)  # (B, 2H)
        return self.output(self.output_dropout(features))  # (B, C)

    def loss(self, batch: TargetBatch, reduction: str = "sum") -> torch.Tensor:
        """Cross-entropy of the gold classes (with ``label_smoothing``), each example weighted by its
        class's weight in ``class_weights`` (``mean`` then divides by the batch's total weight)."""
        if batch.labels is None:
            raise ValueError("the batch has no labels")
        return nn.functional.cross_entropy(
            self(batch), batch.labels, weight=self.class_weights, reduction=reduction, label_smoothing=self.label_smoothing
        )

    @torch.inference_mode()
    def probabilities(self, batch: TargetBatch) -> torch.Tensor:
        """Class probabilities ``(B, num_classes)``."""
        return torch.softmax(self(batch), dim=1)
