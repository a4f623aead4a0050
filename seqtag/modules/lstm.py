"""A fast bidirectional LSTM for padded CPU batches.

PyTorch runs an ``nn.LSTM`` through oneDNN's fused LSTM kernels on the CPU,
which is more than twice as fast as running each time step as separate
operations, but only on padded input: packed sequences (the usual way to
keep padding out of the backward direction) fall back to the slow per-step
path. :func:`bilstm` computes exactly what a bidirectional ``nn.LSTM`` on
packed sequences computes, with its parameters (so model files do not
change), as two single-direction runs on padded input:

* the forward direction reads the sentences as they are; the padding at
  their ends comes after every real token, so it cannot reach a real
  token's state;
* the backward direction reads each sentence reversed within its own length
  (padding stays at the end), and its outputs are reversed back.
"""

from __future__ import annotations

import torch
from torch import nn


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
