"""Recurrent layers by name: the cell registry every model asks for its RNN.

A recipe names a cell (``lstm``, ``gru``); a model asks :func:`cell` for it and
gets a :class:`RecurrentCell`, which builds the layer (a batch-first
``nn.LSTM`` / ``nn.GRU``, so the parameter names in model files are PyTorch's)
and runs it over padded batches with the semantics of packed sequences:
padding never reaches a real token's state. Adding a cell means one subclass
and one line in :data:`CELLS`.

The LSTM has a fast path. PyTorch runs an ``nn.LSTM`` through oneDNN's fused
LSTM kernels on the CPU, which is more than twice as fast as running each
time step as separate operations, but only on padded input: packed sequences
fall back to the slow per-step path. :func:`bilstm` computes exactly what a
bidirectional ``nn.LSTM`` on packed sequences computes, with its parameters, as
two single-direction runs on padded input:

* the forward direction reads the sentences as they are; the padding at
  their ends comes after every real token, so it cannot reach a real
  token's state;
* the backward direction reads each sentence reversed within its own length
  (padding stays at the end), and its outputs are reversed back.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import torch
from pydantic import AfterValidator
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqtag.modules.lstm_variants import GATES, VariantLSTM


class RecurrentCell:
    """One kind of recurrent cell: builds its layer and runs it over padded batches.

    Subclasses set ``name`` (the recipe value), ``layer`` (the ``nn.RNNBase`` class) and
    ``onnx_exportable`` (whether ``seqtag export`` can write a tagger built on it); the
    default runs go through packed sequences, which is exact for any cell.
    """

    name: ClassVar[str]
    layer: ClassVar[type[nn.RNNBase]]
    onnx_exportable: ClassVar[bool] = False

    def build(
        self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0, bidirectional: bool = False
    ) -> nn.RNNBase:
        """A batch-first layer; ``dropout`` applies between stacked layers."""
        return self.layer(input_size, hidden_size, num_layers=num_layers, dropout=dropout if num_layers > 1 else 0.0,
                          bidirectional=bidirectional, batch_first=True)

    def initialize(self, rnn: nn.RNNBase) -> None:
        """The cell's recommended initialisation on top of PyTorch's (none by default)."""

    def run(self, rnn: nn.RNNBase, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Outputs of every step: ``(B, T, D)`` padded inputs -> ``(B, T, directions * H)``, zero past each length.

        ``lengths`` ``(B,)``, each >= 1.
        """
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, _ = rnn(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=inputs.size(1))
        return outputs

    def final_states(self, rnn: nn.RNNBase, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The last layer's final state of each direction, concatenated: ``(B, T, D)`` -> ``(B, directions * H)``
        (the forward direction's state after a row's last real step, the backward one's after its first)."""
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, hidden = rnn(packed)
        if isinstance(hidden, tuple):  # (h, c) of an LSTM
            hidden = hidden[0]
        directions = 2 if rnn.bidirectional else 1
        return torch.cat(list(hidden[-directions:]), dim=1)  # (layers * directions, B, H) -> (B, directions * H)


class LSTM(RecurrentCell):
    """Long short-term memory with a forget gate (Hochreiter & Schmidhuber 1997; Gers et al. 2000),
    PyTorch's ``nn.LSTM``, run on oneDNN's fused kernel over padded input."""

    name = "lstm"
    layer = nn.LSTM
    onnx_exportable = True

    def initialize(self, rnn: nn.RNNBase) -> None:
        """Forget-gate bias 1 (Jozefowicz et al. 2015; PyTorch leaves it random)."""
        init_forget_bias(rnn)

    def run(self, rnn: nn.RNNBase, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if rnn.bidirectional:
            return bilstm(rnn, inputs, lengths)  # type: ignore[arg-type]
        return super().run(rnn, inputs, lengths)

    def final_states(self, rnn: nn.RNNBase, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if rnn.bidirectional:
            return super().final_states(rnn, inputs, lengths)
        # One direction on padded input (the fused kernel): padding follows each row's last word,
        # so the state there is exactly the packed LSTM's last state.
        outputs, _ = rnn(inputs)  # (B, T, H)
        last = (lengths.to(outputs.device) - 1).clamp(min=0)
        return outputs[torch.arange(outputs.size(0), device=outputs.device), last]  # (B, H)


class GRU(RecurrentCell):
    """Gated recurrent unit (Cho et al. 2014), PyTorch's ``nn.GRU`` on packed sequences."""

    name = "gru"
    layer = nn.GRU


class RNN(RecurrentCell):
    """The simple recurrent network, h' = tanh(W x + U h + b) (Elman 1990): what LSTM was made to
    beat on long time lags. PyTorch's ``nn.RNN`` on packed sequences."""

    name = "rnn"
    layer = nn.RNN


class Variant(RecurrentCell):
    """An LSTM variant of :mod:`seqtag.modules.lstm_variants` (peephole, coupled, nfg, nig, nog,
    noaf): its own layer, with the time loop in TorchScript.

    Args:
        variant: the variant's name, also its recipe name.
    """

    def __init__(self, variant: str) -> None:
        self.name = variant  # type: ignore[misc]
        self.variant = variant

    def build(
        self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0, bidirectional: bool = False
    ) -> nn.Module:  # type: ignore[override]
        return VariantLSTM(self.variant, input_size, hidden_size, num_layers, dropout if num_layers > 1 else 0.0,
                           bidirectional)

    def initialize(self, rnn: nn.Module) -> None:  # type: ignore[override]
        """Forget-gate bias 1, as for ``lstm``, where the variant has a forget gate."""
        gates = GATES[self.variant]
        if "f" not in gates:
            return
        block = gates.index("f")
        for name, bias in rnn.named_parameters():
            if name.startswith("bias_"):
                hidden = bias.size(0) // len(gates)
                with torch.no_grad():
                    bias[block * hidden : (block + 1) * hidden].fill_(1.0 if name.startswith("bias_ih") else 0.0)

    def run(self, rnn: nn.Module, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return rnn(inputs, lengths)

    def final_states(self, rnn: nn.Module, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        outputs = rnn(inputs, lengths)  # (B, T, directions * H)
        hidden = rnn.hidden_size
        last = (lengths.to(outputs.device) - 1).clamp(min=0)
        forward = outputs[torch.arange(outputs.size(0), device=outputs.device), last, :hidden]  # (B, H)
        if not rnn.bidirectional:
            return forward
        return torch.cat([forward, outputs[:, 0, hidden:]], dim=1)  # the backward direction ends at step 0


#: Every cell a recipe can name.
CELLS: dict[str, RecurrentCell] = {c.name: c for c in (
    LSTM(), GRU(), RNN(), *(Variant(v) for v in ("peephole", "coupled", "nfg", "nig", "nog", "noaf")))}


def cell(name: str) -> RecurrentCell:
    """The cell called ``name`` in recipes; ValueError for an unknown name."""
    found = CELLS.get(name)
    if found is None:
        raise ValueError(f"unknown recurrent cell {name!r}; choose one of {', '.join(CELLS)}")
    return found


#: A recipe field naming a cell, checked against :data:`CELLS`.
CellName = Annotated[str, AfterValidator(lambda name: cell(name).name)]


def init_forget_bias(rnn: nn.RNNBase) -> None:
    """Set an LSTM's forget-gate bias to 1 (``bias_ih``; ``bias_hh`` 0); other layers are left alone."""
    if not isinstance(rnn, nn.LSTM):
        return
    for name, bias in rnn.named_parameters():
        if name.startswith("bias_"):
            hidden = bias.size(0) // 4  # gates are ordered input, forget, cell, output
            with torch.no_grad():
                bias[hidden : 2 * hidden].fill_(1.0 if name.startswith("bias_ih") else 0.0)


def reverse_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """``(B, T)`` index that reverses each row's first ``lengths[b]`` positions and keeps padding in place."""
    positions = torch.arange(steps, device=lengths.device).unsqueeze(0)  # (1, T)
    last = (lengths - 1).unsqueeze(1)  # (B, 1)
    return torch.where(positions <= last, last - positions, positions)


def _direction(inputs: torch.Tensor, weights: list[torch.Tensor], training: bool) -> torch.Tensor:
    """One single-direction LSTM layer over padded ``(B, T, D)`` inputs -> ``(B, T, H)``.

    ``torch.lstm`` is the function ``nn.LSTM.forward`` calls; on a CPU it
    dispatches to oneDNN.
    """
    batch, hidden = inputs.size(0), weights[1].size(1)
    zeros = inputs.new_zeros(1, batch, hidden)
    return torch.lstm(inputs, (zeros, zeros), weights, True, 1, 0.0, training, False, True)[0]


def _layer(inputs: torch.Tensor, weights: list[torch.Tensor], reverse: torch.Tensor, training: bool) -> torch.Tensor:
    """One bidirectional layer: ``(B, T, D)`` -> ``(B, T, 2H)``."""
    batch, steps, dim = inputs.shape
    forward = _direction(inputs, weights[:4], training)  # (B, T, H)
    flipped = inputs.gather(1, reverse.unsqueeze(2).expand(batch, steps, dim))
    backward = _direction(flipped, weights[4:], training)  # (B, T, H), in reversed order
    backward = backward.gather(1, reverse.unsqueeze(2).expand_as(backward))
    return torch.cat([forward, backward], dim=2)


def bilstm(lstm: nn.LSTM, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Run the bidirectional ``lstm`` (batch_first) on padded ``inputs``.

    Args:
        lstm: a bidirectional, batch-first ``nn.LSTM`` whose parameters are used.
        inputs: ``(B, T, D)`` padded inputs.
        lengths: ``(B,)`` sentence lengths, each >= 1.

    Returns:
        ``(B, T, 2H)``; positions past a sentence's end are zero.
    """
    if not (lstm.bidirectional and lstm.batch_first) or lstm.proj_size:
        raise ValueError("bilstm needs a bidirectional, batch-first nn.LSTM without projections")
    steps = inputs.size(1)
    reverse = reverse_index(lengths.to(inputs.device), steps)
    mask = (torch.arange(steps, device=inputs.device).unsqueeze(0) < lengths.to(inputs.device).unsqueeze(1)).unsqueeze(2)
    output = inputs
    for layer in range(lstm.num_layers):
        if layer > 0 and lstm.dropout > 0:
            output = nn.functional.dropout(output, lstm.dropout, lstm.training)
        names = [f"{kind}_l{layer}{suffix}" for suffix in ("", "_reverse") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        output = _layer(output, [getattr(lstm, name) for name in names], reverse, lstm.training)
    return output * mask
