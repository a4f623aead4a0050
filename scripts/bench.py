#!/usr/bin/env python
"""Throughput benchmark of the seqtag tagger on CoNLL-2003.

Measures, each in a fresh subprocess so that thread settings and peak
memory are clean:

* training throughput: sentences/s over the first ``--train-sentences``
  training sentences (file order, then seqtag's length-bucketed shuffled
  batches) after a warm-up on the ``--warmup`` sentences that follow them,
  for each batch size and thread count;
* prediction throughput: tokens/s tagging the whole test set (pre-tokenised),
  plus model load time, peak RSS and the test F1 of the predictions; with
  ``--onnx`` also with the network run by ONNX Runtime (``seqtag export``),
  through PyTorch (``predict-onnx``) and as ``seqtag predict`` runs an export,
  without PyTorch (``predict-lite``: :mod:`seqtag.tasks.tagging.lite`);
* the command line as users run it (``--cli``, on by default): wall time of
  ``seqtag --version`` and of ``seqtag predict MODEL`` on one sentence, and
  ``seqtag predict MODEL test.txt`` end to end (start-up, load, read, tag,
  write), each with its peak RSS (medians of ``--repeats`` runs), with
  ``--runtime torch`` and (with an ONNX export, made for the purpose) again
  without PyTorch.

The model is the CoNLL-03 recipe's (Ma & Hovy: GloVe 50d, char CNN 30x3,
BiLSTM 200, CRF). Prediction uses ``--model`` if given (a trained file),
otherwise a freshly initialised model saved to a temporary file (speed does
not depend on the weights).

    python scripts/bench.py --data ../shared/data/conll03 --threads 1,2 --batch-sizes 10,32

Prints a table and writes the results as JSON (``--json``, default
``bench-results.json``).

``--vs-flair`` also runs the flair peer of ``../shared/bench`` (set it up
first with ``../shared/bench/run_flair.sh setup``) on the same data, the
two alternating ``--repeats`` times for each measurement, and prints the
medians and the ratio seqtag / flair. Machines are noisy: only ratios
measured in one invocation mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "conll03.yaml"


def peak_rss_mb() -> float:
    """This process's peak resident memory: ``VmHWM`` of /proc/self/status where there is one (the
    rusage peak would include the parent's memory this worker was forked from: Linux keeps it
    across exec), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _task(data: str, overrides: list[str]):
    from seqtag.registry import load_recipe
    from seqtag.tasks.tagging.task import TaggingTask
    from seqtag.training.trainer import seed_everything

    recipe = load_recipe(RECIPE, [f"data.dir={data}", "training.progress=false", *overrides])
    seed_everything(recipe.seed)
    return TaggingTask.from_recipe(recipe)


