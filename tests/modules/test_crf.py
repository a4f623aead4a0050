"""The CRF against pytorch-crf (the oracle) and brute-force enumeration."""

import itertools

import pytest
import torch
from torchcrf import CRF as OracleCRF

from seqtag.data.schemes import allowed_transitions
from seqtag.modules.crf import CRF
from seqtag.modules.crf_pytorch import PytorchCRF


def random_inputs(seed: int, batch: int = 5, steps: int = 4, tags: int = 4):
    generator = torch.Generator().manual_seed(seed)
    emissions = torch.randn(batch, steps, tags, generator=generator)
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    mask = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)
    gold = torch.randint(0, tags, (batch, steps), generator=generator)
    return emissions, gold, mask


def oracle_like(crf: CRF) -> OracleCRF:
    oracle = OracleCRF(crf.num_tags, batch_first=True)
    with torch.no_grad():
        oracle.start_transitions.copy_(crf.start_transitions)
        oracle.transitions.copy_(crf.transitions)
        oracle.end_transitions.copy_(crf.end_transitions)
    return oracle


def brute_force(crf: CRF, emissions: torch.Tensor, length: int) -> tuple[torch.Tensor, list[int], dict]:
    """log Z, best path and every path's score of one sentence, by enumerating all K^n paths."""
    start, transitions, end = crf.scores()
    scores = {}
    for path in itertools.product(range(crf.num_tags), repeat=length):
        score = start[path[0]] + emissions[0, path[0]]
        for t in range(1, length):
            score = score + transitions[path[t - 1], path[t]] + emissions[t, path[t]]
        scores[path] = score + end[path[-1]]
    stacked = torch.stack(list(scores.values()))
    best = max(scores, key=lambda p: float(scores[p].detach()))
    return torch.logsumexp(stacked, 0), list(best), scores


@pytest.mark.parametrize("seed", range(5))
def test_log_likelihood_and_viterbi_match_pytorch_crf(seed):
    torch.manual_seed(seed)
    emissions, gold, mask = random_inputs(seed, batch=6, steps=7, tags=5)
    crf = CRF(5)
    oracle = oracle_like(crf)
    ours = crf.log_likelihood(emissions, gold, mask)
    theirs = oracle(emissions, gold, mask, reduction="none")
    torch.testing.assert_close(ours, theirs)
    paths, _ = crf.decode(emissions, mask)
    lengths = mask.sum(1).tolist()
    assert [paths[i, :n].tolist() for i, n in enumerate(lengths)] == oracle.decode(emissions, mask)


@pytest.mark.parametrize("seed", range(3))
def test_gradients_match_pytorch_crf(seed):
    """The hand-written backward pass of log Z against autograd through pytorch-crf."""
    emissions, gold, mask = random_inputs(seed, batch=4, steps=6, tags=4)
    emissions.requires_grad_(True)
    crf = CRF(4)
    oracle = oracle_like(crf)
    weights = torch.rand(4)  # a different upstream gradient per sentence
    (crf(emissions, gold, mask) * weights).sum().backward()
    ours = emissions.grad.clone()
    emissions.grad = None
    (-oracle(emissions, gold, mask, reduction="none") * weights).sum().backward()
    torch.testing.assert_close(ours, emissions.grad)
    for name in ("transitions", "start_transitions", "end_transitions"):
        torch.testing.assert_close(getattr(crf, name).grad, getattr(oracle, name).grad)


