"""The bracketed-tree reader: structure, SST quirks and clear errors with line and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqtag.data.trees import Tree, parse_tree, read_trees
from seqtag.errors import DataError
from tests.conftest import shared

SST = ("0", "1", "2", "3", "4")


def test_parse_structure_in_pre_order() -> None:
    tree = parse_tree("(3 (2 It) (4 (2 's) (4 great)))")
    assert tree.children == [[1, 2], [], [3, 4], [], []]
    assert tree.words == [None, "It", None, "'s", "great"]
    assert tree.labels == ["3", "2", "4", "2", "4"]
    assert tree.text() == "It 's great" and tree.text(2) == "'s great"
    assert tree.to_brackets() == "(3 (2 It) (4 (2 's) (4 great)))"
    assert tree.to_brackets(["a", "b", "c", "d", "e"]) == "(a (b It) (c (d 's) (e great)))"


def test_tokens_keep_non_ascii_spaces_and_escapes() -> None:
    tree = parse_tree("(2 (2 8\u00a01\\/2) (2 -LRB-))")
    assert tree.words[1:] == ["8\u00a01\\/2", "-LRB-"]


def test_unlabelled_trees_for_prediction() -> None:
    tree = parse_tree("((It) ((is) (fine)))", require_labels=False)
    assert tree.words == [None, "It", None, "is", "fine"]
    assert tree.labels == [None] * 5
    with pytest.raises(DataError, match="neither a word nor subtrees"):
        parse_tree("(2 (It) (2 fine))")


def test_dependency_style_tree_object() -> None:
    tree = Tree([[], [0, 2], []], ["very", "good", "film"], root=1)
    assert tree.leaves() == [1, 0, 2]  # a node's own word first, then its children
    assert tree.text() == "good very film"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("(3 (2 It) (4 great)", r"column 20: missing '\)': 1 bracket\(s\) still open"),
        ("(3 (2 It) (4 great)))", "column 21: '\\)' closes no open bracket"),
        ("(3 (2 It) ()) ", "column 12: empty brackets"),
        ("(3 (2 It (2 x)) (2 y))", "not both"),
        ("(3 (2 It) (2 y)) (2 z)", "column 18: text after the end of the tree"),
        ("(3 ((2 a) (2 b)) (2 c))", "needs a label"),
        ("(3 (2 It is) (2 y))", "found a second one: 'is'"),
        ("(3 (7 It) (2 y))", "column 5: label '7' is not one of 0, 1, 2, 3, 4"),
        ("3 (2 It)", "column 1: a tree starts with '\\(', found '3'"),
        ("(3)", "node \\(3\\) at column 1 has neither a word nor subtrees"),
    ],
)
def test_malformed_lines_name_file_line_and_column(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("(2 (2 fine) (2 line))\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=message) as caught:
        read_trees(path, labels=SST)
    assert caught.value.path == str(path) and caught.value.line == 3
    assert str(caught.value).startswith(f"{path}:3: column")


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_trees(tmp_path / "missing.txt")
    (tmp_path / "latin1.txt").write_bytes(b"(2 caf\xe9)\n")
    with pytest.raises(DataError, match="latin1.txt:1: not valid UTF-8"):
        read_trees(tmp_path / "latin1.txt")
    (tmp_path / "crlf.txt").write_bytes(b"\xef\xbb\xbf(2 a)\r\n\r\n(4 (4 b) (2 c))\r\n")
    trees = read_trees(tmp_path / "crlf.txt", labels=SST)
    assert [t.line for t in trees] == [1, 3] and trees[1].words == [None, "b", "c"]


def test_parse_error_without_a_file() -> None:
    with pytest.raises(DataError, match="^column 9: missing"):
        parse_tree("(2 (2 a)")


def test_real_sst_dev_reads() -> None:
    trees = read_trees(shared("sst", "dev.txt"), labels=SST)
    assert len(trees) == 1101
    assert all(len(kids) in (0, 2) for tree in trees for kids in tree.children)  # binarised
    assert all((w is None) == bool(kids) for tree in trees for w, kids in zip(tree.words, tree.children, strict=True))
