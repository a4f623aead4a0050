import json
from collections import Counter

import pytest

from seqtag.data.vocab import PAD, UNK, Vocabulary


def test_counts_order_specials_and_unknowns():
    vocab = Vocabulary.from_counts(Counter({"b": 2, "a": 2, "c": 5, "rare": 1}), min_count=2)
    assert vocab.itos == [PAD, UNK, "c", "a", "b"]
    assert vocab.stoi["c"] == 2 and "rare" not in vocab and vocab.unk_index == 1 and vocab.stoi[PAD] == 0
    assert [vocab.stoi.get(item, vocab.unk_index) for item in ["a", "zzz"]] == [3, 1]
    assert "a" in vocab and len(vocab) == 5


def test_json_round_trip():
    vocab = Vocabulary(["x", "y"], pad=False, unk=False)
    again = Vocabulary.from_json(json.loads(json.dumps(vocab.to_json())))
    assert again.itos == ["x", "y"] and again.stoi == vocab.stoi
    with pytest.raises(KeyError):
        again.stoi["z"]
    with pytest.raises(ValueError):
        _ = again.unk_index
