"""The ``seqtag`` command: train, evaluate, predict, export, info. A thin layer over the library with no
task-specific code: each task's predictor reads and writes its own file formats."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from pathlib import Path

from seqtag.errors import DataError, SeqtagError, TrainingInterrupted, shorten
from seqtag.version import __version__

# Each command imports what it needs when it runs, so that --help, --version and argument errors
# answer at once (torch and the task packages take seconds to import).

_gc_paused = False  # whether entry() paused the garbage collector for the start-up
_exit_at_once = False  # set by a command whose work is all done, its files closed, when it returns


def entry() -> int:
    """The ``seqtag`` console script: :func:`main`, with the garbage collector paused while the
    command imports its modules, and no interpreter teardown after the commands that allow it.

    Importing torch, pydantic and the task packages creates about 180,000 long-lived objects, and
    every full collection during the imports scans all of them again. :func:`_imported` then moves
    them to the collector's permanent generation (``gc.freeze``), so later collections skip them,
    and turns it back on. Tearing the interpreter down after torch (finalising thousands of
    modules) takes as long again: ``predict`` (without Ray), ``evaluate`` and ``info``, which have
    flushed and closed everything they wrote when they return, end the process at once
    (``os._exit``) after a successful run. Together these took ``seqtag predict MODEL`` on one
    sentence from about 2.8 s to 1.0 s on this project's 2-core machine (docs/performance.md).
    ``main()`` called as a function does neither."""
    global _gc_paused, _exit_at_once
    if gc.isenabled():
        gc.disable()
        _gc_paused = True
    _exit_at_once = False  # only this command's own say counts, not an earlier main() call's in this process
    code = main()
    if _exit_at_once and code == 0:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _done_exit_at_once() -> None:
    """Called by a command that has finished its work and closed its files: :func:`entry` may end
    the process without the interpreter's teardown."""
    global _exit_at_once
    _exit_at_once = True


def _imported() -> None:
    """Called by each command once its imports are done: ends the start-up pause of :func:`entry`."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()


def _train(args: argparse.Namespace) -> int:
    from seqtag.api import train
    from seqtag.evaluation import headline
    _imported()

    overrides = [*(args.set or []), *([f"training.device={args.device}"] if args.device else [])]
    result = train(args.recipe, overrides, args.output, args.resume, args.force)
    if result.model_path is None:  # a distributed run's other processes: rank 0 reports
        return 0
    print(f"model: {result.model_path}")
    if result.selection is not None:
        print(f"dev chose {result.best_epoch} epochs: dev {headline(result.best_dev or {})}")
        if result.selection.test is not None:
            print(f"test of the early-stopped model {headline(result.selection.test)}")
        print(f"refit on train + dev for {result.best_epoch} epochs")
    elif result.best_dev is not None:
        print(f"best epoch {result.best_epoch}: dev {headline(result.best_dev)}")
    if result.test is not None:
        print(f"test {headline(result.test)}")
    return 0


def _options(**values: object) -> dict[str, object]:
    """The file options the user gave (the predictor of the model's task says whether it knows them)."""
    return {name: value for name, value in values.items() if value is not None}


def _evaluate(args: argparse.Namespace) -> int:
    from seqtag.api import load
    _imported()

    predictor = load(args.model, args.runtime, args.onnx, args.device, args.threads)
    options = _options(word_column=args.word_column, label_column=args.label_column, confusion=args.confusion)
    metrics = predictor.evaluate_file(args.data, args.batch_size, **options)
    print(json.dumps(metrics, indent=2) if args.json else predictor.report(args.data, metrics))
    _done_exit_at_once()
    return 0


def _predict(args: argparse.Namespace) -> int:
    from seqtag.bulk import PredictJob, import_for, is_bulk
    from seqtag.bulk import predict as predict_files

    job = PredictJob(args.model, args.input, args.output, args.format, args.word_column, args.batch_size, args.device,
                     args.runtime, args.onnx, args.workers, args.threads, args.progress, overwrite=args.overwrite)
    # With an ONNX export, one local worker may tag without PyTorch (seqtag.tasks.tagging.lite): then
    # neither PyTorch nor the Ray integration (which imports it) is imported.
    import_for(job, args.engine)
    if args.engine == "ray":
        from seqtag.integrations.ray import ray_engine
    _imported()

    if args.ray_address is not None and args.engine != "ray":
        raise SeqtagError("--ray-address is for --engine ray")
    summary = predict_files(job, ray_engine(args.ray_address) if args.engine == "ray" else None)
    if args.output is not None and not is_bulk(job):
        print(f"wrote {summary.sentences} predictions to {args.output}", file=sys.stderr)
    if args.engine != "ray":  # Ray shuts its local cluster down at exit
        _done_exit_at_once()
    return 0


def _export(args: argparse.Namespace) -> int:
    from seqtag.api import load
    _imported()

    predictor = load(args.model, device="cpu", threads=args.threads)
    output = Path(args.output) if args.output else Path(args.model).with_suffix(".onnx")
    predictor.export_onnx(output)
    print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MB); use it with --runtime onnx")
    return 0


