"""Bulk tagging (seqtag.bulk, ``seqtag predict MODEL INPUT... --output DIR``): streamed in chunks,
in input order, with worker processes, resumable after a crash, written atomically."""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
import random
import signal
from pathlib import Path

import pytest

import seqtag
from seqtag.bulk import PredictJob, predict
from seqtag.cli import main
from seqtag.data.stream import Position, Sentence, read_chunks
from seqtag.errors import SeqtagError

from .conftest import ROOT, make_sentence

COMPAT = ROOT / "tests" / "fixtures" / "compat"


class Stop(Exception):
    """What the test hook raises to stop a job midway, as a crash would."""


def write_inputs(folder: Path, sentences: int = 60, seed: int = 7) -> dict[str, Path]:
    """A CoNLL file (2 columns, a -DOCSTART- line), a file of tokenised sentences and a raw-text file."""
    rng = random.Random(seed)
    made = [make_sentence(rng) for _ in range(sentences)]
    folder.mkdir(parents=True, exist_ok=True)
    conll = folder / "news.conll"
    conll.write_text("-DOCSTART- O\n\n" + "\n\n".join("\n".join(f"{w} {t}" for w, t in s) for s in made) + "\n",
                     encoding="utf-8")
    tokens = folder / "lines.txt"
    tokens.write_text("".join(" ".join(w for w, _ in s) + "\n" for s in made[::-1]), encoding="utf-8")
    text = folder / "raw.txt"
    paragraphs = []
    for i in range(0, sentences, 3):
        paragraphs.append(" ".join(" ".join(w for w, _ in s).replace(" .", ".") for s in made[i:i + 3]))
    text.write_text("\n\n".join(paragraphs) + "\n\n", encoding="utf-8")
    return {"conll": conll, "tokens": tokens, "text": text}


def stdout_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 0
    return capsys.readouterr().out


