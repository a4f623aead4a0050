"""``seqtag predict`` input and output: every input line has its output, in order, in every format;
line ends of every kind; format detection; stdin, JSON lines, closed pipes and missing files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import seqtag
from seqtag.cli import main
from seqtag.data.stream import detect_format, read_chunks

MODEL = Path(__file__).resolve().parent / "fixtures" / "compat" / "tagging.seqtag"

PARAGRAPHS = [
    "Obama visited Berlin, Germany. He met Merkel there.\nThe talks went well, officials said.",
    "\"We're pleased,\" a spokesman for the EU told Reuters on Monday.",
    "Paris",
]
RAW = PARAGRAPHS[0] + "\n\n" + PARAGRAPHS[1] + "\n\n\n" + PARAGRAPHS[2] + "\n"
TOKENS = "EU rejects German call\n\n   \nPeter Blackburn\nBRUSSELS 1996-08-22\n"
CONLL = ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n\n-DOCSTART- -X- -X- O\n"
         "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n")
JSONL = '{"text": "Obama visited Berlin. He met Merkel.", "id": 1}\n\n{"tokens": ["Peter", "Blackburn"], "id": 2}\n'


@pytest.fixture(scope="module")
def tagger() -> seqtag.TaggingPredictor:
    return seqtag.load(MODEL, threads=1)


def predict(tagger: seqtag.TaggingPredictor, text: str, format: str = "auto", tmp_path: Path | None = None) -> str:
    assert tmp_path is not None
    path = tmp_path / f"input-{format}"
    path.write_bytes(text.encode("utf-8"))
    out = io.StringIO()
    tagger.predict_file(path, out, format=format)
    return out.getvalue()


def test_token_lines_line_for_line_blank_lines_kept(tagger, tmp_path):
    out = predict(tagger, TOKENS, "tokens", tmp_path).split("\n")
    assert len(out) == len(TOKENS.split("\n")) == 6
    assert [bool(line.strip()) for line in out] == [bool(line.strip()) for line in TOKENS.split("\n")]
    assert [pair.rpartition("/")[0] for pair in out[3].split()] == ["Peter", "Blackburn"]


def test_conll_keeps_docstart_lines_and_every_separator(tagger, tmp_path):
    out = predict(tagger, CONLL, "conll", tmp_path)
    source, lines = CONLL.splitlines(), out.splitlines()
    assert len(lines) == len(source) and out.endswith("\n\n")
    for before, after in zip(source, lines):
        if before.startswith("-DOCSTART-") or not before:
            assert after == before
        else:
            assert after.split("\t")[:-1] == before.split() and after.split("\t")[-1] in tagger.task.tags.itos
    # a -DOCSTART- line right after a sentence ends it
    assert [len(c.inputs) for c in read_chunks(tmp_path / "input-conll", "conll")] == [2]


def test_raw_text_equals_tag_sentence_for_sentence_paragraph_breaks_kept(tagger, tmp_path):
    out = predict(tagger, RAW, "text", tmp_path)
    blocks = out.split("\n\n")
    assert blocks[1].startswith("\"/") and out.count("\n\n\n") == 1  # the two blank lines before "Paris" stay
    expected = [[[(t.text, t.tag) for t in s.tokens] for s in tagger.tag(p)] for p in PARAGRAPHS]
    got = [[[tuple(pair.rsplit("/", 1)) for pair in line.split()] for line in block.strip("\n").splitlines()]
           for block in blocks if block.strip()]
    assert got == expected
    assert len(expected[0]) == 3  # the line break inside the paragraph does not end a sentence


def test_jsonl_has_offsets_entities_and_every_key_of_the_input(tagger, tmp_path):
    lines = predict(tagger, JSONL, "jsonl", tmp_path).split("\n")
    assert len(lines) == len(JSONL.split("\n")) and lines[1] == ""
    first, second = json.loads(lines[0]), json.loads(lines[2])
    assert first["id"] == 1 and second["id"] == 2 and second["tokens"] == ["Peter", "Blackburn"]
    expected = tagger.tag(first["text"])
    assert [s["tags"] for s in first["sentences"]] == [s.tags for s in expected]
    assert [[(e["text"], e["label"], e["start"], e["end"]) for e in s["entities"]] for s in first["sentences"]] == [
        [(e.text, e.label, e.start_char, e.end_char) for e in s.entities] for s in expected]
    for sentence in first["sentences"]:
        assert [first["text"][a:b] for a, b in sentence["offsets"]] == sentence["tokens"]
    assert second["sentences"][0]["tags"] == tagger.tag_tokens(["Peter", "Blackburn"]).tags


@pytest.mark.parametrize("bad", ['{"text": 3}', '[1, 2]', '{"text": "a", "tokens": ["a"]}', '{"tokens": ["a b"]}',
                                 '{"text": "x", "sentences": []}', '{"text": ', "[" * 100_000])
def test_bad_json_lines_name_the_line(tagger, tmp_path, bad):
    with pytest.raises(seqtag.DataError, match=r"input-jsonl:2: "):
        predict(tagger, '{"text": "fine"}\n' + bad + "\n", "jsonl", tmp_path)


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("format", ["conll", "tokens", "text", "jsonl"])
def test_every_line_end_reads_the_same(tagger, tmp_path, format, end):
    text = {"conll": CONLL, "tokens": TOKENS, "text": RAW, "jsonl": JSONL}[format]
    assert predict(tagger, text.replace("\n", end), format, tmp_path) == predict(tagger, text, format, tmp_path)


def test_detection_never_takes_plain_text_for_conll():
    assert detect_format(["Hello world", "", "Good bye"]) != "conll"
    assert detect_format(["Obama visited Berlin, Germany.", "He met Merkel."]) == "text"
    assert detect_format(["EU rejects German call to boycott British lamb .", "Peter Blackburn"]) == "tokens"
    assert detect_format(["EU rejects German call ."]) == "tokens"
    # one pre-tokenised sentence of many words ending in punctuation is not a one-token CoNLL file
    assert detect_format(["EU rejects German call to boycott British lamb ."]) == "tokens"
    assert detect_format(["EU rejects German call to boycott British lamb .", "Peter met Anna in the old town ."]) == "tokens"
    conllu = ["1\tEU\teu\tPROPN\tNNP\t_\t2\tnsubj\t_\tB-ORG", "2\trejects\treject\tVERB\tVBZ\t_\t0\troot\t_\tO"]
    assert detect_format(conllu) == "conll"
    assert detect_format(["EU rejects German call .", "Peter met Anna there ."]) == "tokens"
    assert detect_format(CONLL.splitlines()) == "conll"
    assert detect_format(["EU B-ORG", "rejects O", "", "Peter B-PER"]) == "conll"
    assert detect_format(["EU", "rejects", "", "Peter"]) == "conll"  # tokens only, one per line
    assert detect_format(["The DT", "dog NN", "barks VBZ", ". ."]) == "conll"
    assert detect_format(JSONL.splitlines()) == "jsonl"
    assert detect_format([]) == "tokens"


def run(*argv: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqtag.cli", *argv], input=stdin, capture_output=True, text=True,
                          timeout=120)


def test_stdin_detected_format_said_on_stderr():
    result = run("predict", str(MODEL), "-", "--threads", "1", stdin=RAW)
    assert result.returncode == 0, result.stderr
    assert "stdin: read as text (raw text; detected" in result.stderr
    assert result.stdout.splitlines()[0].startswith("Obama/")


def test_closed_pipe_ends_quietly_and_a_missing_file_is_one_line(tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("EU rejects German call to boycott British lamb .\n" * 20000, encoding="utf-8")
    command = f"{sys.executable} -m seqtag.cli predict {MODEL} {big} --threads 1 | head -2"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120)
    assert len(result.stdout.splitlines()) == 2
    assert "Traceback" not in result.stderr and "Error" not in result.stderr, result.stderr
    missing = run("predict", str(MODEL), str(tmp_path / "nothere.txt"))
    assert missing.returncode != 0 and missing.stderr.strip() == f"seqtag: error: {tmp_path / 'nothere.txt'}: file not found"


def test_stdin_is_the_only_input_of_a_job(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("x\n", encoding="utf-8")
    assert main(["predict", str(MODEL), "-", str(tmp_path / "a.txt"), "-o", str(tmp_path / "out")]) != 0
    assert "stdin can be read only once" in capsys.readouterr().err
