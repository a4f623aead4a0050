"""The LSTM variants: each against a direct transcription of its equations (values and gradients in
float64), special cases against nn.LSTM, and packed-sequence semantics on padded batches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqtag.modules.lstm_variants import GATES, VariantLSTM
from seqtag.modules.recurrent import cell

VARIANTS = sorted(GATES)


def transcription(layer: VariantLSTM, x: torch.Tensor) -> torch.Tensor:
    """The variant's equations written out for one sequence ``(T, D)``, one direction, one layer."""
    gates, hidden = layer.gates, layer.hidden_size
    w, u = layer.weight_ih_l0, layer.weight_hh_l0
    b = layer.bias_ih_l0 + layer.bias_hh_l0
    p = layer.weight_ch_l0 if layer.variant == "peephole" else None
    h = x.new_zeros(hidden)
    c = x.new_zeros(hidden)
    out = []
    for t in range(x.size(0)):
        z = w @ x[t] + u @ h + b
        block = {name: z[k * hidden:(k + 1) * hidden] for k, name in enumerate(gates)}
        i = torch.sigmoid(block["i"] + (p[0] * c if p is not None else 0)) if "i" in block else torch.ones(hidden, dtype=x.dtype)
        if layer.variant == "coupled":
            f = 1 - i
        else:
            f = torch.sigmoid(block["f"] + (p[1] * c if p is not None else 0)) if "f" in block else torch.ones(hidden, dtype=x.dtype)
        g = torch.tanh(block["g"])
        c = f * c + i * g
        o = torch.sigmoid(block["o"] + (p[2] * c if p is not None else 0)) if "o" in block else torch.ones(hidden, dtype=x.dtype)
        h = o * c if layer.variant == "noaf" else o * torch.tanh(c)
        out.append(h)
    return torch.stack(out)


@pytest.mark.parametrize("variant", VARIANTS)
def test_values_match_the_equations(variant: str) -> None:
    torch.manual_seed(1)
    layer = VariantLSTM(variant, 3, 4).double()
    x = torch.randn(1, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(layer(x, torch.tensor([5]))[0], transcription(layer, x[0]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_gradients_pass_gradcheck(variant: str) -> None:
    torch.manual_seed(2)
    layer = VariantLSTM(variant, 2, 3, bidirectional=True).double()
    x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2])
    assert torch.autograd.gradcheck(lambda inputs: layer(inputs, lengths), (x,))
    weights = [p for p in layer.parameters()]
    assert torch.autograd.gradcheck(lambda *params: torch.func.functional_call(
        layer, dict(zip([n for n, _ in layer.named_parameters()], params, strict=True)), (x.detach(), lengths)), weights)


def nn_lstm_with(layer: VariantLSTM) -> nn.LSTM:
    """nn.LSTM holding the variant's weights (4 gate blocks i f g o)."""
    lstm = nn.LSTM(layer.input_size, layer.hidden_size, batch_first=True).double()
    with torch.no_grad():
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(lstm, f"{kind}_l0").copy_(getattr(layer, f"{kind}_l0"))
    return lstm


def test_peephole_with_zero_peepholes_is_lstm() -> None:
    torch.manual_seed(3)
    layer = VariantLSTM("peephole", 3, 4).double()
    with torch.no_grad():
        layer.weight_ch_l0.zero_()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    expected, _ = nn_lstm_with(layer)(x)
    torch.testing.assert_close(layer(x, torch.tensor([6, 6])), expected)


def test_nfg_is_lstm_with_the_forget_gate_forced_open() -> None:
    torch.manual_seed(4)
    nfg = VariantLSTM("nfg", 3, 4).double()
    full = VariantLSTM("lstm", 3, 4).double()
    h = 4
    with torch.no_grad():  # i g o blocks of nfg into i _ g o of the full cell; f saturated at 1
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            source, target = getattr(nfg, f"{kind}_l0"), getattr(full, f"{kind}_l0")
            target.zero_()
            target[0:h], target[2 * h:4 * h] = source[0:h], source[h:3 * h]
        full.bias_ih_l0[h:2 * h] = 100.0  # sigmoid(100) == 1 in float64
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 3])
    torch.testing.assert_close(nfg(x, lengths), full(x, lengths))


