"""CRF marginals (forward-backward) and n-best decoding against brute-force enumeration."""

import itertools

import pytest
import torch

from seqtag.data.schemes import allowed_transitions
from seqtag.modules.crf import CRF, crf_marginals, crf_nbest
from seqtag.modules.crf_pytorch import PytorchCRF

IOBES_LABELS = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]


def make_inputs(seed: int, batch: int, steps: int, tags: int, scale: float = 1.0):
    """Random emissions ``(B, T, K)`` and a left-aligned mask with mixed lengths (the first is full)."""
    generator = torch.Generator().manual_seed(seed)
    emissions = torch.randn(batch, steps, tags, generator=generator) * scale
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    mask = torch.arange(steps).unsqueeze(0) < lengths.unsqueeze(1)
    return emissions, mask


def randomize(crf: CRF, seed: int) -> CRF:
    """Give ``crf`` larger random parameters than its default init, so paths differ clearly."""
    generator = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        for parameter in (crf.start_transitions, crf.transitions, crf.end_transitions):
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return crf


def enumerate_paths(crf: CRF, emissions: torch.Tensor, length: int) -> dict[tuple[int, ...], float]:
    """Score of every one of the K^length paths of one sentence (``emissions`` is ``(T, K)``)."""
    start, transitions, end = (s.detach() for s in crf.scores())
    scores = {}
    for path in itertools.product(range(crf.num_tags), repeat=length):
        score = start[path[0]] + emissions[0, path[0]] + end[path[-1]]
        for t in range(1, length):
            score = score + transitions[path[t - 1], path[t]] + emissions[t, path[t]]
        scores[path] = float(score)
    return scores


def brute_force_marginals(scores: dict, length: int, num_tags: int) -> torch.Tensor:
    """``(length, K)`` marginals: normalised exp scores summed per position and tag."""
    paths = list(scores)
    weights = torch.softmax(torch.tensor([scores[p] for p in paths], dtype=torch.float64), 0)
    marginals = torch.zeros(length, num_tags, dtype=torch.float64)
    for path, weight in zip(paths, weights, strict=True):
        for t, tag in enumerate(path):
            marginals[t, tag] += weight
    return marginals


def is_allowed(path, allowed) -> bool:
    start_ok, trans_ok, end_ok = allowed
    return bool(
        start_ok[path[0]] and end_ok[path[-1]] and all(trans_ok[a, b] for a, b in zip(path, path[1:], strict=False))
    )


def copy_params(source: CRF, target: PytorchCRF) -> None:
    with torch.no_grad():
        target.crf.start_transitions.copy_(source.start_transitions)
        target.crf.transitions.copy_(source.transitions)
        target.crf.end_transitions.copy_(source.end_transitions)


# --- marginals ---------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_marginals_match_brute_force_with_mixed_lengths(seed):
    emissions, mask = make_inputs(seed, batch=5, steps=4, tags=3)
    crf = randomize(CRF(3), seed)
    marginals = crf.marginals(emissions, mask)
    assert marginals.shape == (5, 4, 3)
    for i, n in enumerate(mask.sum(1).tolist()):
        expected = brute_force_marginals(enumerate_paths(crf, emissions[i], n), n, 3)
        torch.testing.assert_close(marginals[i, :n].double(), expected, rtol=1e-5, atol=1e-6)


def test_marginal_rows_sum_to_one_and_padding_is_zero():
    emissions, mask = make_inputs(7, batch=6, steps=9, tags=5, scale=3.0)
    marginals = randomize(CRF(5), 7).marginals(emissions, mask)
    sums = marginals.sum(2)
    torch.testing.assert_close(sums[mask], torch.ones(int(mask.sum())))
    assert torch.equal(marginals[~mask], torch.zeros(int((~mask).sum()), 5))
    assert bool((marginals >= 0).all())


def test_marginals_of_one_token_sentence_are_softmax_of_start_emission_end():
    crf = randomize(CRF(4), 0)
    emissions = torch.randn(1, 1, 4)
    start, _, end = crf.scores()
    expected = torch.softmax(start + emissions[0, 0] + end, 0)
    torch.testing.assert_close(crf.marginals(emissions, torch.ones(1, 1, dtype=torch.bool))[0, 0], expected)


