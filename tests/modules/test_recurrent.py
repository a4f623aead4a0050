"""Recurrent cells: the fused bidirectional LSTM computes exactly what nn.LSTM computes on packed
sequences; every registered cell runs padded batches with packed semantics; a new cell is one class."""

import copy

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import seqtag
from seqtag.errors import RecipeError, SeqtagError
from seqtag.modules.recurrent import CELLS, RecurrentCell, bilstm, cell, reverse_index
from seqtag.registry import recipe_from_dict
from seqtag.training.run import run
from tests.conftest import TINY_RECIPE


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


# ------------------------------------------------------------------------- the cell registry


@pytest.mark.parametrize("name", sorted(name for name, c in CELLS.items() if hasattr(c, "layer")))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_cell_runs_padded_batches_as_packed_sequences(name, bidirectional):
    """``run`` and ``final_states`` of every cell built on a PyTorch layer equal the packed layer's
    results (the LSTM variants have their own tests)."""
    torch.manual_seed(3)
    recurrent = cell(name)
    layer = recurrent.build(5, 4, num_layers=2, bidirectional=bidirectional).eval()
    inputs = torch.randn(3, 6, 5)
    lengths = torch.tensor([6, 1, 4])
    packed = pack_padded_sequence(inputs, lengths, batch_first=True, enforce_sorted=False)
    outputs, hidden = layer(packed)
    expected, _ = pad_packed_sequence(outputs, batch_first=True, total_length=6)
    torch.testing.assert_close(recurrent.run(layer, inputs, lengths), expected)
    hidden = hidden[0] if isinstance(hidden, tuple) else hidden  # (layers * directions, B, H)
    directions = 2 if bidirectional else 1
    torch.testing.assert_close(recurrent.final_states(layer, inputs, lengths), torch.cat(list(hidden[-directions:]), 1))


def test_recipes_name_cells_from_the_registry():
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": "."}
    recipe["model"]["encoder"]["cell"] = "lsmt"
    with pytest.raises(RecipeError, match=r"model.encoder.cell: .*unknown recurrent cell 'lsmt'; choose one of lstm, gru"):
        recipe_from_dict(recipe)


class TanhRNN(RecurrentCell):
    """A cell defined outside seqtag: one class (and one registry entry below) is all it takes."""

    name = "tanh"
    layer = nn.RNN


def test_a_new_cell_is_one_class_and_one_registry_line(monkeypatch, tiny_corpus, tmp_path):
    monkeypatch.setitem(CELLS, "tanh", TanhRNN())
    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(tiny_corpus), "label_column": 1}
    recipe["model"]["encoder"]["cell"] = "tanh"
    recipe["model"]["char"] = {"encoder": "lstm", "cell": "tanh", "dim": 8, "hidden_size": 6}
    recipe["training"]["max_epochs"] = 1
    result = run(recipe_from_dict(recipe), tmp_path / "tagger")
    tagger = seqtag.load(result.model_path)
    assert isinstance(tagger.task.model.encoder, nn.RNN) and isinstance(tagger.task.model.chars.lstm, nn.RNN)
    assert len(tagger.tag("Anna Berg visited Oslo.")[0].tokens) == 5
    with pytest.raises(SeqtagError, match="ONNX export supports LSTM encoders .* not tanh"):
        tagger.export_onnx(tmp_path / "tagger.onnx")

    folder = tmp_path / "target"
    folder.mkdir()
    (folder / "train.raw").write_text("".join(f"$T$ is {w} .\nanna\n{p}\n" for w, p in
                                              [("good", 1), ("bad", -1), ("here", 0)] * 8), encoding="utf-8")
    target = {"task": "target-sentiment", "data": {"dir": str(folder), "test": None, "dev_fraction": 0.25},
              "embeddings": {"dim": 6}, "model": {"cell": "tanh", "hidden_size": 5},
              "training": {"max_epochs": 1, "progress": False}}
    result = run(recipe_from_dict(target), tmp_path / "target-run")
    classifier = seqtag.load(result.model_path)
    assert isinstance(classifier.task.model.left, nn.RNN)
    assert classifier.predict("anna is good .", target="anna").label in classifier.labels
