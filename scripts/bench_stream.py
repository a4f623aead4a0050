#!/usr/bin/env python
"""Benchmark of streaming bulk tagging (``seqtag predict MODEL INPUT --output DIR``).

Builds a ~10 MB and a ~100 MB CoNLL file by repeating a source file (default: the CoNLL-03 test
set) under ``--workdir`` (in /tmp, never in the repository), then runs ``seqtag predict`` as
subprocesses and measures:

* peak RSS of the command (``os.wait4``'s rusage of the child) on 10 MB and on 100 MB, one
  worker in the command's own process: streaming means the two differ by little (< 50 MB);
* tokens/s with ``--workers 1``, ``--workers 2`` and ``--engine ray --workers 2`` on 100 MB
  (``--throughput-file small``: on 10 MB, where each worker's model loading, about 4 CPU seconds,
  weighs): the rate the command reports (tokens over the seconds from reading the model to the
  last write) and tokens over the whole wall time of the process, with the CPU seconds of the
  command and its workers and the load average before it (other jobs on the machine show there);
  every output must equal the ``--workers 1`` output byte for byte;
* kill and rerun: a ``--workers 2`` job on 100 MB is SIGKILLed once its progress record shows
  about half the input read, then run again; the output must equal an uninterrupted run's,
  compared by SHA-256 (the uninterrupted run is the 100 MB RSS run).

    python scripts/bench_stream.py --model /tmp/conll03-1ep/model.seqtag

The model: any tagging model file; the CoNLL-03 recipe's after one epoch has the real vocabulary
(``seqtag train recipes/conll03.yaml --set data.dir=../shared/data/conll03 --set
training.max_epochs=1 -o /tmp/conll03-1ep``). Prints a table and writes JSON (``--json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(r"tagged ([\d,]+) sentences, ([\d,]+) tokens in ([\d.]+) s \(([\d,]+) tokens/s\)")


def make_corpus(source: Path, target: Path, megabytes: float) -> Path:
    """``target``: whole copies of ``source`` up to at least ``megabytes`` MB (reused when it is there)."""
    data = source.read_bytes()
    if not data.endswith(b"\n\n"):
        data = data.rstrip(b"\n") + b"\n\n"
    copies = max(1, round(megabytes * 2**20 / len(data)))
    if not target.exists() or target.stat().st_size != copies * len(data):
        with target.open("wb") as out:
            for _ in range(copies):
                out.write(data)
    return target


def command(model: Path, path: Path, output: Path, workers: int, threads: int, engine: str = "local") -> list[str]:
    return [sys.executable, "-m", "seqtag.cli", "predict", str(model), str(path), "--output", f"{output}/",
            "--workers", str(workers), "--threads", str(threads), "--engine", engine]


def run(argv: list[str]) -> dict:
    """Run a command to its end; its wall time, peak RSS (MB) and the figures of its summary line."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    stderr_file = process.stderr
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stderr = stderr_file.read() if stderr_file else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(argv)}\n{stderr[-3000:]}")
    match = SUMMARY.search(stderr)
    if match is None:
        raise SystemExit(f"no summary line in the output of {' '.join(argv)}:\n{stderr[-3000:]}")
    tokens = int(match.group(2).replace(",", ""))
    return {
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # kilobytes on Linux
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "load_before": round(load, 2),
        "sentences": int(match.group(1).replace(",", "")),
        "tokens": tokens,
        "seconds": float(match.group(3)),
        "tokens_per_s": int(match.group(4).replace(",", "")),
        "tokens_per_s_wall": round(tokens / wall),
    }


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def kill_midway_and_rerun(argv: list[str], output: Path, name: str, size: int, share: float) -> dict:
    """SIGKILL ``argv`` once its progress record shows ``share`` of the input read, then run it again."""
    record = output / f"{name}.progress.json"
    final = output / name
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, start_new_session=True)
    at_kill = None
    while process.poll() is None:
        try:
            state = json.loads(record.read_text())
        except (OSError, ValueError):
            state = None
        if state and state["position"]["offset"] >= share * size:
            os.kill(process.pid, signal.SIGKILL)  # the driver only: its workers must notice and go
            process.wait()
            at_kill = state
            break
        time.sleep(0.2)
    if at_kill is None:
        raise SystemExit("the job ended before it could be killed midway; use a bigger file")
    time.sleep(3.0)  # workers watch their parent once a second
    orphans = subprocess.run(["pgrep", "-s", str(process.pid)], capture_output=True, text=True).stdout.split()
    partial_exists = (output / f"{name}.partial").exists()
    final_existed = final.exists()
    rerun = run(argv)
    return {
        "killed_at_offset": at_kill["position"]["offset"],
        "killed_at_sentences": at_kill["position"]["items"],
        "killed_at_output_bytes": at_kill["bytes"],
        "partial_left": partial_exists,
        "final_existed_after_kill": final_existed,
        "worker_processes_left": len(orphans),
        "rerun": rerun,
        "sha256": sha256(final),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("/tmp/conll03-1ep/model.seqtag"))
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "conll03" / "test.txt")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/seqtag-bench-stream"))
    parser.add_argument("--small-mb", type=float, default=10)
    parser.add_argument("--big-mb", type=float, default=100)
    parser.add_argument("--skip-ray", action="store_true", help="leave out --engine ray")
    parser.add_argument("--throughput-file", choices=("small", "big"), default="big",
                        help="the file of the --workers 2 and --engine ray runs (default: big; the small one is "
                             "dominated by each worker's model loading)")
    parser.add_argument("--throughput-only", action="store_true",
                        help="only the tokens/s runs (no RSS comparison, no kill and rerun)")
    parser.add_argument("--json", type=Path, help="results file (default: WORKDIR/bench_stream.json)")
    args = parser.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"{args.model}: no model file; train one first, e.g. seqtag train recipes/conll03.yaml "
                         "--set data.dir=../shared/data/conll03 --set training.max_epochs=1 -o /tmp/conll03-1ep")
    args.workdir.mkdir(parents=True, exist_ok=True)
    small = make_corpus(args.source, args.workdir / "small.conll", args.small_mb)
    big = make_corpus(args.source, args.workdir / "big.conll", args.big_mb)

    def fresh(name: str) -> Path:
        folder = args.workdir / name
        shutil.rmtree(folder, ignore_errors=True)
        return folder

    results: dict = {"model": str(args.model), "source": str(args.source), "cores": os.cpu_count(),
                     "files_mb": {"small": round(small.stat().st_size / 2**20, 1), "big": round(big.stat().st_size / 2**20, 1)}}
    print(f"files: {small} {results['files_mb']['small']} MB, {big} {results['files_mb']['big']} MB", flush=True)
    speed = small if args.throughput_file == "small" else big
    size = "10 MB" if speed is small else "100 MB"
    runs: dict = {}

    def measure(name: str, label: str, path: Path, workers: int, threads: int, engine: str = "local") -> dict:
        runs[name] = {"label": label, **run(command(args.model, path, fresh(name), workers, threads, engine))}
        print(f"{label}: {runs[name]}", flush=True)
        return runs[name]

    measure("small_w1", "10 MB, --workers 1 --threads 1", small, 1, 1)
    if not args.throughput_only:
        measure("big_w1", "100 MB, --workers 1 --threads 1", big, 1, 1)
    w1 = "small_w1" if speed is small else "big_w1"
    if w1 not in runs:
        measure(w1, f"{size}, --workers 1 --threads 1", speed, 1, 1)
    reference = sha256(args.workdir / w1 / speed.name)
    measure("speed_w2", f"{size}, --workers 2 --threads 2", speed, 2, 2)
    results["workers_2_equal_workers_1"] = sha256(args.workdir / "speed_w2" / speed.name) == reference
    if not args.skip_ray:
        measure("speed_ray2", f"{size}, --engine ray --workers 2 --threads 2", speed, 2, 2, engine="ray")
        results["ray_equal_workers_1"] = sha256(args.workdir / "speed_ray2" / speed.name) == reference
    results["runs"] = runs
    checks = [results["workers_2_equal_workers_1"], results.get("ray_equal_workers_1", True)]
    kill = None
    if not args.throughput_only:
        results["peak_rss_mb"] = {"small": runs["small_w1"]["peak_rss_mb"], "big": runs["big_w1"]["peak_rss_mb"]}
        results["peak_rss_difference_mb"] = round(runs["big_w1"]["peak_rss_mb"] - runs["small_w1"]["peak_rss_mb"], 1)
        big_reference = sha256(args.workdir / "big_w1" / big.name)
        kill = kill_midway_and_rerun(command(args.model, big, fresh("big_killed"), 2, 2), args.workdir / "big_killed",
                                     big.name, big.stat().st_size, 0.5)
        kill["equal_to_uninterrupted"] = kill["sha256"] == big_reference
        kill["rerun"]["label"] = "100 MB rerun after SIGKILL at 50%, --workers 2"
        results["kill_and_rerun"] = kill
        results["reference_sha256"] = big_reference
        print("kill and rerun:", kill, flush=True)
        checks += [results["peak_rss_difference_mb"] < 50, kill["equal_to_uninterrupted"]]

    rows = list(runs.values()) + ([kill["rerun"]] if kill else [])
    print()
    print(f"{'run':<48} {'tokens':>11} {'tokens/s':>9} {'wall tok/s':>10} {'wall s':>7} {'CPU s':>7} {'load':>5} "
          f"{'peak RSS MB':>11}")
    for row in rows:
        print(f"{row['label']:<48} {row['tokens']:>11,} {row['tokens_per_s']:>9,} {row['tokens_per_s_wall']:>10,} "
              f"{row['wall_s']:>7.1f} {row['cpu_s']:>7.1f} {row['load_before']:>5.1f} {row['peak_rss_mb']:>11.1f}")
    print("(tokens/s: as the command reports it, from reading the model to the last write; wall tok/s: over the whole "
          "process; CPU s: user + system of the command and its workers; load: the 1-minute load average before it)")
    if not args.throughput_only:
        print(f"\npeak RSS 10 MB vs 100 MB (1 worker): {results['peak_rss_mb']['small']} vs {results['peak_rss_mb']['big']} MB "
              f"(difference {results['peak_rss_difference_mb']} MB; must be < 50)")
    print(f"--workers 2 output equal to --workers 1: {results['workers_2_equal_workers_1']}" +
          (f"; --engine ray equal: {results['ray_equal_workers_1']}" if "ray_equal_workers_1" in results else ""))
    if kill:
        print(f"kill at {kill['killed_at_offset'] / 2**20:.1f} MB read ({kill['killed_at_sentences']:,} sentences): final "
              f"file existed {kill['final_existed_after_kill']}, partial left {kill['partial_left']}, worker processes "
              f"left {kill['worker_processes_left']}; rerun output equal to the uninterrupted run's (SHA-256): "
              f"{kill['equal_to_uninterrupted']}")
    target = args.json or args.workdir / "bench_stream.json"
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {target}")
    sys.exit(0 if all(checks) else 1)


if __name__ == "__main__":
    main()