def _score(args: argparse.Namespace) -> int:
    from seqtag.data.conll import read_conll
    from seqtag.data.schemes import check_tags, detect_scheme, normalize_scheme
    from seqtag.evaluation import format_report, span_metrics, token_accuracy
    _imported()

    if args.predictions is None:  # conlleval input: ... gold predicted
        gold = read_conll(args.gold, 0, -2)
        predicted = [[row[-1] for row in s.rows] for s in gold]
    else:
        gold = read_conll(args.gold, 0, args.gold_column)
        predictions = read_conll(args.predictions, 0, -1)
        if len(predictions) != len(gold):
            raise DataError(f"{len(predictions)} sentences, but {args.gold} has {len(gold)}", args.predictions)
        for g, p in zip(gold, predictions, strict=True):
            if len(g) != len(p):
                raise DataError(f"{len(p)} tokens, but the gold sentence at line {g.line} has {len(g)}", p.path, p.line)
        predicted = [s.labels or [] for s in predictions]
    tags = [s.labels or [] for s in gold]
    scheme = detect_scheme(tags) if args.scheme == "auto" else normalize_scheme(args.scheme)
    for sentence in gold:
        check_tags(sentence.labels or [], scheme, sentence.path, sentence.line)
    metrics = span_metrics(tags, predicted, scheme) if scheme != "none" else {"accuracy": token_accuracy(tags, predicted)}
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"{args.gold}: {len(gold)} sentences, {sum(map(len, gold))} tokens, {scheme.upper()} (seqeval, strict)")
        print(format_report(metrics))
    return 0


def _recipe(args: argparse.Namespace) -> int:
    import yaml

    from seqtag.registry import task_entry
    _imported()

    entry = task_entry(args.task)
    if args.schema:
        print(json.dumps(entry.recipe.model_json_schema(), indent=2))
    else:
        defaults = entry.recipe.model_validate({"task": args.task}).model_dump(mode="json")
        print(yaml.safe_dump(defaults, sort_keys=False), end="")
    return 0


