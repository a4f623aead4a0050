"""The fused bidirectional LSTM computes exactly what nn.LSTM computes on packed sequences."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqtag.modules.recurrent import bilstm, reverse_index


def test_reverse_index_reverses_within_length():
    index = reverse_index(torch.tensor([3, 1, 4]), 4)
    assert index.tolist() == [[2, 1, 0, 3], [0, 1, 2, 3], [3, 2, 1, 0]]


@pytest.mark.parametrize("layers", [1, 2])
def test_matches_packed_nn_lstm_values_and_gradients(layers):
    torch.manual_seed(layers)
    lstm = nn.LSTM(7, 5, num_layers=layers, bidirectional=True, batch_first=True)
    inputs = torch.randn(4, 6, 7, requires_grad=True)
    lengths = torch.tensor([6, 2, 5, 1])
    mask = (torch.arange(6).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(2)
    packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=6)
    actual = bilstm(lstm, inputs, lengths)
    torch.testing.assert_close(actual, expected * mask)
    weights = torch.randn_like(expected)
    grads_expected = torch.autograd.grad((expected * weights).sum(), [inputs, *lstm.parameters()])
    grads_actual = torch.autograd.grad((actual * weights).sum(), [inputs, *lstm.parameters()])
    for a, b in zip(grads_actual, grads_expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_rejects_unsupported_lstm():
    with pytest.raises(ValueError):
        bilstm(nn.LSTM(3, 2, batch_first=True), torch.zeros(1, 2, 3), torch.tensor([2]))


@pytest.mark.parametrize("lengths", [[1, 1, 1], [4, 4, 4], [4, 1, 3]])
def test_edge_lengths_match_packed_nn_lstm_in_training_mode(lengths):
    """Single-token sentences, no padding at all, and training mode (oneDNN's training kernels)."""
    torch.manual_seed(7)
    lstm = nn.LSTM(3, 4, bidirectional=True, batch_first=True).train()
    steps = max(lengths)
    inputs = torch.randn(3, steps, 3, requires_grad=True)
    lengths_tensor = torch.tensor(lengths)
    packed = pack_padded_sequence(inputs, lengths_tensor, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=steps)
    actual = bilstm(lstm, inputs, lengths_tensor)
    torch.testing.assert_close(actual, expected)
    grads_expected = torch.autograd.grad(expected.pow(2).sum(), [inputs, *lstm.parameters()])
    grads_actual = torch.autograd.grad(actual.pow(2).sum(), [inputs, *lstm.parameters()])
    for a, b in zip(grads_actual, grads_expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
