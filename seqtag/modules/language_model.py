"""Recurrent language models over a stream of symbols (characters or words), reusable as contextual embeddings.

A :class:`LanguageModel` holds one or two :class:`DirectionalLM` s: ``forward`` reads a
stream left to right and predicts the next symbol, ``backward`` reads it right to left
and predicts the previous one (the two language models of Peters et al. 2017 and Akbik
et al. 2018, trained side by side). Each is symbol embeddings, dropout, a stack of
recurrent layers of any cell of :mod:`seqtag.modules.recurrent`, dropout and a softmax
layer over the symbols, whose weights may be tied to the embeddings (Press & Wolf 2017).

Truncated back-propagation through time needs a state that one window of the stream
hands to the next: :func:`run_stateful` runs a layer built by the cell registry from a
given initial state and returns its final state, for PyTorch's ``nn.LSTM`` / ``nn.GRU`` /
``nn.RNN`` (their own ``hx`` argument, the fused kernels) and for the LSTM variants of
:mod:`seqtag.modules.lstm_variants` (the same gate equations, from a given state).

For a tagger, :meth:`LanguageModel.token_states` gives flair-style contextual word
vectors (Akbik et al. 2018): the forward state after a word's last symbol and the
backward state after (reading right to left) its first symbol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from seqtag.data.vocab import Vocabulary
from seqtag.modules.lstm_variants import VariantLSTM, recurrence
from seqtag.modules.recurrent import cell as recurrent_cell
from seqtag.modules.recurrent import reverse_index

#: The state a layer stack hands from one window to the next: ``(h, c)`` of LSTMs, ``(h,)`` of
#: GRUs and simple RNNs; each ``(layers, B, H)``.
State = tuple[torch.Tensor, ...]
DIRECTIONS = ("forward", "backward")
#: What separates lines in a stream: a character model reads a newline, a word model ``<eos>``.
SEPARATORS = {"char": "\n", "word": "<eos>"}


def _run_variant(rnn: VariantLSTM, inputs: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
    """A stacked one-direction :class:`VariantLSTM` over ``(B, T, D)`` from ``state``."""
    batch, hidden = inputs.size(0), rnn.hidden_size
    output = inputs
    finals_h, finals_c = [], []
    for layer in range(rnn.num_layers):
        if layer > 0 and rnn.dropout > 0:
            output = nn.functional.dropout(output, rnn.dropout, rnn.training)
        bias = getattr(rnn, f"bias_ih_l{layer}") + getattr(rnn, f"bias_hh_l{layer}")
        projected = nn.functional.linear(output, getattr(rnn, f"weight_ih_l{layer}"), bias).transpose(0, 1)  # (T, B, G*H)
        peephole = getattr(rnn, f"weight_ch_l{layer}") if rnn.variant == "peephole" else inputs.new_empty(0)
        if state is None:
            h0 = c0 = inputs.new_zeros(batch, hidden)
        else:
            h0, c0 = state[0][layer], state[1][layer]
        every = torch.ones(projected.size(0), batch, 1, dtype=torch.bool, device=inputs.device)  # (T, B, 1): no padding
        states, h, c = recurrence(projected, every, getattr(rnn, f"weight_hh_l{layer}"), peephole, rnn.gates,
                                  rnn.variant == "coupled", rnn.variant != "noaf", h0, c0)
        output = states.transpose(0, 1)  # (B, T, H)
        finals_h.append(h)
        finals_c.append(c)
    return output, (torch.stack(finals_h), torch.stack(finals_c))  # (L, B, H) each


def run_stateful(rnn: nn.Module, inputs: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
    """Run a one-direction, batch-first layer stack built by a cell of the registry from ``state``.

    Args:
        rnn: what :meth:`~seqtag.modules.recurrent.RecurrentCell.build` returned (not bidirectional).
        inputs: ``(B, T, D)``; there is no padding inside a row (trailing padding only changes the
            states after it, never the outputs before it).
        state: the layers' state to start from (see :data:`State`); None: zeros.

    Returns:
        ``(B, T, H)`` outputs of the last layer, and the final state of every layer.
    """
    if getattr(rnn, "bidirectional", False):
        raise ValueError("a language model's layers read one direction")
    if isinstance(rnn, nn.LSTM):
        outputs, (h, c) = rnn(inputs, None if state is None else (state[0], state[1]))
        return outputs, (h, c)
    if isinstance(rnn, (nn.GRU, nn.RNN)):
        outputs, h = rnn(inputs, None if state is None else state[0])
        return outputs, (h,)
    if isinstance(rnn, VariantLSTM):
        return _run_variant(rnn, inputs, state)
    raise TypeError(f"cannot carry the state of a {type(rnn).__name__} across windows")


def detach(state: State) -> State:
    """``state`` cut from the graph of the window that computed it (truncated BPTT)."""
    return tuple(t.detach() for t in state)


class DirectionalLM(nn.Module):
    """One language model: embeddings, dropout, stacked recurrent layers, dropout, softmax layer.

    Args:
        vocab_size: symbols, row 0 padding.
        embedding_dim: size of the symbol embeddings.
        hidden_size: state size of each recurrent layer.
        num_layers: stacked layers.
        cell: the recurrent cell's name (:data:`seqtag.modules.recurrent.CELLS`).
        dropout: on the embeddings, between layers and on the last layer's outputs.
        tie_weights: the softmax layer uses the embedding matrix (needs ``hidden_size == embedding_dim``);
            only its bias is its own (``decoder_bias``), so no tensor is stored twice.
    """

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int = 1, cell: str = "lstm",
                 dropout: float = 0.0, tie_weights: bool = False) -> None:
        super().__init__()
        if tie_weights and hidden_size != embedding_dim:
            raise ValueError(f"tied weights need hidden_size ({hidden_size}) == embedding_dim ({embedding_dim})")
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        recurrent = recurrent_cell(cell)
        self.rnn = recurrent.build(embedding_dim, hidden_size, num_layers, dropout)
        recurrent.initialize(self.rnn)
        self.tie_weights = tie_weights
        if tie_weights:
            self.decoder_bias = nn.Parameter(torch.zeros(vocab_size))
        else:
            self.decoder = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Symbol ids ``(B, T)`` -> last layer's outputs ``(B, T, H)`` and the final state."""
        return run_stateful(self.rnn, self.dropout(self.embedding(ids)), state)  # (B, T, E) in

    def logits(self, outputs: torch.Tensor) -> torch.Tensor:
        """Scores of the next symbol ``(..., V)`` from outputs ``(..., H)``."""
        outputs = self.dropout(outputs)
        if self.tie_weights:
            return nn.functional.linear(outputs, self.embedding.weight, self.decoder_bias)
        return self.decoder(outputs)

    def nll(self, inputs: torch.Tensor, targets: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Negative log-likelihood (nats) of each target ``(B, T)`` given the inputs ``(B, T)`` read from ``state``."""
        outputs, state = self(inputs, state)
        logits = self.logits(outputs)  # (B, T, V)
        nll = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1),
                                          reduction="none")
        return nll.view_as(targets), state


class LanguageModel(nn.Module):
    """A forward and/or a backward :class:`DirectionalLM` over the same symbols.

    Args:
        direction: ``forward``, ``backward`` or ``both``.
        vocab_size / embedding_dim / hidden_size / num_layers / cell / dropout / tie_weights:
            those of each :class:`DirectionalLM`.
    """

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int = 1, cell: str = "lstm",
                 direction: str = "forward", dropout: float = 0.0, tie_weights: bool = False) -> None:
        super().__init__()
        if direction not in (*DIRECTIONS, "both"):
            raise ValueError(f"unknown direction {direction!r}; choose forward, backward or both")
        self.directions = tuple(d for d in DIRECTIONS if direction in (d, "both"))
        self.hidden_size = hidden_size
        self.cell_name = cell

        def make() -> DirectionalLM:
            return DirectionalLM(vocab_size, embedding_dim, hidden_size, num_layers, cell, dropout, tie_weights)

        self.forward_lm = make() if "forward" in self.directions else None
        self.backward_lm = make() if "backward" in self.directions else None

    def lm(self, direction: str) -> DirectionalLM:
        """The language model of ``direction``; ValueError when this model has none."""
        found = self.forward_lm if direction == "forward" else self.backward_lm if direction == "backward" else None
        if found is None:
            raise ValueError(f"this language model has no {direction} direction")
        return found

    @property
    def output_dim(self) -> int:
        """Size of :meth:`token_states`' vectors: the state size times the directions."""
        return self.hidden_size * len(self.directions)

    def hidden_states(self, ids: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every direction's last-layer states over padded rows, aligned with the input positions.

        Args:
            ids: ``(B, T)`` symbol ids, each row a whole sequence from a zero state, padding at the end.
            lengths: ``(B,)`` real lengths, each >= 1.

        Returns:
            ``{direction: (B, T, H)}``: ``forward[b, t]`` is the state after reading ``ids[b, :t + 1]``,
            ``backward[b, t]`` the state after reading ``ids[b, t:lengths[b]]`` right to left.
        """
        states: dict[str, torch.Tensor] = {}
        if self.forward_lm is not None:
            states["forward"] = self.forward_lm(ids)[0]
        if self.backward_lm is not None:
            reverse = reverse_index(lengths.to(ids.device), ids.size(1))  # (B, T)
            outputs = self.backward_lm(ids.gather(1, reverse))[0]  # (B, T, H), each row read from its end
            states["backward"] = outputs.gather(1, reverse.unsqueeze(2).expand_as(outputs))
        return states

    def states_at(self, ids: torch.Tensor, lengths: torch.Tensor, last: torch.Tensor, first: torch.Tensor,
                  states: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Contextual vectors of tokens: the forward state at ``last`` and the backward state at ``first``.

        Args:
            ids / lengths: as :meth:`hidden_states` (each row a sentence, see :func:`sentence_symbols`).
            last: ``(B, K)`` position of each token's last symbol in its row (anything on padding).
            first: ``(B, K)`` position of each token's first symbol.
            states: :meth:`hidden_states` of ``ids`` if the caller has them already.

        Returns:
            ``(B, K, output_dim)``: forward state(s) first, then backward.
        """
        states = self.hidden_states(ids, lengths) if states is None else states
        parts = []
        for direction, positions in (("forward", last), ("backward", first)):
            if direction in states:
                found = states[direction]  # (B, L, H)
                parts.append(found.gather(1, positions.unsqueeze(2).expand(-1, -1, found.size(2))))  # (B, K, H)
        return torch.cat(parts, dim=2)

    def token_states(self, sentences: Sequence[Sequence[str]], symbols: Vocabulary, level: str) -> list[torch.Tensor]:
        """Contextual vectors of the tokens of each sentence (flair's, Akbik et al. 2018), see
        :func:`sentence_symbols` and :meth:`states_at`.

        Returns:
            one ``(tokens, output_dim)`` tensor per sentence, on the model's device.
        """
        device = next(self.parameters()).device
        encoded = [sentence_symbols(tokens, symbols, level) for tokens in sentences]
        ids, lengths, last, first = pad_sentences(encoded)
        states = self.states_at(ids.to(device), lengths.to(device), last.to(device), first.to(device))
        return [states[b, : len(tokens)] for b, tokens in enumerate(sentences)]

    def config(self) -> dict[str, Any]:
        """The architecture as the keyword arguments of :meth:`from_config` (a language-model recipe's ``model`` keys)."""
        lm = self.lm(self.directions[0])
        rnn = lm.rnn
        return {"embedding_dim": lm.embedding.embedding_dim, "hidden_size": self.hidden_size,
                "num_layers": rnn.num_layers, "cell": self.cell_name, "dropout": lm.dropout.p,
                "direction": "both" if len(self.directions) == 2 else self.directions[0],
                "tie_weights": lm.tie_weights}

    @classmethod
    def from_config(cls, vocab_size: int, config: dict[str, Any]) -> "LanguageModel":
        """A fresh model of ``vocab_size`` symbols with the architecture ``config`` (see :meth:`config`)."""
        return cls(vocab_size, int(config["embedding_dim"]), int(config["hidden_size"]), int(config["num_layers"]),
                   str(config["cell"]), str(config["direction"]), float(config["dropout"]), bool(config["tie_weights"]))


def sentence_symbols(tokens: Sequence[str], symbols: Vocabulary, level: str) -> tuple[list[int], list[int], list[int]]:
    """A tokenised sentence as a language model reads it, and where each token is in it.

    A character model reads the tokens joined by spaces between two newlines, a word model the
    tokens between two ``<eos>``; symbols outside ``symbols`` are ``<unk>``.

    Returns:
        the symbol ids, and per token the position of its last and of its first symbol.
    """
    stoi, unk = symbols.stoi, symbols.unk_index
    separator = stoi[SEPARATORS[level]]
    row, last, first = [separator], [], []
    for i, token in enumerate(tokens):
        if level == "char":
            if i:
                row.append(stoi.get(" ", unk))
            first.append(len(row))
            row.extend(stoi.get(ch, unk) for ch in token or " ")
        else:
            first.append(len(row))
            row.append(stoi.get(token, unk))
        last.append(len(row) - 1)
    row.append(separator)
    return row, last, first


def pad_sentences(encoded: Sequence[tuple[list[int], list[int], list[int]]], steps: int | None = None) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`sentence_symbols` of several sentences as padded tensors: ids ``(B, L)``, lengths ``(B,)``,
    last and first positions ``(B, K)`` (0 past a sentence's tokens; ``K = steps`` or the most tokens)."""
    width = max(len(row) for row, _, _ in encoded)
    tokens = steps if steps is not None else max(1, max(len(last) for _, last, _ in encoded))
    ids = torch.zeros(len(encoded), width, dtype=torch.long)
    last = torch.zeros(len(encoded), tokens, dtype=torch.long)
    first = torch.zeros(len(encoded), tokens, dtype=torch.long)
    for b, (row, ends, starts) in enumerate(encoded):
        ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
        last[b, : len(ends)] = torch.tensor(ends, dtype=torch.long)
        first[b, : len(starts)] = torch.tensor(starts, dtype=torch.long)
    return ids, torch.tensor([len(row) for row, _, _ in encoded], dtype=torch.long), last, first