def _push(args: argparse.Namespace) -> int:
    from seqtag.hub import push
    _imported()

    print(f"pushed {args.model} to {push(args.model, args.repo, private=args.private)}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from seqtag.training.curves import CURVES_NAME, plot_runs
    _imported()

    output = Path(args.output) if args.output else Path(args.runs[0]) / CURVES_NAME if len(args.runs) == 1 \
        else Path("training-curves.png")
    plot_runs(args.runs, output)
    print(f"wrote {output}")
    return 0


def _lab(args: argparse.Namespace) -> int:
    from seqtag.lab import main as lab_main
    _imported()

    arguments = args.arguments[1:] if args.arguments[:1] == ["--"] else args.arguments
    return int(lab_main(arguments) or 0)


def _info(args: argparse.Namespace) -> int:
    from seqtag.evaluation import headline
    from seqtag.io import read_archive
    from seqtag.registry import TASKS
    _imported()

    content = read_archive(args.model)
    _done_exit_at_once()  # it only prints
    meta, recipe, metrics = content["meta"], content["recipe"], content["metrics"]
    parameters = sum(t.numel() for t in content["tensors"].values())
    if args.json:
        print(json.dumps({"meta": meta, "recipe": recipe, "metrics": {k: v for k, v in metrics.items() if k != "history"}}, indent=2))
        return 0
    print(f"{args.model}: seqtag {meta['seqtag_version']} model (format {meta['format_version']}), task {meta['task']}")
    print(f"  recipe: {recipe.get('name')}  seed {recipe.get('seed')}")
    entry = TASKS.get(meta["task"])
    for line in entry.predictor.summary(content) if entry is not None else []:
        print(line)
    print(f"  tensors: {parameters:,} values")
    if metrics.get("best_epoch") is not None:
        epochs = metrics.get("epochs")
        print(f"  trained {epochs} epoch{'' if epochs == 1 else 's'} in {metrics.get('seconds', 0):.0f} s; "
              f"best epoch {metrics['best_epoch']}")
    refit = metrics.get("refit")
    if refit:
        print(f"  refit on train + dev for the {refit['epochs']} epochs chosen on dev; dev {headline(refit['dev'] or {})}")
        if refit.get("early_stopped_test"):
            print(f"  test of the early-stopped model: {headline(refit['early_stopped_test'])}")
    for split in ("dev", "test"):
        if metrics.get(split):
            print(f"  {split}: {headline(metrics[split])}")
    return 0


EXIT_CODES = """exit codes:
  0    done
  1    an internal error (a bug in seqtag: --debug shows where)
  2    bad input: a recipe, data, model or checkpoint file that is wrong or cannot be read or
       written, or a wrong option (the message says which, with the file and line)
  130  interrupted (Ctrl-C; training saved a checkpoint: continue with --resume)
  141  the output pipe was closed (e.g. seqtag predict ... | head)"""


def positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shorten(text)} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqtag", description="BiLSTM-CNN-CRF sequence tagging: train, evaluate, predict.",
                                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"seqtag {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model from a YAML recipe",
                                description="Train a model from a YAML recipe. Writes recipe.yaml, metrics.jsonl and model.seqtag to the output folder.")
    train.add_argument("recipe", nargs="?", help="recipe file, e.g. recipes/conll03.yaml (not needed with --resume)")
    train.add_argument("--set", action="append", metavar="KEY.PATH=VALUE",
                       help="override a recipe value, e.g. --set data.dir=../data/conll03 --set training.max_epochs=5 (repeatable)")
    train.add_argument("--output", "-o", metavar="DIR", help="run folder (default: runs/<recipe name>)")
    train.add_argument("--force", action="store_true",
                       help="replace the run the output folder holds (without it, seqtag refuses to overwrite a run)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the run in RUN_DIR from its checkpoint (after a crash, a kill or Ctrl-C), "
                            "with the recipe and overrides it started with")
    train.set_defaults(func=_train)

    evaluate = commands.add_parser("evaluate", help="score a model on a labelled file",
                                   description="Score a model on a labelled file of its task: for taggers a CoNLL file, scored by entity "
                                               "P/R/F1 per type (seqeval, strict) or token accuracy.")
    evaluate.add_argument("model", help="model file (model.seqtag)")
    evaluate.add_argument("data", help="labelled file (CoNLL for taggers)")
    evaluate.add_argument("--word-column", type=int, help="token column (default: the recipe's)")
    evaluate.add_argument("--label-column", type=int, help="label column (default: the recipe's)")
    evaluate.add_argument("--batch-size", type=positive, default=256)
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--confusion", metavar="FILE", help="also write a tag confusion table (TSV: gold rows, predicted columns)")
    evaluate.set_defaults(func=_evaluate)

    predict = commands.add_parser("predict", help="tag files",
                                  description="Predict a file (- for stdin) in the format of the model's task: for taggers a CoNLL file "
                                              "(adds a predicted column), one pre-tokenised sentence per line, raw text or JSON lines "
                                              "(detected, or --format); every input line has its output, in order; for target "
                                              "sentiment a 3-line file; for tree sentiment one bracketed tree per line. Taggers also "
                                              "tag many or huge files into a folder (--output DIR): streamed in constant memory, "
                                              "with --workers processes or Ray actors, resumable by running the same command again.")
    predict.add_argument("model", help="model file (model.seqtag)")
    predict.add_argument("input", nargs="+", metavar="INPUT",
                         help="input file(s), or - for stdin (taggers: CoNLL, one tokenised sentence per line, raw text, "
                              "or JSON lines)")
    predict.add_argument("--output", "-o", metavar="FILE|DIR",
                         help="one input: write the predictions here (what stdout would show); a folder (an existing one, a "
                              "name ending in /, or with several inputs): one output per input, same name, written "
                              "atomically and resumable (inputs whose output exists are skipped)")
    predict.add_argument("--format", choices=("auto", "conll", "tokens", "text", "jsonl"), default="auto",
                         help="taggers' input format: conll (output: the input's lines, a tag column added); tokens (one "
                              "tokenised sentence per line; output: token/TAG pairs, line for line); text (raw text, "
                              "paragraphs between blank lines, split by the model's tokenizer; output: token/TAG lines, one "
                              "per sentence, blank lines kept); jsonl (one {\"text\": ...} or {\"tokens\": [...]} object per "
                              "line; output: the object plus \"sentences\" with tokens, tags, confidences, offsets and "
                              "entities); default auto: detected from the first lines, and said on stderr")
    predict.add_argument("--word-column", type=int, help="token column of CoNLL input (default: the recipe's)")
    predict.add_argument("--batch-size", type=positive, default=256)
    predict.add_argument("--workers", type=positive, default=1, metavar="N",
                         help="tagging processes (or Ray actors), each loading the model once (default 1: this process)")
    predict.add_argument("--threads", type=positive, metavar="N",
                         help="CPU threads in all, shared by the workers (default: all cores)")
    predict.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                         help="progress (tokens/s, ETA) on stderr: a bar on a terminal, a line every 10 s otherwise "
                              "(default: only on a terminal)")
    predict.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="run the workers as local processes (default) or Ray actors (pip install 'seqtag[ray]')")
    predict.add_argument("--ray-address", metavar="ADDR",
                         help="Ray cluster for --engine ray, e.g. ray://head:10001 (default: start Ray on this machine)")
    predict.add_argument("--overwrite", action="store_true", help="tag again inputs whose output exists in the folder")
    predict.set_defaults(func=_predict)

    train.add_argument("--device", help="auto (default: a GPU when there is one), cpu, cuda, cuda:N or mps; "
                       "the same as --set training.device=DEVICE")
    for command in (evaluate, predict):
        command.add_argument("--device", default="auto", help="auto (default: a GPU when there is one), cpu, cuda, "
                             "cuda:N or mps")
    evaluate.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                          help="compute the tagger's network with PyTorch or ONNX Runtime (see seqtag export)")
    predict.add_argument("--runtime", choices=("auto", "torch", "onnx"), default="auto",
                         help="compute the tagger's network with PyTorch or ONNX Runtime (see seqtag export); default "
                              "auto: ONNX Runtime when the model's ONNX export is there (--onnx) and the device is the CPU, "
                              "without loading PyTorch where it can (one worker; not for jsonl input), else PyTorch")
    evaluate.add_argument("--onnx", metavar="FILE", help="ONNX file for --runtime onnx (default: MODEL with suffix .onnx)")
    predict.add_argument("--onnx", metavar="FILE", help="ONNX file for --runtime onnx or auto (default: MODEL with suffix "
                         ".onnx)")

    export = commands.add_parser("export", help="export a tagger's network to ONNX",
                                 description="Write the tagger's network as an ONNX graph, checked against PyTorch, for "
                                             "faster prediction with --runtime onnx (needs pip install 'seqtag[onnx]').")
    export.add_argument("model", help="model file (model.seqtag)")
    export.add_argument("--output", "-o", metavar="FILE", help="ONNX file to write (default: MODEL with suffix .onnx)")
    for command in (evaluate, export):
        command.add_argument("--threads", type=positive, metavar="N", help="CPU threads (default: all cores)")
    export.set_defaults(func=_export)

    score = commands.add_parser("score", help="score a predictions file against gold tags (no model needed)",
                                description="Entity P/R/F1 per type (seqeval, strict) or token accuracy of predicted "
                                            "tags. One file: conlleval's input (gold and predicted tags in the last two "
                                            "columns). Two files: the gold CoNLL file and a predictions file whose last "
                                            "column holds the predicted tags, sentence for sentence.")
    score.add_argument("gold", help="gold CoNLL file (or conlleval input)")
    score.add_argument("predictions", nargs="?", help="predictions (CoNLL, predicted tag in the last column)")
    score.add_argument("--gold-column", type=int, default=-1, help="gold tag column of GOLD (default: the last)")
    score.add_argument("--scheme", default="auto", help="tag scheme (default: detected from the gold tags)")
    score.add_argument("--json", action="store_true", help="print the metrics as JSON")
    score.set_defaults(func=_score)

    recipe = commands.add_parser("recipe", help="show a task's recipe keys with their defaults, or its JSON Schema",
                                 description="Print every key of a task's recipe with its default (YAML), or the "
                                             "recipe's JSON Schema (--schema) for editor completion and checks.")
    recipe.add_argument("--task", default="tagging", help="the task: tagging (default), target-sentiment, tree-sentiment, ...")
    recipe.add_argument("--schema", action="store_true", help="print the JSON Schema instead")
    recipe.set_defaults(func=_recipe)

    push_command = commands.add_parser("push", help="share a model on the Hugging Face Hub",
                                       description="Upload a model file and a model card (recipe, data, scores) to a "
                                                   "Hugging Face Hub model repository; others load it with "
                                                   "seqtag.load('hf://OWNER/NAME'). Needs a token (huggingface-cli login).")
    push_command.add_argument("model", help="model file (model.seqtag)")
    push_command.add_argument("repo", help="hub repository, OWNER/NAME (created if needed)")
    push_command.add_argument("--private", action="store_true", help="create the repository as private")
    push_command.set_defaults(func=_push)

    plot = commands.add_parser("plot", help="draw training curves of runs",
                               description="Draw the training curves (loss, dev and test metric, learning rate, "
                                           "throughput per epoch) of one or more run folders into one PNG.")
    plot.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (with metrics.jsonl)")
    plot.add_argument("--output", "-o", metavar="FILE",
                      help="PNG to write (default: RUN_DIR/training-curves.png for one run, else ./training-curves.png)")
    plot.set_defaults(func=_plot)

    lab = commands.add_parser("lab", add_help=False, help="the long-time-lag lab: Hochreiter & Schmidhuber's problems "
                              "for every recurrent cell (seqtag lab --help)",
                              description="Train small networks of every recurrent cell on the adding, temporal-order "
                                          "and embedded Reber problems; see seqtag lab --help and the LSTM lab page.")
    lab.add_argument("arguments", nargs=argparse.REMAINDER, help="the lab's options (seqtag lab --help lists them)")
    lab.set_defaults(func=_lab)

    info = commands.add_parser("info", help="describe a model file", description="Show what a model file holds: task, tags, sizes, scores.")
    info.add_argument("model", help="model file (model.seqtag)")
    info.add_argument("--json", action="store_true", help="print meta, recipe and metrics as JSON")
    info.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``seqtag`` console script: one line on stderr and an exit code for every
    error (see :data:`EXIT_CODES`); ``--debug`` shows the traceback instead."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["lab"]:  # the lab parses its own options (argparse would take its --help)
        argv = ["lab", "--", *argv[1:]] if argv[1:] else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        # the reader went away (e.g. | head): stop quietly, and keep Python from complaining at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as error:
        if args.debug:
            raise
        code, message = describe(error)
        print(f"seqtag: {message}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("seqtag: interrupted", file=sys.stderr)
        return 130


def describe(error: BaseException) -> tuple[int, str]:
    """The exit code and the one-line message of an error that ends a command."""
    if isinstance(error, TrainingInterrupted):
        return 130, str(error)
    if isinstance(error, SeqtagError):
        return 2, f"error: {error}"
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return 2, f"error: {where}{error.strerror or error}"
    if isinstance(error, MemoryError):
        return 2, "error: out of memory (a smaller --batch-size may help)"
    return 1, (f"internal error: {type(error).__name__}: {shorten(str(error))} (this is a bug in seqtag; "
               "run again with --debug to see where, and please report it)")


if __name__ == "__main__":
    sys.exit(entry())