def test_several_inputs_into_a_folder_equal_the_single_file_path(tiny_model, tmp_path, capsys):
    inputs = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["predict", str(tiny_model), str(inputs["conll"]), str(inputs["tokens"]), "-o", str(out),
                 "--threads", "1"]) == 0
    assert main(["predict", str(tiny_model), str(inputs["text"]), "--format", "text", "-o", f"{out}/",
                 "--threads", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["lines.txt", "news.conll", "raw.txt"]
    predictor = seqtag.load(tiny_model)
    for kind, path in inputs.items():
        options = ["--format", "text"] if kind == "text" else []
        single = stdout_of(["predict", str(tiny_model), str(path), *options, "--threads", "1"], capsys)
        assert (out / path.name).read_text(encoding="utf-8") == single, kind
        buffer = io.StringIO()
        predictor.predict_file(path, buffer, format=kind)
        assert buffer.getvalue() == single, kind
    # the formats as documented
    conll = (out / "news.conll").read_text(encoding="utf-8")
    source = inputs["conll"].read_text(encoding="utf-8").splitlines()
    assert len(conll.splitlines()) == len(source) and conll.startswith("-DOCSTART- O\n\n")  # line for line
    assert all(line.split("\t")[:-1] == before.split() for line, before in zip(conll.splitlines()[2:], source[2:]))
    lines = (out / "lines.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 60 and all("/" in pair for line in lines for pair in line.split())
    blocks = (out / "raw.txt").read_text(encoding="utf-8").split("\n\n")
    paragraphs = [block for block in inputs["text"].read_text(encoding="utf-8").split("\n\n") if block.strip()]
    assert blocks[-1] == "" and len(blocks) - 1 == len(paragraphs)
    expected = [[s.tags for s in sentences] for sentences in predictor.pipe(paragraphs)]
    got = [[[pair.rpartition("/")[2] for pair in line.split()] for line in block.splitlines()] for block in blocks[:-1]]
    assert got == expected


def test_chunks_restart_where_a_position_says(tmp_path):
    path = write_inputs(tmp_path)["conll"]
    chunks = list(read_chunks(path, "conll", 0, chunk_tokens=40))
    assert len(chunks) > 5 and chunks[0].start == Position()
    for before, after in zip(chunks, chunks[1:]):
        assert before.end == after.start
    again = list(read_chunks(path, "conll", 0, chunk_tokens=40, start=chunks[3].start))
    assert [c.items for c in again] == [c.items for c in chunks[3:]]
    assert chunks[-1].end.offset == path.stat().st_size
    assert sum(isinstance(item, Sentence) for c in chunks for item in c.items) == 60


def test_two_workers_write_what_one_writes(tiny_model, tmp_path):
    inputs = write_inputs(tmp_path / "in", sentences=120)
    files = [inputs["conll"], inputs["tokens"]]
    one = predict(PredictJob(tiny_model, files, tmp_path / "one", workers=1, threads=1, chunk_tokens=50))
    two = predict(PredictJob(tiny_model, files, tmp_path / "two", workers=2, threads=2, chunk_tokens=50))
    assert one.sentences == two.sentences == 240 and one.tokens == two.tokens
    for path in files:
        assert (tmp_path / "two" / path.name).read_bytes() == (tmp_path / "one" / path.name).read_bytes()
    text = predict(PredictJob(tiny_model, [inputs["text"]], f"{tmp_path}/text2/", format="text", workers=2, threads=2,
                              chunk_tokens=30))
    assert text.written == [tmp_path / "text2" / "raw.txt"] and text.sentences > 40
    assert (tmp_path / "text2" / "raw.txt").read_bytes() == \
        predict_bytes(tiny_model, inputs["text"], tmp_path / "text1", format="text", chunk_tokens=30)


def predict_bytes(model: Path, path: Path, folder: Path, **options) -> bytes:  # type: ignore[no-untyped-def]
    predict(PredictJob(model, [path], folder, threads=1, folder=True, **options))
    return (folder / path.name).read_bytes()


@pytest.mark.parametrize("kind", ["conll", "tokens", "text"])
def test_a_rerun_continues_an_interrupted_job_byte_for_byte(tiny_model, tmp_path, kind, caplog):
    inputs = write_inputs(tmp_path / "in", sentences=90)
    first = tmp_path / "in" / "first.conll"
    first.write_bytes(inputs["conll"].read_bytes())
    files = [first, inputs[kind]]
    options = {"format": "text"} if kind == "text" else {}
    reference = predict_bytes(tiny_model, inputs[kind], tmp_path / "reference", chunk_tokens=40, **options)
    out = tmp_path / "out"
    seen: list[tuple[str, Position]] = []

    def crash_after_three_chunks_of_the_second_file(path: Path, chunk) -> None:  # type: ignore[no-untyped-def]
        seen.append((path.name, chunk.end))
        if path.name == inputs[kind].name and sum(name == path.name for name, _ in seen) == 3:
            # while the job is partial there is no final output, only the partial one and its record
            assert not (out / path.name).exists()
            assert (out / (path.name + ".partial")).exists()
            record = json.loads((out / (path.name + ".progress.json")).read_text())
            assert record["bytes"] == (out / (path.name + ".partial")).stat().st_size
            assert Position.from_json(record["position"]) == chunk.end
            raise Stop

    job = PredictJob(tiny_model, files, out, threads=1, chunk_tokens=40, **options)
    with pytest.raises(Stop):
        predict(job, on_chunk=crash_after_three_chunks_of_the_second_file)
    assert (out / "first.conll").exists() and not (out / inputs[kind].name).exists()
    finished = (out / "first.conll").stat().st_mtime_ns
    with (out / (inputs[kind].name + ".partial")).open("ab") as partial:
        partial.write(b"half a chunk that was written but not recorded")
    caplog.set_level(logging.INFO, logger="seqtag.bulk")
    resumed_at: list[Position] = []
    summary = predict(job, on_chunk=lambda path, chunk: resumed_at.append(chunk.start))
    assert (out / inputs[kind].name).read_bytes() == reference
    assert (out / "first.conll").stat().st_mtime_ns == finished and summary.skipped == [out / "first.conll"]
    assert "first.conll exists, skipped" in caplog.text and "continuing after" in caplog.text
    assert resumed_at[0] == seen[-1][1]  # the rerun tagged nothing twice
    assert sorted(p.name for p in out.iterdir()) == ["first.conll", inputs[kind].name]


def test_a_record_that_does_not_fit_the_job_starts_the_file_over(tiny_model, tmp_path, caplog):
    path = write_inputs(tmp_path / "in")["conll"]
    out = tmp_path / "out"

    def stop(name, chunk):  # type: ignore[no-untyped-def]
        raise Stop

    with pytest.raises(Stop):
        predict(PredictJob(tiny_model, [path], out, threads=1, chunk_tokens=40, folder=True), on_chunk=stop)
    with path.open("a") as handle:  # the input changed since
        handle.write("\nOslo O\n")
    caplog.set_level(logging.INFO, logger="seqtag.bulk")
    predict(PredictJob(tiny_model, [path], out, threads=1, chunk_tokens=40, folder=True))
    assert "starting over" in caplog.text and "input_size" in caplog.text
    assert (out / path.name).read_bytes() == predict_bytes(tiny_model, path, tmp_path / "reference", chunk_tokens=40)


def test_a_worker_that_dies_ends_the_job_with_a_clear_error(tiny_model, tmp_path):
    path = write_inputs(tmp_path / "in", sentences=200)["tokens"]

    def kill_a_worker(name, chunk):  # type: ignore[no-untyped-def]
        for child in multiprocessing.active_children():
            try:
                os.kill(child.pid, signal.SIGKILL)
                break
            except ProcessLookupError:  # killed at an earlier chunk and reaped since, though still listed
                continue

    with pytest.raises(SeqtagError, match="worker process died"):
        predict(PredictJob(tiny_model, [path], tmp_path / "out", workers=2, threads=2, chunk_tokens=20),
                on_chunk=kill_a_worker)
    assert not (tmp_path / "out" / path.name).exists()


def test_bad_input_is_one_error_naming_file_and_line(tiny_model, tmp_path, capsys):
    bad = tmp_path / "bad.conll"
    bad.write_text("Anna B-PER\nBerg I-PER\n\nOslo B-LOC extra\n", encoding="utf-8")
    good = write_inputs(tmp_path / "in")["conll"]
    assert main(["predict", str(tiny_model), str(good), str(bad), "-o", str(tmp_path / "out"), "--format", "conll",
                 "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:4: expected 2 columns" in err and "Traceback" not in err
    assert (tmp_path / "out" / good.name).exists() and not (tmp_path / "out" / bad.name).exists()
    assert main(["predict", str(tiny_model), str(good), str(tmp_path / "missing.txt"), "-o", str(tmp_path / "o2")]) == 2
    assert "missing.txt: file not found" in capsys.readouterr().err
    assert main(["predict", str(tiny_model), str(good), str(good), "-o", str(tmp_path / "o3")]) == 2
    assert "inputs need different file names" in capsys.readouterr().err
    assert main(["predict", str(tiny_model), str(good), str(bad)]) == 2
    assert "--output DIR" in capsys.readouterr().err
    assert main(["predict", str(bad), str(good), "-o", str(tmp_path / "o4")]) == 2  # not a model file
    assert "not a seqtag model file" in capsys.readouterr().err
    assert main(["predict", str(tiny_model), str(good), "-o", f"{tmp_path}/o5/", "--workers", "3",
                 "--threads", "2"]) == 2
    assert "--workers 3 needs a budget of at least 3 threads" in capsys.readouterr().err


def test_progress_lines_only_when_asked_and_never_carriage_returns(tiny_model, tmp_path, capsys):
    path = write_inputs(tmp_path / "in")["tokens"]
    assert main(["predict", str(tiny_model), str(path), "-o", str(tmp_path / "a"), "--threads", "1"]) == 0
    assert "tokens/s, ETA" not in capsys.readouterr().err
    assert main(["predict", str(tiny_model), str(path), "-o", str(tmp_path / "b"), "--threads", "1", "--progress"]) == 0
    err = capsys.readouterr().err
    assert "tokens/s, ETA" in err and "\r" not in err


def test_other_tasks_keep_their_single_file_predict_and_refuse_bulk(tmp_path, capsys):
    model, data = COMPAT / "trees.seqtag", COMPAT / "trees" / "test.txt"
    printed = stdout_of(["predict", str(model), str(data)], capsys)
    buffer = io.StringIO()
    seqtag.load(model).predict_file(data, buffer)
    assert printed == buffer.getvalue() and printed
    assert main(["predict", str(model), str(data), "-o", str(tmp_path / "trees.out")]) == 0
    assert (tmp_path / "trees.out").read_text() == printed
    for extra in (["-o", str(tmp_path / "dir") + "/"], ["--workers", "2"], [str(COMPAT / "trees" / "dev.txt"), "-o",
                                                                           str(tmp_path / "d2")]):
        assert main(["predict", str(model), str(data), *extra]) == 2
        assert "are for tagging models; this is a tree-sentiment model" in capsys.readouterr().err


def test_two_jobs_cannot_write_into_one_folder_at_once(tiny_model, tmp_path):
    inputs = write_inputs(tmp_path / "in")
    out = tmp_path / "out"
    refused: list[str] = []

    def start_a_second_job(name, chunk):  # type: ignore[no-untyped-def]
        if not refused:
            with pytest.raises(SeqtagError, match="another seqtag predict is writing into this folder") as error:
                predict(PredictJob(tiny_model, [inputs["tokens"]], out, threads=1, folder=True))
            refused.append(str(error.value))

    predict(PredictJob(tiny_model, [inputs["conll"]], out, threads=1, folder=True, chunk_tokens=100),
            on_chunk=start_a_second_job)
    assert refused and f"(process {os.getpid()})" in refused[0]
    assert sorted(p.name for p in out.iterdir()) == ["news.conll"]  # the lock is gone with the job
    predict(PredictJob(tiny_model, [inputs["tokens"]], out, threads=1, folder=True))  # and the folder free
    assert (out / "lines.txt").exists()
