"""The long-time-lag lab (seqtag.lab): its generators, success criteria, initialisation and a tiny run."""

from __future__ import annotations

import json
import math
import random
import re

import pytest
import torch

from seqtag import lab
from seqtag.errors import SeqtagError
from seqtag.modules.lstm_variants import VariantLSTM

#: The Reber grammar as a regular expression, derived by hand from its graph (independent of the
#: lab's automaton): B, then T S* X or P T* V P into the X T* V P loop, out by S E or X T* V V E;
#: or P T* V V E.
REBER = r"B(?:(?:TS*X|PT*VP)(?:XT*VP)*(?:SE|XT*VVE)|PT*VVE)"
EMBEDDED_REBER = re.compile(rf"B([TP]){REBER}\1E")


def test_adding_targets_are_the_marked_sum_and_markers_sit_where_the_paper_puts_them():
    length = 40
    batch = lab.adding_batch(500, length, torch.Generator().manual_seed(0))
    values, markers = batch.inputs[..., 0], batch.inputs[..., 1]  # (B, T')
    assert batch.inputs.shape == (500, int(batch.lengths.max()), 2)
    assert int(batch.lengths.min()) >= length and int(batch.lengths.max()) <= length + length // 10
    assert ((markers == 1).sum(dim=1) == 2).all()
    first_marked_zero = 0
    for row in range(500):
        n = int(batch.lengths[row])
        marked = (markers[row] == 1).nonzero().flatten().tolist()
        assert marked[0] < 10  # X1 among the first ten pairs
        assert marked[1] < length // 2  # X2 among the first T/2 - 1 others
        assert (values[row, n:] == 0).all() and (markers[row, n:] == 0).all()  # padding
        assert markers[row, n - 1] == -1
        assert markers[row, 0] == (1 if 0 in marked else -1)
        if 0 in marked:
            assert values[row, 0] == 0
            first_marked_zero += 1
        others = [t for t in range(1, n - 1) if t not in marked]
        assert (markers[row, others] == 0).all()
        expected = 0.5 + float(values[row, marked].sum()) / 4.0
        assert float(batch.targets[row]) == pytest.approx(expected, abs=1e-6)
    assert first_marked_zero > 0  # the rare case happens in 500 sequences (about 10% of them)
    assert float(values.abs().max()) <= 1.0


def test_adding_rejects_lags_below_ten():
    with pytest.raises(SeqtagError, match="at least 10"):
        lab.adding_batch(2, 8, torch.Generator().manual_seed(0))


def test_temporal_order_symbols_positions_and_labels():
    length = 100
    batch = lab.temporal_order_batch(300, length, torch.Generator().manual_seed(1))
    symbols = batch.inputs.argmax(dim=2)  # (B, T')
    assert (batch.inputs.sum(dim=2) <= 1).all()
    seen_classes = set()
    for row in range(300):
        n = int(batch.lengths[row])
        assert length <= n <= length + length // 10
        text = "".join(lab.TEMPORAL_SYMBOLS[int(s)] for s in symbols[row, :n])
        assert text[0] == "E" and text[-1] == "B"
        relevant = [t for t, s in enumerate(text) if s in "XY"]
        assert len(relevant) == 2
        t1, t2 = relevant
        assert 10 <= t1 <= 20 and 50 <= t2 <= 60
        assert set(text[1:-1]) <= set("abcdXY")
        order = text[t1] + text[t2]
        assert lab.TEMPORAL_CLASSES[int(batch.targets[row])] == {"XX": "Q", "XY": "R", "YX": "S", "YY": "U"}[order]
        seen_classes.add(order)
        assert (batch.inputs[row, n:] == 0).all()
    assert seen_classes == {"XX", "XY", "YX", "YY"}


