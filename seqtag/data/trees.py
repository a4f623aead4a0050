"""Bracketed trees (Penn Treebank style), as in the Stanford Sentiment Treebank.

One tree per line::

    (3 (2 It) (4 (2 's) (4 great)))

Every node is ``(LABEL WORD)`` (a leaf) or ``(LABEL SUBTREE SUBTREE ...)``.
Blank lines are skipped. Every malformed line raises a
:class:`~seqtag.errors.DataError` naming the file, the line and the column
of the problem.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path

from seqtag.data.files import read_lines
from seqtag.errors import DataError, shorten, shown


@dataclass
class Tree:
    """A tree as flat lists indexed by node id (``0 .. n-1``).

    ``children[i]`` lists node ``i``'s children in order; ``words[i]`` is the
    word node ``i`` reads (``None`` for nodes that only combine children);
    ``labels[i]`` is its label as written (``None`` when unlabelled). Trees read
    from brackets number their nodes in pre-order, so the root is node 0; a tree
    built by hand may use any numbering, ``root`` says which node is the root.
    ``path`` and ``line`` say where the tree was read from.

    The same structure holds constituency trees (words on leaves only) and
    dependency trees (every node reads a word and may have children).
    """

    children: list[list[int]]
    words: list[str | None]
    labels: list[str | None] = field(default_factory=list)
    root: int = 0
    path: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        if not self.labels:
            self.labels = [None] * len(self.children)

    def __len__(self) -> int:
        return len(self.children)

    def _walk(self, node: int | None = None) -> Iterator[tuple[int, bool]]:
        """``(node, True)`` on entering each node of the subtree of ``node`` in pre-order and
        ``(node, False)`` once its subtree is done; iterative, one step per node.

        Raises:
            DataError: a child id out of range, or a node reached twice (a cycle or two parents),
                instead of looping for ever on a malformed hand-built tree.
        """
        n = len(self.children)
        start = self.root if node is None else node
        if not isinstance(start, Integral) or not 0 <= start < n:
            raise DataError(f"node {shown(start)} is not a node of this tree (0..{n - 1})", self.path, self.line)
        seen = 0
        stack: list[tuple[int, bool]] = [(start, True)]
        while stack:
            current, entering = stack.pop()
            yield current, entering
            if not entering:
                continue
            seen += 1
            if seen > n:
                raise DataError("malformed tree: a node is reached twice from the root (a cycle or a node with "
                                "two parents)", self.path, self.line)
            stack.append((current, False))
            kids = self.children[current]
            for child in reversed(kids):
                if not isinstance(child, Integral) or not 0 <= child < n:
                    raise DataError(f"malformed tree: node {current} has a child {shown(child)} outside 0..{n - 1}",
                                    self.path, self.line)
                stack.append((child, True))

    def leaves(self, node: int | None = None) -> list[int]:
        """Word-bearing nodes under ``node`` (default: the root), in left-to-right order.

        For a dependency tree a node's own word comes before its children's.
        """
        words = self.words
        return [current for current, entering in self._walk(node) if entering and words[current] is not None]

    def text(self, node: int | None = None) -> str:
        """The words under ``node`` (default: the whole tree) joined by spaces."""
        return " ".join(self.words[i] or "" for i in self.leaves(node))

    @property
    def tokens(self) -> list[str]:
        """All words of the tree in order."""
        return [self.words[i] or "" for i in self.leaves()]

    def spans(self) -> list[tuple[int, int]]:
        """For every node, the ``[start, end)`` range of :attr:`tokens` that it spans.

        A node's words are a contiguous run of the tree's words (a subtree is a contiguous
        part of the pre-order), so ``text(node) == " ".join(tokens[start:end])``. One pass
        over the nodes (no recursion); nodes unreachable from the root get ``(0, 0)``.
        """
        spans = [(0, 0)] * len(self.children)
        starts = [0] * len(self.children)
        count = 0
        for node, entering in self._walk():
            if entering:
                starts[node] = count
                if self.words[node] is not None:
                    count += 1
            else:
                spans[node] = (starts[node], count)
        return spans

    def to_brackets(self, labels: Sequence[str] | None = None) -> str:
        """Write the tree in bracket form, with ``labels`` (one per node) instead of its own.

        Iterative and linear in the number of nodes, so trees of any depth can be written.
        """
        labels = labels if labels is not None else [label if label is not None else "_" for label in self.labels]
        parts: list[str] = []
        first = True
        for node, entering in self._walk():
            if not entering:
                parts.append(")")
                continue
            if not first:
                parts.append(" ")  # every node but the root is a child, after its parent's label or a sibling
            first = False
            parts.append(f"({labels[node]}")
            if self.words[node] is not None:
                parts.append(f" {self.words[node]}")
        return "".join(parts)






_SPACE = frozenset(" \t\r\n\f\v")  # ASCII only: SST has tokens such as "8\xa01\/2"


def _tokens(text: str) -> Iterator[tuple[str, int]]:
    """``(`` / ``)`` / atoms with their 1-based column; atoms end at ASCII whitespace or brackets."""
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in _SPACE:
            i += 1
        elif char in "()":
            yield char, i + 1
            i += 1
        else:
            start = i
            while i < n and text[i] not in _SPACE and text[i] not in "()":
                i += 1
            yield text[start:i], start + 1


def parse_tree(
    text: str,
    path: str | Path | None = None,
    line: int | None = None,
    labels: Collection[str] | None = None,
    require_labels: bool = True,
) -> Tree:
    """Parse one bracketed tree.

    Args:
        text: e.g. ``"(3 (2 It) (4 (2 's) (4 great)))"``.
        path, line: where the text comes from (for error messages).
        labels: if given, the labels allowed on nodes (e.g. ``{"0", ..., "4"}``).
        require_labels: when false, ``(It)``-style unlabelled leaves and ``((2 a) (2 b))``
            unlabelled nodes are accepted (for prediction input).

    Raises:
        DataError: unbalanced or empty brackets, a node without a label or
            children, a node mixing a word and subtrees, text after the tree,
            or a label outside ``labels``; the message gives the column.
    """
    where = str(path) if path is not None else None

    def fail(message: str, column: int) -> DataError:
        prefix = "" if where is not None else (f"line {line}: " if line is not None else "")
        return DataError(f"{prefix}column {column}: {message}", where, line)

    children: list[list[int]] = []
    words: list[str | None] = []
    node_labels: list[str | None] = []
    columns: list[int] = []
    # Each open node: [node id, has subtrees, word or None, expecting label]
    stack: list[list] = []
    finished = False
    tokens = list(_tokens(text))
    if not tokens:
        raise fail("empty tree", 1)
    if tokens[0][0] != "(":
        raise fail(f"a tree starts with '(', found {shown(tokens[0][0])}", tokens[0][1])
    for token, column in tokens:
        if finished:
            if token == ")":
                raise fail("')' closes no open bracket (one ')' too many)", column)
            raise fail(f"text after the end of the tree: {shown(token)} (one tree per line)", column)
        if token == "(":
            node = len(children)
            if stack:
                parent = stack[-1]
                if parent[3]:
                    if require_labels:
                        raise fail("a node needs a label before its first subtree, e.g. '(2 (2 a) (2 b))'", column)
                    parent[3] = False
                if parent[2] is not None:
                    raise fail(f"a node holds either one word or subtrees, not both (word {shown(parent[2])})", column)
                parent[1] = True
                children[parent[0]].append(node)
            children.append([])
            words.append(None)
            node_labels.append(None)
            columns.append(column)
            stack.append([node, False, None, True])
        elif token == ")":
            if not stack:
                raise fail("')' closes no open bracket", column)
            node, has_subtrees, word, expecting_label = stack.pop()
            if expecting_label:
                raise fail("empty brackets '()'", column)
            if not has_subtrees and word is None:
                if require_labels or node_labels[node] is None:
                    raise fail(f"node ({shorten(str(node_labels[node]))}) at column {columns[node]} has neither a word nor subtrees", column)
                # "(It)" without labels: the atom was a word, not a label
                words[node], node_labels[node] = node_labels[node], None
            words[node] = words[node] if word is None else word
            if not stack:
                finished = True
        else:
            if not stack:
                raise fail(f"text outside brackets: {shown(token)}", column)
            top = stack[-1]
            if top[3]:
                node_labels[top[0]] = token
                top[3] = False
            elif top[1]:
                raise fail(f"a node holds either one word or subtrees, not both (word {shown(token)})", column)
            elif top[2] is not None:
                raise fail(f"a leaf holds one word, found a second one: {shown(token)} after {shown(top[2])}", column)
            else:
                top[2] = token
    if stack:
        raise fail(f"missing ')': {len(stack)} bracket(s) still open at the end of the line", len(text.rstrip()) + 1)
    if labels is not None:
        for node, label in enumerate(node_labels):
            if label is None or label not in labels:
                raise fail(f"label {shown(label)} is not one of {', '.join(sorted(labels))}", columns[node] + 1)
    return Tree(children, words, node_labels, 0, where, line)


def read_trees(path: str | Path, labels: Collection[str] | None = None, require_labels: bool = True) -> list[Tree]:
    """Read a file of bracketed trees, one per line (UTF-8; BOM and CRLF accepted; blank lines skipped).

    See :func:`parse_tree` for ``labels`` and ``require_labels``.
    """
    return list(iter_trees(path, labels, require_labels))


def iter_trees(path: str | Path, labels: Collection[str] | None = None, require_labels: bool = True) -> Iterator[Tree]:
    """Stream the trees of a file; see :func:`read_trees`."""
    path = str(path)
    for number, text in read_lines(path):
        if text.strip():
            yield parse_tree(text, path, number, labels, require_labels)
