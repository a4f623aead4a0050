from pathlib import Path

import pytest

from seqtag.data.conll import ReadStats, Sentence, read_conll, read_token_lines, write_conll
from seqtag.errors import DataError
from tests.conftest import FIXTURES


def write(tmp_path: Path, text: str | bytes, name: str = "data.txt") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def test_reads_columns_and_skips_docstart():
    stats = ReadStats()
    sentences = read_conll(FIXTURES / "tiny.conll", word_column=0, label_column=-1, stats=stats)
    assert [s.tokens for s in sentences][0] == ["Anna", "Berg", "visited", "Oslo", "."]
    assert sentences[1].labels == ["O", "B-ORG", "I-ORG", "O", "B-PER", "O"]
    assert sentences[0].line == 3 and sentences[1].line == 9
    assert stats.sentences == 3 and stats.tokens == 15 and stats.docstart_lines == 1


def test_choose_label_column():
    sentences = read_conll(FIXTURES / "tiny.conll", word_column=0, label_column=1)
    assert sentences[0].labels == ["NNP", "NNP", "VBD", "NNP", "."]


def test_tabs_whitespace_only_separators_crlf_and_bom(tmp_path):
    text = "\ufeffNew York\tB-LOC\r\nis\tO\r\n \t \r\nfine\tO\r\n"
    sentences = read_conll(write(tmp_path, text), label_column=1)
    assert [s.tokens for s in sentences] == [["New York", "is"], ["fine"]]
    assert sentences[0].labels == ["B-LOC", "O"]


def test_unlabelled_read_keeps_rows(tmp_path):
    sentences = read_conll(write(tmp_path, "a x\nb y\n"), label_column=None)
    assert sentences[0].labels is None and sentences[0].rows == [["a", "x"], ["b", "y"]]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("a O\nb O\nc\n", 3, "expected 2 columns"),
        ("a O\n\nb X O\n", 3, "expected 2 columns"),
        ("a\tO\n\tO\n", 2, "empty column"),
        ("a O\n", 1, "label column 5 does not exist"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, text, line, fragment):
    label = 5 if "does not exist" in fragment else -1
    path = write(tmp_path, text)
    with pytest.raises(DataError) as error:
        read_conll(path, label_column=label)
    assert error.value.line == line
    assert f"{path}:{line}:" in str(error.value)
    assert fragment in str(error.value)


def test_not_utf8_and_missing_file(tmp_path):
    path = write(tmp_path, b"ok O\n\xff\xfe O\n")
    with pytest.raises(DataError, match=r":2: not valid UTF-8"):
        read_conll(path)
    with pytest.raises(DataError, match="file not found"):
        read_conll(tmp_path / "nope.txt")


def test_writer_appends_prediction_column(tmp_path):
    sentences = read_conll(FIXTURES / "tiny.conll")[:2]
    out = tmp_path / "out.conll"
    write_conll(sentences, [s.labels for s in sentences], out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "Anna\tNNP\tB-PER\tB-PER"
    assert lines[5] == "" and len(lines) == 13
    with pytest.raises(ValueError):
        write_conll(sentences, [["O"]], out)


def test_token_lines(tmp_path):
    path = write(tmp_path, "EU rejects German call\n\n  Peter Blackburn \n")
    sentences = read_token_lines(path)
    assert [s.tokens for s in sentences] == [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"]]
    assert [s.line for s in sentences] == [1, 3]
    assert isinstance(sentences[0], Sentence)
