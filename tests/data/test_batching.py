"""Length-bucketed batches: every index once, sorted for prediction, bounded in padded tokens when asked."""

import random

import torch

from seqtag.data.batching import length_batches


def test_prediction_batches_are_sorted_and_hold_every_index_once() -> None:
    lengths = [random.Random(3).randint(1, 120) for _ in range(1000)]
    batches = length_batches(lengths, 64)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(1000)) and [lengths[i] for i in flat] == sorted(lengths)
    assert all(len(b) == 64 for b in batches[:-1])


def test_a_token_budget_cuts_batches_of_long_sentences() -> None:
    rng = random.Random(5)
    lengths = [rng.randint(1, 300) for _ in range(2000)]
    batches = length_batches(lengths, 256, max_tokens=4096)
    assert sorted(i for b in batches for i in b) == list(range(2000))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 256 and (len(batch) * longest <= 4096 or len(batch) == 1)
    assert length_batches(lengths, 256, max_tokens=10**9) == length_batches(lengths, 256)
    assert length_batches([5000], 8, max_tokens=100) == [[0]]  # one sentence longer than the budget: alone


def test_training_batches_are_shuffled_and_ignore_the_token_budget() -> None:
    lengths = list(range(1, 101))
    one = length_batches(lengths, 10, torch.Generator().manual_seed(1), max_tokens=50)
    assert sorted(len(b) for b in one) == [10] * 10
    assert one == length_batches(lengths, 10, torch.Generator().manual_seed(1))