def worker_train(args: argparse.Namespace) -> dict:
    import torch

    from seqtag.training.optim import make_optimizer
    from seqtag.training.trainer import WeightAverage

    torch.set_num_threads(args.threads)
    task, splits = _task(args.data, args.set or [])
    config = task.recipe.training
    average = WeightAverage(task.model, config.average_decay) if config.average_decay else None
    train = splits["train"]
    timed = train[: args.train_sentences]
    warm = train[args.train_sentences : args.train_sentences + args.warmup]
    optimizer = make_optimizer(task.model.parameters(), config)
    generator = torch.Generator().manual_seed(1)
    parameters = [p for p in task.model.parameters() if p.requires_grad]
    task.model.train()

    def run(sentences) -> None:
        for batch in task.batches(sentences, args.batch_size, shuffle=True, generator=generator):
            optimizer.zero_grad(set_to_none=True)
            loss = task.loss(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, config.clip_grad_norm or float("inf"), foreach=True)
            optimizer.step()
            if average is not None:  # the recipe's weight averaging is part of its step
                average.update()

    run(warm)
    task.encoded(timed)  # encoding is done once per training run, not per epoch: keep it out of the timing
    started = time.perf_counter()
    run(timed)
    seconds = time.perf_counter() - started
    tokens = sum(len(s) for s in timed)
    return {"what": "train", "threads": args.threads, "batch": args.batch_size, "sentences": len(timed),
            "tokens": tokens, "seconds": round(seconds, 3), "sent_per_s": round(len(timed) / seconds, 1),
            "tok_per_s": round(tokens / seconds, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def worker_predict(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from seqtag.data.conll import read_conll

    started = time.perf_counter()
    import seqtag

    tagger = seqtag.load(args.model, runtime="onnx" if args.onnx_file else "torch", onnx=args.onnx_file)
    load_seconds = time.perf_counter() - started
    test = read_conll(Path(args.data) / "test.txt", 0, 3)
    tagger.task.predict(test[:300], args.batch_size)  # warm-up
    tokens = sum(len(s) for s in test)

    def timed(run) -> float:
        started = time.perf_counter()
        run()
        return time.perf_counter() - started

    # tags only (CLI path), the full API on pre-tokenised sentences (with confidences),
    # and the full API on raw text (tokenizer + sentence splitter + tagging)
    seconds = timed(lambda: tagger.task.predict(test, args.batch_size))
    api_seconds = timed(lambda: tagger.tag_batch([s.tokens for s in test], args.batch_size))
    raw = [" ".join(s.tokens) for s in test]
    raw_tokens = 0

    def run_raw() -> None:
        nonlocal raw_tokens
        raw_tokens = sum(len(s.tokens) for result in tagger.pipe(raw, batch_size=args.batch_size) for s in result)

    raw_seconds = timed(run_raw)
    f1 = tagger.task.score([s.labels for s in test], tagger.task.predict(test, args.batch_size)).get("f1")
    return {"what": "predict-onnx" if args.onnx_file else "predict", "f1": f1, "threads": args.threads, "batch": args.batch_size, "sentences": len(test),
            "tokens": tokens, "seconds": round(seconds, 3), "tok_per_s": round(tokens / seconds, 1),
            "sent_per_s": round(len(test) / seconds, 1), "api_tok_per_s": round(tokens / api_seconds, 1),
            "raw_tokens": raw_tokens, "raw_tok_per_s": round(raw_tokens / raw_seconds, 1),
            "raw_vs_api": round((raw_tokens / raw_seconds) / (tokens / api_seconds), 3),
            "load_seconds": round(load_seconds, 2), "peak_rss_mb": round(peak_rss_mb(), 1)}


def worker_predict_lite(args: argparse.Namespace) -> dict:
    """Prediction as ``seqtag predict`` does it with an ONNX export: no PyTorch in the process."""
    started = time.perf_counter()
    from seqtag.data.conll import read_conll
    from seqtag.tasks.tagging.lite import LiteTagger

    tagger = LiteTagger.open(args.model, args.onnx_file, args.threads)
    load_seconds = time.perf_counter() - started
    test = read_conll(Path(args.data) / "test.txt", 0, 3)
    tagger.predict(test[:300], args.batch_size)  # warm-up
    tokens = sum(len(s) for s in test)
    started = time.perf_counter()
    predicted = tagger.predict(test, args.batch_size)
    seconds = time.perf_counter() - started
    raw = [" ".join(s.tokens) for s in test]
    started = time.perf_counter()
    raw_tokens = sum(len(tokens) for paragraph in tagger.tag_paragraphs(raw, args.batch_size) for tokens, _ in paragraph)
    raw_seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    torch_free = "torch" not in sys.modules
    from seqtag.evaluation import span_metrics  # imports torch: after the measurements

    f1 = span_metrics([s.labels for s in test], predicted, tagger.corpus_scheme)["f1"]
    return {"what": "predict-lite", "f1": f1, "threads": args.threads, "batch": args.batch_size, "sentences": len(test),
            "tokens": tokens, "seconds": round(seconds, 3), "tok_per_s": round(tokens / seconds, 1),
            "sent_per_s": round(len(test) / seconds, 1), "raw_tokens": raw_tokens,
            "raw_tok_per_s": round(raw_tokens / raw_seconds, 1), "load_seconds": round(load_seconds, 2),
            "peak_rss_mb": round(peak, 1), "torch_free": torch_free}


def spawn(args: argparse.Namespace, extra: list[str]) -> dict:
    command = [sys.executable, __file__, "--data", args.data, *extra]
    for item in args.set or []:
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": extra[extra.index("--threads") + 1]}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"benchmark worker failed:\n{result.stderr[-3000:]}")
    line = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


PEERS = Path(os.environ.get("PEERS", Path.home() / ".cache" / "seqtag-peers"))
FLAIR_BENCH = ROOT.parent / "shared" / "bench" / "flair_bench.py"


def spawn_flair(arguments: list[str], threads: int) -> dict:
    python = PEERS / "venv-flair" / "bin" / "python"
    if not python.exists() or not FLAIR_BENCH.exists():
        raise SystemExit(f"flair peer not set up: run {FLAIR_BENCH.parent / 'run_flair.sh'} setup first")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PEERS": str(PEERS),
           "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([str(python), str(FLAIR_BENCH), *arguments, "--threads", str(threads)],
                            capture_output=True, text=True, env=env)
    lines = [json.loads(line[7:]) for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    measured = [r for r in lines if r.get("what") in ("train", "infer")]
    if result.returncode != 0 or not measured:
        raise SystemExit(f"flair worker failed:\n{result.stderr[-3000:]}")
    return measured[-1]


def versus_flair(args: argparse.Namespace, threads: list[int], batch_sizes: list[int], model: str, folder: Path,
                 exported: Path | None = None) -> list[dict]:
    """Alternate seqtag and flair runs of the same measurement; medians and ratios. With ``exported`` (an
    ONNX export of ``model``), prediction is also measured as ``seqtag predict`` runs it with the export
    (ONNX Runtime, no PyTorch: the ``predict-lite`` row), in the same alternation."""
    rows = []
    flair_model = folder / "flair.pt"
    spawn_flair(["train", "--batch", "10", "--n-sent", "100", "--warmup", "10", "--save", str(flair_model)], max(threads))
    for t in threads:
        plans = [("train", b) for b in batch_sizes] + [("predict", args.predict_batch_size)]
        for what, batch in plans:
            ours, theirs, lite = [], [], []
            for _ in range(args.repeats):
                if what == "train":
                    ours.append(spawn(args, ["--worker", "train", "--threads", str(t), "--batch-size", str(batch),
                                             "--train-sentences", str(args.train_sentences), "--warmup", str(args.warmup)])["sent_per_s"])
                    theirs.append(spawn_flair(["train", "--batch", str(batch), "--n-sent", str(args.train_sentences),
                                               "--warmup", str(args.warmup)], t)["sent_per_s"])
                else:
                    ours.append(spawn(args, ["--worker", "predict", "--threads", str(t), "--model", model,
                                             "--batch-size", str(batch)])["tok_per_s"])
                    theirs.append(spawn_flair(["infer", "--model", str(flair_model), "--batches", str(batch)], t)["tok_per_s"])
                    if exported is not None:
                        lite.append(spawn(args, ["--worker", "predict-lite", "--threads", str(t), "--model", model,
                                                 "--batch-size", str(batch), "--onnx-file", str(exported)])["tok_per_s"])
            unit = "sent/s" if what == "train" else "tokens/s"
            for name, figures in ((what, ours), ("predict-lite", lite)):
                if not figures:
                    continue
                row = {"what": name, "threads": t, "batch": batch, "unit": unit, "seqtag": figures, "flair": theirs,
                       "seqtag_median": statistics.median(figures), "flair_median": statistics.median(theirs)}
                row["ratio"] = row["seqtag_median"] / row["flair_median"]
                rows.append(row)
                print(f"vs flair {name:<12} threads={t} batch={batch:<4} seqtag {row['seqtag_median']:>9.1f}  flair "
                      f"{row['flair_median']:>9.1f} {unit}  ratio {row['ratio']:.2f}", file=sys.stderr)
    return rows


def _command_line() -> list[str]:
    """The ``seqtag`` console script of this Python (not a version-manager shim), or ``python -m seqtag.cli``."""
    script = Path(sys.executable).parent / "seqtag"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "seqtag.cli"]


def _run_measured(command: list[str], threads: int) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one run of ``command``; SystemExit if it fails.

    The peak comes from GNU time (``/usr/bin/time -f %M``) when it is there: a child forked from
    this process would report this process's own peak, which the fork copies (Linux keeps the
    high-water mark across fork and exec).
    """
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    gnu_time = Path("/usr/bin/time")
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as report:
        prefix = [str(gnu_time), "-f", "%M", "-o", report.name] if gnu_time.exists() else []
        started = time.perf_counter()
        result = subprocess.run([*prefix, *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr.decode()[-3000:]}")
        text = report.read().strip().splitlines()
    peak_kb = float(text[-1]) if prefix and text else float("nan")
    return seconds, peak_kb / 1024.0


def command_line_figures(args: argparse.Namespace, model: str, threads: int, folder: Path) -> list[dict]:
    """``seqtag --version``, ``seqtag predict`` on one sentence and on the whole test set, as users run them."""
    from seqtag.data.conll import read_conll

    test = Path(args.data) / "test.txt"
    tokens = sum(len(s) for s in read_conll(test, 0, 3))
    one = folder / "one-sentence.txt"
    one.write_text("EU rejects German call to boycott British lamb .\n", encoding="utf-8")
    seqtag = _command_line()
    plans = [("--version", [*seqtag, "--version"], 0),
             ("predict one", [*seqtag, "predict", model, str(one), "--format", "tokens", "--threads", str(threads),
                              "--runtime", "torch", "-o", str(folder / "one.out")], 0),
             ("predict test", [*seqtag, "predict", model, str(test), "--threads", str(threads), "--runtime", "torch",
                               "-o", str(folder / "test.out")], tokens)]
    exported = _cli_onnx_export(model, folder)
    if exported is not None:  # the same inputs with the model's ONNX export: tagged without PyTorch
        plans += [("predict one onnx", [*seqtag, "predict", model, str(one), "--format", "tokens", "--threads",
                                        str(threads), "--runtime", "onnx", "--onnx", str(exported), "-o",
                                        str(folder / "one-onnx.out")], 0),
                  ("predict test onnx", [*seqtag, "predict", model, str(test), "--threads", str(threads), "--runtime",
                                         "onnx", "--onnx", str(exported), "-o", str(folder / "test-onnx.out")], tokens)]
    rows = []
    for what, command, count in plans:
        runs = [_run_measured(command, threads) for _ in range(args.repeats)]
        seconds = statistics.median(r[0] for r in runs)
        rows.append({"what": what, "threads": threads, "seconds": round(seconds, 3),
                     "peak_rss_mb": round(statistics.median(r[1] for r in runs), 1),
                     "tok_per_s": round(count / seconds, 1) if count else None, "runs": [list(r) for r in runs]})
        print(f"cli {what:<17} threads={threads} {seconds:6.2f} s  peak RSS {rows[-1]['peak_rss_mb']:.0f} MB",
              file=sys.stderr)
    return rows


def _cli_onnx_export(model: str, folder: Path) -> Path | None:
    """An ONNX export of ``model`` for ``seqtag predict --runtime onnx`` (None, said on stderr, without seqtag[onnx])."""
    import seqtag
    from seqtag.errors import SeqtagError

    try:
        return seqtag.load(model).export_onnx(folder / "cli-model.onnx")
    except (SeqtagError, ImportError) as error:
        print(f"cli predict one onnx: skipped ({error})", file=sys.stderr)
        return None


def make_untrained_model(args: argparse.Namespace, folder: Path) -> Path:
    task, _ = _task(args.data, args.set or [])
    return task.save(folder / "untrained.seqtag")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "conll03"), help="CoNLL-03 folder")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--batch-sizes", default="10,32", help="training batch sizes")
    parser.add_argument("--predict-batch-size", type=int, default=256)
    parser.add_argument("--train-sentences", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--model", help="trained model file for the prediction benchmark")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="recipe override (repeatable)")
    parser.add_argument("--json", default="bench-results.json", help="where to write the results")
    parser.add_argument("--vs-flair", action="store_true", help="also run the flair peer, alternating, and print ratios")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repetitions per measurement with --vs-flair")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-predict", action="store_true")
    parser.add_argument("--skip-cli", action="store_true", help="do not time the command line (start-up, predict)")
    parser.add_argument("--onnx", action="store_true",
                        help="also measure prediction with ONNX Runtime (exports the model; needs seqtag[onnx])")
    parser.add_argument("--onnx-file", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=("train", "predict", "predict-lite"), help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        args.threads = int(args.threads)
        workers = {"train": worker_train, "predict": worker_predict, "predict-lite": worker_predict_lite}
        result = workers[args.worker](args)
        print("RESULT " + json.dumps(result), flush=True)
        return

    threads = [int(t) for t in args.threads.split(",")]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    results: list[dict] = []
    versus: list[dict] = []
    cli: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        needs_model = not (args.skip_predict and args.skip_cli and not args.vs_flair)
        model = args.model or (str(make_untrained_model(args, Path(folder))) if needs_model else "")
        if not args.skip_train:
            for t in threads:
                for b in batch_sizes:
                    results.append(spawn(args, ["--worker", "train", "--threads", str(t), "--batch-size", str(b),
                                                "--train-sentences", str(args.train_sentences), "--warmup", str(args.warmup)]))
                    print(f"train   threads={t} batch={b:<4} {results[-1]['sent_per_s']:>8.1f} sentences/s", file=sys.stderr)
        exported = None
        if args.onnx and model:
            import seqtag
            from seqtag.tasks.tagging.onnx import export_onnx

            exported = export_onnx(seqtag.load(model).task, Path(folder) / "model.onnx")
        if not args.skip_predict:
            # PyTorch, ONNX Runtime through PyTorch, ONNX Runtime without PyTorch (seqtag predict's path)
            runtimes = [["predict"]]
            if exported is not None:
                runtimes += [["predict", "--onnx-file", str(exported)], ["predict-lite", "--onnx-file", str(exported)]]
            for t in threads:
                for worker, *runtime in runtimes:  # one after the other
                    results.append(spawn(args, ["--worker", worker, "--threads", str(t), "--model", model,
                                                "--batch-size", str(args.predict_batch_size), *runtime]))
                    print(f"{results[-1]['what']} threads={t} batch={args.predict_batch_size:<4} "
                          f"{results[-1]['tok_per_s']:>8.0f} tokens/s", file=sys.stderr)
        if not args.skip_cli:
            cli = command_line_figures(args, model, max(threads), Path(folder))
        if args.vs_flair:
            versus = versus_flair(args, threads, batch_sizes, model, Path(folder), exported)
    print(f"\nseqtag {_version()} | torch {_torch_version()} | {os.cpu_count()} CPUs | CoNLL-03 ({args.data})")
    print(f"{'measure':<13}{'threads':>8}{'batch':>7}{'sent/s':>10}{'tokens/s':>11}{'load s':>8}{'peak RSS MB':>13}")
    for r in results:
        load = f"{r['load_seconds']:.2f}" if "load_seconds" in r else "-"
        print(f"{r['what']:<13}{r['threads']:>8}{r['batch']:>7}{r['sent_per_s']:>10.1f}{r['tok_per_s']:>11.0f}{load:>8}{r['peak_rss_mb']:>13.0f}")
    for r in results:
        if r["what"] in ("predict", "predict-onnx"):
            runtime = "ONNX Runtime" if r["what"] == "predict-onnx" else "PyTorch"
            print(f"API ({runtime}), {r['threads']} thread(s): pre-tokenised tag_batch {r['api_tok_per_s']:.0f} tokens/s, "
                  f"raw text pipe {r['raw_tok_per_s']:.0f} tokens/s ({100 * r['raw_vs_api']:.0f}%); test F1 {r['f1']:.2f}")
        elif r["what"] == "predict-lite":
            print(f"ONNX Runtime without PyTorch (seqtag predict), {r['threads']} thread(s): raw text "
                  f"{r['raw_tok_per_s']:.0f} tokens/s; test F1 {r['f1']:.2f}; torch imported: {not r['torch_free']}")
    torch_rows = {r["threads"]: r for r in results if r["what"] == "predict"}
    for r in results:
        if r["what"] in ("predict-onnx", "predict-lite") and r["threads"] in torch_rows:
            base = torch_rows[r["threads"]]
            print(f"{r['what']} / PyTorch, {r['threads']} thread(s): {r['tok_per_s'] / base['tok_per_s']:.2f}x tokens/s, "
                  f"test F1 {r['f1']:.2f} vs {base['f1']:.2f}")
    if cli:
        print(f"\ncommand line ({cli[0]['threads']} threads, medians of {args.repeats} runs)")
        for r in cli:
            rate = f"{r['tok_per_s']:>9.0f} tokens/s" if r["tok_per_s"] else ""
            print(f"seqtag {r['what']:<18}{r['seconds']:>7.2f} s  peak RSS {r['peak_rss_mb']:>5.0f} MB  {rate}")
    if versus:
        print(f"\nside by side with flair (medians of {args.repeats} alternating runs)")
        print(f"{'measure':<14}{'threads':>8}{'batch':>7}{'seqtag':>11}{'flair':>11}  {'unit':<9}{'ratio':>6}")
        for r in versus:
            print(f"{r['what']:<14}{r['threads']:>8}{r['batch']:>7}{r['seqtag_median']:>11.1f}{r['flair_median']:>11.1f}  {r['unit']:<9}{r['ratio']:>6.2f}")
    Path(args.json).write_text(json.dumps({"results": results, "cli": cli, "vs_flair": versus, "version": _version()}, indent=2) + "\n")
    print(f"\nwrote {args.json}")


def _version() -> str:
    from seqtag.version import __version__

    return __version__


def _torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    main()