def test_marginals_with_constraints_give_no_mass_to_impossible_tags():
    allowed = allowed_transitions("iobes", IOBES_LABELS)
    crf = randomize(CRF(len(IOBES_LABELS), allowed), 3)
    emissions, mask = make_inputs(3, batch=4, steps=5, tags=len(IOBES_LABELS), scale=3.0)
    mask[1] = torch.tensor([1, 1, 0, 0, 0], dtype=torch.bool)
    marginals = crf.marginals(emissions, mask).detach()
    for i, n in enumerate(mask.sum(1).tolist()):
        used = torch.zeros(n, len(IOBES_LABELS), dtype=torch.bool)  # tags some allowed path uses
        for path in itertools.product(range(len(IOBES_LABELS)), repeat=n):
            if is_allowed(path, allowed):
                used[torch.arange(n), torch.tensor(path)] = True
        assert float(marginals[i, :n][~used].abs().max()) < 1e-6
        torch.testing.assert_close(marginals[i, :n].sum(1), torch.ones(n))
    # I-PER and E-PER can never start a sentence; B-PER and I-PER can never end one.
    assert float(marginals[:, 0, [2, 3]].max()) < 1e-6
    assert float(marginals[1, 1, [1, 2]].max()) < 1e-6


def test_marginals_are_differentiable():
    emissions, mask = make_inputs(2, batch=3, steps=5, tags=4)
    emissions.requires_grad_(True)
    crf = CRF(4)
    (crf.marginals(emissions, mask)[:, :, 1].sum()).backward()
    assert emissions.grad is not None and bool(torch.isfinite(emissions.grad).all())
    assert crf.transitions.grad is not None


# --- n-best ------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 3, 7])
def test_nbest_matches_brute_force_top_k_with_mixed_lengths(seed, k):
    emissions, mask = make_inputs(seed, batch=5, steps=4, tags=3)
    crf = randomize(CRF(3), seed)
    tags, scores = crf.nbest(emissions, mask, k)
    assert tags.shape == (5, k, 4) and tags.dtype == torch.long
    assert scores.shape == (5, k)
    for i, n in enumerate(mask.sum(1).tolist()):
        everything = enumerate_paths(crf, emissions[i], n)
        expected = sorted(everything, key=everything.get, reverse=True)[:k]
        real = len(expected)  # fewer than k when 3**n < k
        torch.testing.assert_close(scores[i, :real], torch.tensor([everything[p] for p in expected]))
        assert [tuple(row[:n]) for row in tags[i, :real].tolist()] == expected
        # positions past the end repeat the last tag
        assert bool((tags[i, :, n:] == tags[i, :, n - 1 : n]).all())
        # surplus entries: -inf and a copy of the best path
        assert bool(torch.isneginf(scores[i, real:]).all())
        assert bool((tags[i, real:] == tags[i, 0]).all())


@pytest.mark.parametrize("seed", range(3))
def test_nbest_is_sorted_and_entry_zero_is_viterbi(seed):
    emissions, mask = make_inputs(seed, batch=6, steps=8, tags=5, scale=2.0)
    crf = randomize(CRF(5), seed)
    tags, scores = crf.nbest(emissions, mask, 6)
    assert bool((scores[:, :-1] >= scores[:, 1:]).all())
    best_tags, best_scores = crf.decode(emissions, mask)
    assert torch.equal(tags[:, 0], best_tags)
    torch.testing.assert_close(scores[:, 0], best_scores)
    # each real entry's score is its path's sequence score, and the real paths are distinct
    # (a one-token sentence has only 5 paths, so its sixth entry is -inf)
    finite = torch.isfinite(scores)
    for r in range(6):
        rescored = crf.sequence_score(emissions, tags[:, r], mask)
        torch.testing.assert_close(scores[finite[:, r], r], rescored[finite[:, r]])
    for i, n in enumerate(mask.sum(1).tolist()):
        real = int(finite[i].sum())
        assert real == min(6, 5**n)
        assert len({tuple(row[:n]) for row in tags[i, :real].tolist()}) == real


def test_nbest_surplus_entries_when_k_exceeds_number_of_paths():
    crf = randomize(CRF(2), 0)
    emissions = torch.randn(2, 3, 2)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    tags, scores = crf.nbest(emissions, mask, 10)
    assert bool(torch.isfinite(scores[0, :8]).all()) and bool(torch.isneginf(scores[0, 8:]).all())
    assert bool(torch.isfinite(scores[1, :2]).all()) and bool(torch.isneginf(scores[1, 2:]).all())
    assert len({tuple(row) for row in tags[0, :8].tolist()}) == 8
    assert bool((tags[1, 2:] == tags[1, 0]).all())