def test_coupled_is_lstm_with_f_forced_to_one_minus_i() -> None:
    torch.manual_seed(5)
    layer = VariantLSTM("coupled", 2, 3).double()
    x = torch.randn(1, 4, 2, dtype=torch.float64)
    h = 3
    full = VariantLSTM("lstm", 2, 3).double()
    with torch.no_grad():  # the forget block's pre-activation = -(input block's): sigmoid(-z) = 1 - sigmoid(z)
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            source, target = getattr(layer, f"{kind}_l0"), getattr(full, f"{kind}_l0")
            target[0:h], target[h:2 * h], target[2 * h:4 * h] = source[0:h], -source[0:h], source[h:3 * h]
    torch.testing.assert_close(layer(x, torch.tensor([4])), full(x, torch.tensor([4])))


@pytest.mark.parametrize("variant", ["peephole", "coupled", "nfg", "noaf"])
def test_padded_batches_give_each_sequence_alone(variant: str) -> None:
    """Padding never reaches a real token's state, in either direction, in stacked layers."""
    torch.manual_seed(6)
    layer = VariantLSTM(variant, 3, 4, num_layers=2, bidirectional=True).eval()
    x = torch.randn(3, 7, 3)
    lengths = torch.tensor([7, 2, 5])
    batched = layer(x, lengths)
    for row, n in enumerate(lengths.tolist()):
        alone = layer(x[row:row + 1, :n], torch.tensor([n]))[0]
        torch.testing.assert_close(batched[row, :n], alone, rtol=1e-5, atol=1e-6)
        assert batched[row, n:].abs().sum() == 0
    states = cell(variant).final_states(layer, x, lengths)  # (B, 2H)
    torch.testing.assert_close(states[1, :4], batched[1, 1, :4])
    torch.testing.assert_close(states[1, 4:], batched[1, 0, 4:])


def test_variants_train_and_load_in_every_model(tiny_corpus, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A variant named in a recipe: the tagger's encoder and char BiRNN, and target sentiment."""
    import copy

    import seqtag
    from seqtag.registry import recipe_from_dict
    from seqtag.training.run import run
    from tests.conftest import TINY_RECIPE

    recipe = copy.deepcopy(TINY_RECIPE)
    recipe["data"] = {"dir": str(tiny_corpus), "label_column": 1}
    recipe["model"]["encoder"]["cell"] = "peephole"
    recipe["model"]["char"] = {"encoder": "lstm", "cell": "coupled", "dim": 8, "hidden_size": 6}
    recipe["training"].update({"max_epochs": 1, "threads": 1})
    result = run(recipe_from_dict(recipe), tmp_path / "tagger")
    tagger = seqtag.load(result.model_path, device="cpu")
    assert isinstance(tagger.task.model.encoder, VariantLSTM) and tagger.task.model.encoder.variant == "peephole"
    assert len(tagger.tag("Anna Berg visited Oslo.")[0].tokens) == 5
    folder = tmp_path / "target"
    folder.mkdir()
    (folder / "train.raw").write_text("".join(f"$T$ is {w} .\nanna\n{p}\n" for w, p in
                                              [("good", 1), ("bad", -1), ("here", 0)] * 8), encoding="utf-8")
    target = {"task": "target-sentiment", "data": {"dir": str(folder), "test": None, "dev_fraction": 0.25},
              "embeddings": {"dim": 6}, "model": {"cell": "nfg", "hidden_size": 5},
              "training": {"max_epochs": 1, "progress": False, "threads": 1}}
    classifier = seqtag.load(run(recipe_from_dict(target), tmp_path / "target-run").model_path, device="cpu")
    assert classifier.task.model.left.variant == "nfg"
    assert classifier.predict("anna is good .", target="anna").label in classifier.labels
