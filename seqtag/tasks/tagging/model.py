"""BiLSTM-CNN-CRF sequence tagger (Ma & Hovy 2016; Huang et al. 2015; Lample et al. 2016).

word embedding [+ char CNN/IntNet/BiLSTM] [+ casing] [+ language-model states, from a trained model file or a
character model trained jointly] -> dropout -> stacked BiRNN [+ global vector] -> dropout -> linear emissions
-> CRF (or per-token softmax).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from seqtag.modules.char_encoders import CharCNN, CharIntNet, CharLSTM, Highway
from seqtag.modules.crf import CRF
from seqtag.modules.crf_pytorch import PytorchCRF
from seqtag.modules.dropout import Dropout, LockedDropout
from seqtag.modules.embedders import CASINGS, WordEmbedder
from seqtag.modules.language_model import LanguageModel
from seqtag.modules.recurrent import cell
from seqtag.tasks.tagging.recipe import TaggerModelConfig


@dataclass
class TaggingBatch:
    """Padded tensors of a batch of sentences.

    words: ``(B, T)`` word indices (0 = padding).
    chars: ``(U, L)`` character indices of the ``U`` distinct word forms.
    forms: ``(B, T)`` index of each token's form into ``chars``' rows.
    casing: ``(B, T)`` casing class of each token.
    mask: ``(B, T)`` bool, True on real tokens.
    tags: ``(B, T)`` gold tag indices (0 on padding), or None.
    lengths: ``(B,)`` sentence lengths (CPU, long).
    features: ``(B, T, F)`` indices of the ``F`` extra input columns (0 = padding), or None.
    lm_ids: ``(B, L)`` the sentences as the contextual language model reads them
        (:func:`~seqtag.modules.language_model.sentence_symbols`), or None without one.
    lm_lengths: ``(B,)`` their lengths.
    lm_last / lm_first: ``(B, T)`` position in ``lm_ids`` of each token's last / first symbol.
    centre: ``(B, C)`` with document context (``model.document_context``): the position in ``T`` of
        each token of the sentence proper, the only ones tagged; ``mask`` and ``tags`` are then
        ``(B, C)``. None without context (every token is tagged).
    """

    words: torch.Tensor
    chars: torch.Tensor
    forms: torch.Tensor
    casing: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    tags: torch.Tensor | None = None
    features: torch.Tensor | None = None
    lm_ids: torch.Tensor | None = None
    lm_lengths: torch.Tensor | None = None
    lm_last: torch.Tensor | None = None
    lm_first: torch.Tensor | None = None
    centre: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.words.size(0))


def select_centre(emissions: torch.Tensor, batch: TaggingBatch) -> torch.Tensor:
    """The emissions ``(B, T, K)`` of the tokens a batch tags: ``(B, C, K)`` at ``batch.centre``
    when the batch has document context, else all of them."""
    if batch.centre is None:
        return emissions
    return emissions.gather(1, batch.centre.unsqueeze(-1).expand(-1, -1, emissions.size(-1)))


def global_vector(encoded: torch.Tensor, lengths: torch.Tensor, pooling: str) -> torch.Tensor:
    """The encoder outputs ``(B, T, D)`` max- or mean-pooled over each row's ``lengths`` real positions, repeated at
    every position ``(B, T, D)``."""
    real = (torch.arange(encoded.size(1), device=encoded.device).unsqueeze(0)
            < lengths.to(encoded.device).unsqueeze(1)).unsqueeze(2)  # (B, T, 1)
    if pooling == "max":
        pooled = encoded.masked_fill(~real, float("-inf")).max(dim=1).values  # (B, D)
    else:
        pooled = (encoded * real).sum(1) / real.sum(1).clamp(min=1)  # (B, D)
    return pooled.unsqueeze(1).expand_as(encoded)


class Tagger(nn.Module):
    """The network. Sizes come from the vocabularies; everything else from ``config``.

    Args:
        config: the recipe's ``model`` section.
        words: the word tables (training vocabulary, pretrained-only words).
        num_chars: character vocabulary size.
        num_tags: tag vocabulary size.
        constraints: CRF transition constraints ``(start, transitions, end)``.
        feature_sizes: vocabulary size of each extra input column (``data.feature_columns``).
        contextual: a language model whose states at each word are concatenated to its representation
            (``embeddings.contextual``), or None.
        contextual_trainable: whether it learns with the tagger; frozen (the default) it runs without
            gradient and without dropout.

    With ``config.char_lm`` on, ``contextual`` is the character language model trained jointly: its
    states pass through highway layers and :meth:`loss` adds its next-character loss.
    """

    def __init__(
        self,
        config: TaggerModelConfig,
        words: WordEmbedder,
        num_chars: int,
        num_tags: int,
        constraints: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
        feature_sizes: tuple[int, ...] = (),
        contextual: LanguageModel | None = None,
        contextual_trainable: bool = False,
    ) -> None:
        super().__init__()
        self.config = config
        self.words = words
        self.contextual = contextual
        self.joint_lm = bool(config.char_lm.hidden_size)
        if self.joint_lm and contextual is None:
            raise ValueError("model.char_lm needs its language model")
        self.contextual_trainable = contextual_trainable or self.joint_lm
        if contextual is not None and not self.joint_lm:
            for name, parameter in contextual.named_parameters():  # its softmax layers are not used here
                if not contextual_trainable or name.split(".")[1].startswith("decoder"):
                    parameter.requires_grad_(False)
        # Words that word dropout may replace by <unk> during training.
        self.register_buffer("replaceable", torch.zeros(words.num_trainable, dtype=torch.bool))
        size = words.output_dim
        char = config.char
        self.chars: nn.Module | None = None
        if char.encoder == "cnn":
            self.chars = CharCNN(num_chars, char.dim, char.filters, char.kernel_size, char.dropout)
        elif char.encoder == "intnet":
            self.chars = CharIntNet(num_chars, char.dim, char.filters, char.kernel_size, char.blocks, tuple(char.widths),
                                    char.dropout)
        elif char.encoder == "lstm":
            self.chars = CharLSTM(num_chars, char.dim, char.hidden_size, char.dropout, char.cell)
        if self.chars is not None:
            size += self.chars.output_dim
        self.casing = nn.Embedding(len(CASINGS), config.casing_dim, padding_idx=0) if config.casing_dim else None
        size += config.casing_dim
        self.features = nn.ModuleList(nn.Embedding(n, config.feature_dim, padding_idx=0) for n in feature_sizes)
        size += config.feature_dim * len(feature_sizes)
        self.highway: Highway | None = None
        if contextual is not None:
            size += contextual.output_dim
            if self.joint_lm and config.char_lm.highway_layers:
                self.highway = Highway(contextual.output_dim, config.char_lm.highway_layers)
        self.dropout: nn.Module = LockedDropout(config.dropout) if config.locked_dropout else Dropout(config.dropout)
        self.cell = cell(config.encoder.cell)
        encoder = config.encoder
        self.encoder = self.cell.build(size, encoder.hidden_size, encoder.num_layers, encoder.dropout, bidirectional=True)
        self.cell.initialize(self.encoder)
        self.emissions = nn.Linear((4 if config.global_vector != "none" else 2) * config.encoder.hidden_size, num_tags)
        self.crf: CRF | PytorchCRF | None = None
        if config.decoder == "crf":
            crf_class = CRF if config.crf.backend == "seqtag" else PytorchCRF
            self.crf = crf_class(num_tags, constraints if config.crf.constrained else None)

    def forward(self, batch: TaggingBatch) -> torch.Tensor:
        """Emission scores ``(B, T, num_tags)``."""
        return self._forward(batch)[0]

    def _forward(self, batch: TaggingBatch, lm_loss: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Emission scores ``(B, C, num_tags)`` and, if ``lm_loss``, the joint character language model's
        loss of each sentence ``(B,)`` (None without one)."""
        words = batch.words
        if self.training and self.config.word_dropout > 0:
            candidates = self.replaceable[words.clamp(max=self.replaceable.size(0) - 1)] & (words < self.replaceable.size(0))
            drop = candidates & (torch.rand(words.shape, device=words.device) < self.config.word_dropout)
            words = words.masked_fill(drop, 1)  # 1 = <unk>
        parts = [self.words(words)]  # (B, T, word_dim)
        if self.chars is not None:
            parts.append(self.chars(batch.chars)[batch.forms])  # (U, C) -> (B, T, C)
        if self.casing is not None:
            parts.append(self.casing(batch.casing))
        if len(self.features):
            assert batch.features is not None, "this model needs its feature columns"
            parts.extend(embed(batch.features[:, :, i]) for i, embed in enumerate(self.features))  # F x (B, T, feature_dim)
        lm_nll = None
        if self.contextual is not None:
            assert batch.lm_ids is not None and batch.lm_lengths is not None, "this model needs its language-model input"
            assert batch.lm_last is not None and batch.lm_first is not None
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.contextual_trainable):
                states = self.contextual.hidden_states(batch.lm_ids, batch.lm_lengths)  # {direction: (B, L, H)}
                vectors = self.contextual.states_at(batch.lm_ids, batch.lm_lengths, batch.lm_last, batch.lm_first,
                                                    states)  # (B, T, directions * H)
                if self.highway is not None:
                    vectors = self.highway(vectors)
                parts.append(vectors)
                if lm_loss and self.joint_lm:
                    lm_nll = self._lm_nll(states, batch.lm_ids, batch.lm_lengths)
        features = self.dropout(torch.cat(parts, dim=-1))
        encoded = self.cell.run(self.encoder, features, batch.lengths)  # (B, T, 2H)
        if self.config.global_vector != "none":
            encoded = torch.cat([encoded, global_vector(encoded, batch.lengths, self.config.global_vector)], dim=2)
        return select_centre(self.emissions(self.dropout(encoded)), batch), lm_nll  # (B, T, K) -> (B, C, K)

    def _lm_nll(self, states: dict[str, torch.Tensor], ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Mean next-symbol loss of each row ``(B,)``, summed over the directions: the forward model
        predicts ``ids[t + 1]`` from its state at ``t``, the backward one ``ids[t - 1]``."""
        assert self.contextual is not None
        steps = ids.size(1) - 1
        real = torch.arange(steps, device=ids.device).unsqueeze(0) < (lengths.to(ids.device) - 1).unsqueeze(1)  # (B, L-1)
        total = torch.zeros(ids.size(0), device=ids.device)
        for direction, outputs, targets in (("forward", lambda h: h[:, :-1], ids[:, 1:]),
                                            ("backward", lambda h: h[:, 1:], ids[:, :-1])):
            if direction in states:
                logits = self.contextual.lm(direction).logits(outputs(states[direction]))  # (B, L-1, V)
                nll = nn.functional.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="none")  # (B, L-1)
                total = total + (nll * real).sum(1) / real.sum(1).clamp(min=1)
        return total

    def train(self, mode: bool = True) -> "Tagger":
        """As :meth:`nn.Module.train`, but a frozen contextual language model stays in evaluation mode (no dropout)."""
        super().train(mode)
        if self.contextual is not None and not self.contextual_trainable:
            self.contextual.eval()
        return self

    def loss(self, batch: TaggingBatch, reduction: str = "sum") -> torch.Tensor:
        """Negative log-likelihood (CRF) or cross-entropy (softmax), summed or averaged over sentences."""
        assert batch.tags is not None, "loss needs gold tags"
        emissions, lm_nll = self._forward(batch, lm_loss=self.training)
        if self.crf is not None:
            with torch.autocast(emissions.device.type, enabled=False):  # the forward algorithm in fp32
                per_sentence = self.crf(emissions.float(), batch.tags, batch.mask)  # (B,)
        else:
            token_loss = nn.functional.cross_entropy(emissions.transpose(1, 2), batch.tags, reduction="none")
            per_sentence = (token_loss * batch.mask).sum(1)
        if lm_nll is not None:
            per_sentence = per_sentence + self.config.char_lm.loss_weight * lm_nll
        return per_sentence.sum() if reduction == "sum" else per_sentence.mean()

    def decode(self, batch: TaggingBatch, emissions: torch.Tensor | None = None) -> torch.Tensor:
        """Best tag indices ``(B, T)`` (meaningful where ``batch.mask`` is True).

        ``emissions`` ``(B, T, K)``, if given, replace this network's own (e.g. from ONNX Runtime).
        """
        emissions = (self(batch) if emissions is None else emissions).float()
        if self.crf is not None:
            return self.crf.decode(emissions, batch.mask)[0]
        return emissions.argmax(-1)

    def decode_detailed(self, batch: TaggingBatch, n_best: int = 0, emissions: torch.Tensor | None = None) -> "Decoded":
        """Best tags with per-token marginal probabilities, and optionally the ``n_best`` best sequences.

        ``emissions`` as in :meth:`decode`.
        """
        emissions = (self(batch) if emissions is None else emissions).float()
        if self.crf is None:
            if n_best > 1:
                raise ValueError("n-best lists need a CRF decoder; this model uses softmax")
            marginals = emissions.softmax(-1)
            return Decoded(marginals.argmax(-1), marginals)
        tags, _ = self.crf.decode(emissions, batch.mask)
        marginals = self.crf.marginals(emissions, batch.mask)  # (B, T, K)
        if n_best <= 1:
            return Decoded(tags, marginals)
        paths, scores = self.crf.nbest(emissions, batch.mask, n_best)  # (B, k, T), (B, k)
        log_z = self.crf.log_partition(emissions, batch.mask)  # (B,)
        return Decoded(tags, marginals, paths, (scores - log_z.unsqueeze(1)).exp())


@dataclass
class Decoded:
    """Decoder output: ``tags`` ``(B, T)``, ``marginals`` ``(B, T, K)``, and for n-best
    ``paths`` ``(B, k, T)`` with their probabilities ``probabilities`` ``(B, k)``."""

    tags: torch.Tensor
    marginals: torch.Tensor
    paths: torch.Tensor | None = None
    probabilities: torch.Tensor | None = None