@pytest.mark.parametrize("seed", range(3))
def test_nbest_with_constraints_never_scores_a_forbidden_path(seed):
    allowed = allowed_transitions("iobes", IOBES_LABELS)
    crf = randomize(CRF(len(IOBES_LABELS), allowed), seed)
    emissions, mask = make_inputs(seed, batch=4, steps=4, tags=len(IOBES_LABELS), scale=3.0)
    emissions[:, :, 2] += 8.0  # I-PER everywhere is what the emissions want
    k = 40
    tags, scores = crf.nbest(emissions, mask, k)
    raw_start, raw_trans, raw_end = (p.detach() for p in (crf.start_transitions, crf.transitions, crf.end_transitions))
    for i, n in enumerate(mask.sum(1).tolist()):
        valid = {}
        for path in itertools.product(range(len(IOBES_LABELS)), repeat=n):
            if is_allowed(path, allowed):
                score = raw_start[path[0]] + emissions[i, 0, path[0]] + raw_end[path[-1]]
                for t in range(1, n):
                    score = score + raw_trans[path[t - 1], path[t]] + emissions[i, t, path[t]]
                valid[path] = float(score)
        finite = torch.isfinite(scores[i])
        returned = [tuple(row[:n]) for row in tags[i][finite].tolist()]
        assert all(is_allowed(path, allowed) for path in returned)
        expected = sorted(valid, key=valid.get, reverse=True)[:k]
        assert returned == expected
        torch.testing.assert_close(scores[i][finite], torch.tensor([valid[p] for p in expected]), rtol=1e-5, atol=1e-4)


def test_nbest_rejects_bad_k_and_shapes():
    crf = CRF(3)
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="k must be positive"):
        crf.nbest(torch.zeros(2, 3, 3), mask, 0)
    with pytest.raises(ValueError, match="emissions must be"):
        crf.nbest(torch.zeros(2, 3, 4), mask, 2)
    with pytest.raises(ValueError, match="mask\\[:, 0\\]"):
        crf.marginals(torch.zeros(2, 3, 3), torch.zeros(2, 3, dtype=torch.bool))
    backend = PytorchCRF(3)
    with pytest.raises(ValueError, match="mask must be"):
        backend.marginals(torch.zeros(2, 3, 3), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="emissions must be"):
        backend.nbest(torch.zeros(2, 3, 4), mask, 2)


# --- shared functions and the pytorch-crf backend -----------------------------


def test_module_functions_match_methods():
    emissions, mask = make_inputs(5, batch=3, steps=6, tags=4)
    crf = randomize(CRF(4), 5)
    torch.testing.assert_close(crf_marginals(emissions, mask, *crf.scores()), crf.marginals(emissions, mask))
    tags, scores = crf_nbest(emissions, mask, *crf.scores(), 4)
    ours_tags, ours_scores = crf.nbest(emissions, mask, 4)
    assert torch.equal(tags, ours_tags)
    torch.testing.assert_close(scores, ours_scores)


@pytest.mark.parametrize("constrained", [False, True])
def test_pytorch_crf_backend_marginals_and_nbest_agree_with_ours(constrained):
    allowed = allowed_transitions("iobes", IOBES_LABELS) if constrained else None
    ours = randomize(CRF(len(IOBES_LABELS), allowed), 11)
    backend = PytorchCRF(len(IOBES_LABELS), allowed)
    copy_params(ours, backend)
    emissions, mask = make_inputs(11, batch=5, steps=6, tags=len(IOBES_LABELS), scale=2.0)
    torch.testing.assert_close(backend.marginals(emissions, mask), ours.marginals(emissions, mask))
    their_tags, their_scores = backend.nbest(emissions, mask, 5)
    our_tags, our_scores = ours.nbest(emissions, mask, 5)
    assert torch.equal(their_tags, our_tags)
    torch.testing.assert_close(their_scores, our_scores)
    decoded, decoded_scores = backend.decode(emissions, mask)
    assert torch.equal(their_tags[:, 0], decoded)
    torch.testing.assert_close(their_scores[:, 0], decoded_scores)