def test_constrained_log_partition_gradients_match_autograd_through_brute_force():
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    torch.manual_seed(0)
    crf = CRF(len(labels), allowed_transitions("iobes", labels))
    emissions = (torch.randn(3, 4, len(labels)) * 3).requires_grad_(True)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    parameters = [emissions, crf.start_transitions, crf.transitions, crf.end_transitions]
    ours = torch.autograd.grad(crf.log_partition(emissions, mask).sum(), parameters)
    expected_z = sum(brute_force(crf, emissions[i], n)[0] for i, n in enumerate(mask.sum(1).tolist()))
    expected = torch.autograd.grad(expected_z, parameters)
    for a, b in zip(ours, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_partition_and_viterbi_match_brute_force(seed):
    torch.manual_seed(seed)
    emissions, gold, mask = random_inputs(seed, batch=4, steps=4, tags=3)
    crf = CRF(3)
    log_z = crf.log_partition(emissions, mask)
    paths, best_scores = crf.decode(emissions, mask)
    for i, n in enumerate(mask.sum(1).tolist()):
        expected_z, expected_path, scores = brute_force(crf, emissions[i], n)
        torch.testing.assert_close(log_z[i], expected_z)
        assert paths[i, :n].tolist() == expected_path
        torch.testing.assert_close(best_scores[i], scores[tuple(expected_path)])
        gold_path = tuple(gold[i, :n].tolist())
        torch.testing.assert_close(crf.sequence_score(emissions, gold, mask)[i], scores[gold_path])


def test_constraints_in_training_and_decoding_match_brute_force_over_allowed_paths():
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    allowed = allowed_transitions("iobes", labels)
    torch.manual_seed(0)
    crf = CRF(len(labels), allowed)
    emissions = torch.randn(3, 4, len(labels)) * 3
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    start_ok, trans_ok, end_ok = allowed
    log_z = crf.log_partition(emissions, mask)
    paths, _ = crf.decode(emissions, mask)
    raw_start, raw_trans, raw_end = crf.start_transitions, crf.transitions, crf.end_transitions
    for i, n in enumerate(mask.sum(1).tolist()):
        valid = {}
        for path in itertools.product(range(len(labels)), repeat=n):
            if not (start_ok[path[0]] and end_ok[path[-1]] and all(trans_ok[a, b] for a, b in zip(path, path[1:]))):
                continue
            score = raw_start[path[0]] + emissions[i, 0, path[0]] + raw_end[path[-1]]
            for t in range(1, n):
                score = score + raw_trans[path[t - 1], path[t]] + emissions[i, t, path[t]]
            valid[path] = score
        expected_z = torch.logsumexp(torch.stack(list(valid.values())), 0)
        torch.testing.assert_close(log_z[i], expected_z, rtol=1e-5, atol=1e-4)
        assert tuple(paths[i, :n].tolist()) == max(valid, key=lambda p: float(valid[p].detach()))


def test_constrained_decoding_never_outputs_forbidden_sequence():
    labels = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    crf = CRF(len(labels), allowed_transitions("iob2", labels))
    emissions = torch.zeros(1, 3, len(labels))
    emissions[0, :, 2] = 10.0  # I-LOC everywhere is what the emissions want
    paths, _ = crf.decode(emissions, torch.ones(1, 3, dtype=torch.bool))
    assert paths[0, 0].item() != 2  # may not start with I-LOC


def test_pytorch_crf_backend_agrees_with_ours():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    allowed = allowed_transitions("iob2", labels)
    ours = CRF(len(labels), allowed)
    backend = PytorchCRF(len(labels), allowed)
    with torch.no_grad():
        backend.crf.start_transitions.copy_(ours.start_transitions)
        backend.crf.transitions.copy_(ours.transitions)
        backend.crf.end_transitions.copy_(ours.end_transitions)
    emissions, _, mask = random_inputs(1, batch=5, steps=6, tags=len(labels))
    gold = torch.zeros(5, 6, dtype=torch.long)  # all O: always allowed
    torch.testing.assert_close(backend.log_likelihood(emissions, gold, mask), ours.log_likelihood(emissions, gold, mask))
    ours_paths, ours_scores = ours.decode(emissions, mask)
    their_paths, their_scores = backend.decode(emissions, mask)
    assert torch.equal(ours_paths, their_paths)
    torch.testing.assert_close(ours_scores, their_scores)


def test_clear_errors_on_bad_shapes():
    crf = CRF(3)
    with pytest.raises(ValueError, match="emissions must be"):
        crf.decode(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask\\[:, 0\\]"):
        crf.decode(torch.zeros(2, 3, 3), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="tags must be"):
        crf.log_likelihood(torch.zeros(2, 3, 3), torch.zeros(2, 4, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool))


def test_log_partition_is_stable_for_extreme_scores():
    """The probability-space recursion rescales at every step: huge or tiny scores
    give the same log Z as pytorch-crf's log-space one, and finite gradients."""
    emissions, gold, mask = random_inputs(5, batch=4, steps=30, tags=6)
    crf = CRF(6)
    with torch.no_grad():
        crf.transitions.mul_(300.0)
    oracle = oracle_like(crf)
    for scale in (1e-3, 1.0, 500.0):
        scaled = (emissions * scale).requires_grad_(True)
        ours = crf.log_likelihood(scaled, gold, mask)
        torch.testing.assert_close(ours, oracle(scaled, gold, mask, reduction="none"), rtol=1e-4, atol=1e-2)
        ours.sum().backward()
        assert torch.isfinite(scaled.grad).all() and torch.isfinite(crf.transitions.grad).all()