def test_reber_strings_are_accepted_and_corrupted_ones_rejected():
    rng = random.Random(0)
    strings = [lab.embedded_reber_string(rng) for _ in range(300)]
    for string in strings:
        assert lab.is_embedded_reber(string)
        assert EMBEDDED_REBER.fullmatch(string)
        swapped = string[:-2] + ("P" if string[-2] == "T" else "T") + "E"  # the long-lag symbol wrong
        assert not lab.is_embedded_reber(swapped) and not EMBEDDED_REBER.fullmatch(swapped)
        assert not lab.is_embedded_reber(string[:-1])  # unfinished
    assert {s[1] for s in strings} == {"T", "P"}
    # The checker and the hand-derived expression agree on mutated and random strings.
    alphabet = lab.REBER_SYMBOLS
    for _ in range(3000):
        base = list(rng.choice(strings))
        base[rng.randrange(len(base))] = rng.choice(alphabet)
        for candidate in ("".join(base), "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 14)))):
            assert lab.is_embedded_reber(candidate) == bool(EMBEDDED_REBER.fullmatch(candidate)), candidate


def test_next_symbol_sets_follow_the_grammar():
    sets = lab.next_symbol_sets("BTBTXSETE")  # a shortest string: B T (B T X S E) T E
    assert sets is not None
    assert [("".join(sorted(s))) for s in sets] == ["PT", "B", "PT", "SX", "SX", "E", "T", "E", ""]
    assert lab.next_symbol_sets("BTBTXSEPE") is None


def test_continual_stream_concatenates_strings_without_a_break():
    rng = random.Random(3)
    stream = lab.reber_stream(rng, 500)
    assert len(stream) == 500 and stream[:3] in ("BTB", "BPB")
    sets = lab.next_symbol_sets(stream, continual=True)
    assert sets is not None and len(sets) == 500
    assert lab.next_symbol_sets(stream) is None  # more than one string: not one embedded Reber string
    boundaries = [i for i in range(len(stream) - 1) if stream[i] == "E" and stream[i + 1] == "B" and sets[i] == {"B"}]
    assert len(boundaries) > 10
    whole = stream[: boundaries[-1] + 1]
    starts = [0] + [b + 1 for b in boundaries[:-1]]
    for start, end in zip(starts, boundaries):
        assert lab.is_embedded_reber(whole[start : end + 1])


def test_reber_batch_targets_and_mask():
    batch = lab.reber_batch(["BTBTXSETE", "BPBPVVEPE"])
    assert batch.inputs.shape == (2, 8, 7) and batch.targets.shape == (2, 8, 7)
    assert batch.mask is not None and batch.mask.all()
    first = batch.targets[0, 0].nonzero().flatten().tolist()
    assert sorted(lab.REBER_SYMBOLS[i] for i in first) == ["P", "T"]
    assert lab.REBER_SYMBOLS[int(batch.targets[1, 6].argmax())] == "P"  # the long-lag prediction
    stream = lab.reber_batch(["BTBTXSETEB"], continual=True)
    assert stream.inputs.shape == (1, 10, 7)
    assert lab.REBER_SYMBOLS[int(stream.targets[0, 8].argmax())] == "B"  # after E comes B
    with pytest.raises(SeqtagError, match="embedded Reber"):
        lab.reber_batch(["BTBTXSEPE"])


def test_adding_criterion():
    outputs = torch.tensor([0.50, 0.50, 0.50, 0.461])
    targets = torch.tensor([0.53, 0.55, 0.46, 0.5])
    assert lab.adding_correct(outputs, targets).tolist() == [True, False, True, True]
    settings = lab.Settings(max_wrong=20, max_error=0.01)
    assert lab.Adding().solved(lab.Evaluation(20, 2000, 0.0099), settings)
    assert not lab.Adding().solved(lab.Evaluation(21, 2000, 0.005), settings)
    assert not lab.Adding().solved(lab.Evaluation(0, 2000, 0.01), settings)


def test_temporal_criterion_needs_every_output_within_0_3():
    def logits(*probabilities: float) -> torch.Tensor:
        return torch.tensor(probabilities).log()

    outputs = torch.stack([logits(0.8, 0.1, 0.05, 0.05), logits(0.65, 0.25, 0.05, 0.05), logits(0.1, 0.8, 0.05, 0.05)])
    assert lab.temporal_correct(outputs, torch.tensor([0, 0, 0])).tolist() == [True, False, False]
    assert lab.TemporalOrder().solved(lab.Evaluation(3, 2000), lab.Settings(max_wrong=3))
    assert not lab.TemporalOrder().solved(lab.Evaluation(4, 2000), lab.Settings(max_wrong=3))


def test_reber_criterion_wants_the_possible_symbols_most_active():
    targets = torch.zeros(1, 3, 7)
    targets[0, 0, [1, 2]] = 1  # T or P
    targets[0, 1, 0] = 1  # B
    targets[0, 2, 0] = 1  # padding in the second case
    outputs = torch.full((1, 3, 7), -2.0)
    outputs[0, 0, [1, 2]] = torch.tensor([0.1, 3.0])  # both above every other output: correct
    outputs[0, 1, 0] = 1.0
    outputs[0, 2, 4] = 5.0  # wrong
    assert lab.reber_steps_correct(outputs, targets).tolist() == [[True, True, False]]
    assert lab.reber_correct(outputs, targets, torch.tensor([[True, True, False]])).tolist() == [True]
    assert lab.reber_correct(outputs, targets, torch.tensor([[True, True, True]])).tolist() == [False]
    outputs[0, 0, 5] = 0.5  # an impossible symbol above a possible one
    assert lab.reber_steps_correct(outputs, targets)[0, 0].item() is False
    evaluation = lab.Evaluation(0, 512)
    assert lab.Reber().solved(evaluation, lab.Settings()) and not lab.Reber().solved(lab.Evaluation(1, 512), lab.Settings())


def test_networks_come_from_the_registry_and_chrono_sets_the_gate_biases():
    torch.manual_seed(0)
    hidden, scale = 16, 50
    plain = lab.LabNetwork("lstm", 2, hidden, 1, per_step=False)
    assert isinstance(plain.rnn, torch.nn.LSTM)
    assert (plain.rnn.bias_ih_l0[hidden : 2 * hidden] == 1).all()  # the registry's forget bias
    network = lab.LabNetwork("lstm", 2, hidden, 1, per_step=False, chrono=scale)
    forget = network.rnn.bias_ih_l0[hidden : 2 * hidden]
    assert (forget >= 0).all() and (forget <= math.log(scale - 1) + 1e-6).all() and forget.std() > 0
    assert torch.equal(network.rnn.bias_ih_l0[:hidden], -forget)
    assert (network.rnn.bias_hh_l0[: 2 * hidden] == 0).all()
    gru = lab.LabNetwork("gru", 2, hidden, 1, per_step=False, chrono=scale)
    assert (gru.rnn.bias_ih_l0[hidden : 2 * hidden] >= 0).all() and (gru.rnn.bias_hh_l0[hidden : 2 * hidden] == 0).all()
    coupled = lab.LabNetwork("coupled", 2, hidden, 1, per_step=False, chrono=scale)
    assert isinstance(coupled.rnn, VariantLSTM) and (coupled.rnn.bias_ih_l0[:hidden] <= 0).all()
    rnn = lab.LabNetwork("rnn", 2, hidden, 1, per_step=False, chrono=scale)
    assert isinstance(rnn.rnn, torch.nn.RNN)
    batch = lab.adding_batch(3, 10, torch.Generator().manual_seed(0))
    assert network(batch).shape == (3,)
    reber = lab.LabNetwork("nfg", 7, hidden, 7, per_step=True, chrono=scale)
    assert reber(lab.reber_batch(["BTBTXSETE", "BPBPVVEPE"])).shape == (2, 8, 7)


@pytest.mark.parametrize("name", ["peephole", "coupled", "nfg", "nig", "nog", "noaf"])
def test_every_lstm_variant_runs_in_the_lab_with_chrono_biases_on_its_own_gates(name):
    torch.manual_seed(0)
    hidden, scale = 8, 50
    network = lab.LabNetwork(name, 2, hidden, 1, per_step=False, chrono=scale)
    assert isinstance(network.rnn, VariantLSTM)
    layout = lab.GATE_LAYOUT[name]
    bias = network.rnn.bias_ih_l0.detach()
    blocks = {gate: bias[i * hidden : (i + 1) * hidden] for i, gate in enumerate(layout)}
    assert len(bias) == len(layout) * hidden
    if "f" in blocks:  # the forget gate starts open, by up to log(T - 1)
        assert (blocks["f"] >= 0).all() and (blocks["f"] <= math.log(scale - 1) + 1e-6).all()
    if "i" in blocks:  # the input gate starts mostly closed
        assert (blocks["i"] <= 0).all() and blocks["i"].std() > 0
    if "f" in blocks and "i" in blocks:
        assert torch.equal(blocks["i"], -blocks["f"])
    batch = lab.adding_batch(4, 12, torch.Generator().manual_seed(0))
    loss = (network(batch) - batch.targets).pow(2).mean()
    loss.backward()
    gradients = [p.grad for p in network.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in gradients)
    assert any(g.abs().sum() > 0 for g in gradients)


def test_a_tiny_lab_writes_json_markdown_and_plot(tmp_path, capsys):
    out = tmp_path / "lab"
    argv = ["--problem", "adding", "--lengths", "10", "--cells", "lstm", "--seeds", "1", "--budget", "128",
            "--batch-size", "32", "--eval-every", "64", "--test-size", "100", "--out", str(out),
            "--markdown", str(tmp_path / "adding.md")]
    assert lab.main(argv) == 0
    document = json.loads((out / "adding.json").read_text())
    assert document["problem"] == "adding" and len(document["runs"]) == 1
    run = document["runs"][0]
    assert run["cell"] == "lstm" and run["length"] == 10 and run["sequences"] <= 128 and run["test_total"] == 100
    assert run["cpu_s"] > 0 and run["tests_run"] >= 1
    assert document["summary"][0]["runs"] == 1 and "at most 20 of 100" in document["criterion"]
    markdown = (tmp_path / "adding.md").read_text()
    assert "| cell | T = 10 |" in markdown and "| lstm |" in markdown and document["report"] == markdown
    assert "python scripts/long_lag.py --problem adding" in markdown
    assert (out / "adding.png").read_bytes()[:4] == b"\x89PNG"
    assert "| lstm |" in capsys.readouterr().out
    # --resume keeps the run and adds another seed; other settings are refused
    assert lab.main([*argv, "--seeds", "2", "--resume"]) == 0
    document = json.loads((out / "adding.json").read_text())
    assert [r["seed"] for r in document["runs"]] == [0, 1] and len(document["commands"]) == 2
    assert lab.main([*argv, "--resume"]) == 0  # nothing to run: the reports are rewritten, no command added
    assert json.loads((out / "adding.json").read_text())["commands"] == document["commands"]
    assert lab.main([*argv, "--lr", "0.5", "--resume"]) == 2
    assert "other settings" in capsys.readouterr().err
