"""The ``seqtag`` command: train, evaluate, predict, export, info. Thin layer over the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from seqtag.errors import SeqtagError


def _train(args: argparse.Namespace) -> int:
    from seqtag.training.run import run_recipe

    result = run_recipe(args.recipe, args.set or [], args.output, args.resume)
    print(f"model: {result.model_path}")
    if result.selection is not None:
        print(f"dev chose {result.best_epoch} epochs: dev {_headline(result.best_dev or {})}")
        if result.selection.test is not None:
            print(f"test of the early-stopped model {_headline(result.selection.test)}")
        print(f"refit on train + dev for {result.best_epoch} epochs")
    elif result.best_dev is not None:
        print(f"best epoch {result.best_epoch}: dev {_headline(result.best_dev)}")
    if result.test is not None:
        print(f"test {_headline(result.test)}")
    return 0


def _headline(metrics: dict) -> str:
    if "f1" in metrics:
        return f"F1 {metrics['f1']:.2f} (precision {metrics['precision']:.2f}, recall {metrics['recall']:.2f})"
    return ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, float))


def _evaluate(args: argparse.Namespace) -> int:
    from seqtag.data.conll import read_conll
    from seqtag.evaluation import format_report
    from seqtag.predictor import load

    tagger = load(args.model, args.runtime, args.onnx)
    if tagger.task.name != "tagging":  # other tasks read their own file format
        metrics = tagger.evaluate_file(args.data, args.batch_size)
        print(json.dumps(metrics, indent=2) if args.json else f"{args.data}: {_headline(metrics)}")
        return 0
    data = tagger.task.recipe.data
    word_column = data.word_column if args.word_column is None else args.word_column
    label_column = data.label_column if args.label_column is None else args.label_column
    sentences = read_conll(args.data, word_column, label_column)
    predicted = tagger.task.predict(sentences, args.batch_size)
    metrics = tagger.task.score([s.labels or [] for s in sentences], predicted)
    if args.confusion:
        from seqtag.evaluation import confusion_table

        Path(args.confusion).write_text(confusion_table([s.labels or [] for s in sentences], predicted), encoding="utf-8")
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"{args.data}: {len(sentences)} sentences, {sum(map(len, sentences))} tokens")
        print(format_report(metrics))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from seqtag.data.conll import looks_like_conll, read_conll, read_token_lines, write_conll
    from seqtag.predictor import load

    tagger = load(args.model, args.runtime, args.onnx)
    if tagger.task.name != "tagging":  # other tasks read their own file format
        if args.output:
            with open(args.output, "w", encoding="utf-8") as out:
                tagger.predict_file(args.input, out, args.batch_size)
        else:
            tagger.predict_file(args.input, sys.stdout, args.batch_size)
        return 0
    fmt = args.format
    if fmt == "auto":
        fmt = "conll" if looks_like_conll(args.input) else "tokens"
    if fmt == "conll":
        column = tagger.task.recipe.data.word_column if args.word_column is None else args.word_column
        sentences = read_conll(args.input, column, None)
    else:
        sentences = read_token_lines(args.input)
    tags = tagger.task.predict(sentences, args.batch_size)
    if args.output:
        write_conll(sentences, tags, args.output)
        print(f"wrote {len(sentences)} sentences to {args.output}", file=sys.stderr)
    else:
        out = sys.stdout
        for sentence, sentence_tags in zip(sentences, tags, strict=True):
            if fmt == "tokens":
                out.write(" ".join(f"{t}/{g}" for t, g in zip(sentence.tokens, sentence_tags, strict=True)) + "\n")
            else:
                for row, tag in zip(sentence.rows, sentence_tags, strict=True):
                    out.write("\t".join([*row, tag]) + "\n")
                out.write("\n")
    return 0


def _export(args: argparse.Namespace) -> int:
    from seqtag.export import export_onnx
    from seqtag.predictor import load

    tagger = load(args.model)
    output = Path(args.output) if args.output else Path(args.model).with_suffix(".onnx")
    export_onnx(tagger.task, output)
    print(f"wrote {output} ({output.stat().st_size / 2**20:.1f} MB); use it with --runtime onnx")
    return 0


def _info(args: argparse.Namespace) -> int:
    from seqtag.archive import read_archive

    content = read_archive(args.model)
    meta, recipe, vocab, metrics = content["meta"], content["recipe"], content["vocab"], content["metrics"]
    parameters = sum(t.numel() for t in content["tensors"].values())
    if args.json:
        print(json.dumps({"meta": meta, "recipe": recipe, "metrics": {k: v for k, v in metrics.items() if k != "history"}}, indent=2))
        return 0
    print(f"{args.model}: seqtag {meta['seqtag_version']} model (format {meta['format_version']}), task {meta['task']}")
    print(f"  recipe: {recipe.get('name')}  seed {recipe.get('seed')}")
    if meta["task"] == "tagging":
        tags = vocab["tags"]["items"]
        print(f"  tags ({vocab['corpus_scheme'].upper()} corpus, trained as {recipe['model']['tag_scheme'].upper()}): {' '.join(tags)}")
        trained_words = vocab['num_trainable_words'] - 2  # less <pad> and <unk>
        pretrained_only = len(vocab['words']['items']) - trained_words
        print(f"  words: {trained_words:,} from training + {pretrained_only:,} pretrained-only; chars: {len(vocab['chars']['items'])}")
        model = recipe["model"]
        print(f"  model: char {model['char']['encoder']}, {model['encoder']['num_layers']}x Bi{model['encoder']['cell'].upper()} {model['encoder']['hidden_size']}, decoder {model['decoder']}")
    print(f"  tensors: {parameters:,} values")
    if metrics.get("best_epoch") is not None:
        print(f"  trained {metrics.get('epochs')} epochs in {metrics.get('seconds', 0):.0f} s; best epoch {metrics['best_epoch']}")
    refit = metrics.get("refit")
    if refit:
        print(f"  refit on train + dev for the {refit['epochs']} epochs chosen on dev; dev {_headline(refit['dev'] or {})}")
        if refit.get("early_stopped_test"):
            print(f"  test of the early-stopped model: {_headline(refit['early_stopped_test'])}")
    for split in ("dev", "test"):
        if metrics.get(split):
            print(f"  {split}: {_headline(metrics[split])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from seqtag.version import __version__

    parser = argparse.ArgumentParser(prog="seqtag", description="BiLSTM-CNN-CRF sequence tagging: train, evaluate, predict.")
    parser.add_argument("--version", action="version", version=f"seqtag {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model from a YAML recipe",
                                description="Train a model from a YAML recipe. Writes recipe.yaml, metrics.jsonl and model.seqtag to the output folder.")
    train.add_argument("recipe", help="recipe file, e.g. recipes/conll03.yaml")
    train.add_argument("--set", action="append", metavar="KEY.PATH=VALUE",
                       help="override a recipe value, e.g. --set data.dir=../data/conll03 --set training.max_epochs=5 (repeatable)")
    train.add_argument("--output", "-o", metavar="DIR", help="run folder (default: runs/<recipe name>)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the run in RUN_DIR from its checkpoint (after a crash, a kill or Ctrl-C)")
    train.set_defaults(func=_train)

    evaluate = commands.add_parser("evaluate", help="score a model on a labelled file",
                                   description="Score a model on a labelled CoNLL file: entity P/R/F1 per type (seqeval, strict) or token accuracy.")
    evaluate.add_argument("model", help="model file (model.seqtag)")
    evaluate.add_argument("data", help="labelled CoNLL file")
    evaluate.add_argument("--word-column", type=int, help="token column (default: the recipe's)")
    evaluate.add_argument("--label-column", type=int, help="label column (default: the recipe's)")
    evaluate.add_argument("--batch-size", type=int, default=256)
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    evaluate.add_argument("--confusion", metavar="FILE", help="also write a tag confusion table (TSV: gold rows, predicted columns)")
    evaluate.set_defaults(func=_evaluate)

    predict = commands.add_parser("predict", help="tag a file",
                                  description="Tag a CoNLL file (adds a predicted column) or a file with one pre-tokenised sentence per line.")
    predict.add_argument("model", help="model file (model.seqtag)")
    predict.add_argument("input", help="CoNLL file or one tokenised sentence per line")
    predict.add_argument("--output", "-o", metavar="FILE", help="write CoNLL (input columns + predicted tag) here instead of stdout")
    predict.add_argument("--format", choices=("auto", "conll", "tokens"), default="auto", help="input format (default: guess)")
    predict.add_argument("--word-column", type=int, help="token column of CoNLL input (default: the recipe's)")
    predict.add_argument("--batch-size", type=int, default=256)
    predict.set_defaults(func=_predict)

    for command in (evaluate, predict):
        command.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                             help="compute the tagger's network with PyTorch or ONNX Runtime (see seqtag export)")
        command.add_argument("--onnx", metavar="FILE", help="ONNX file for --runtime onnx (default: MODEL with suffix .onnx)")

    export = commands.add_parser("export", help="export a tagger's network to ONNX",
                                 description="Write the tagger's network as an ONNX graph, checked against PyTorch, for "
                                             "faster prediction with --runtime onnx (needs pip install 'seqtag[onnx]').")
    export.add_argument("model", help="model file (model.seqtag)")
    export.add_argument("--output", "-o", metavar="FILE", help="ONNX file to write (default: MODEL with suffix .onnx)")
    export.set_defaults(func=_export)

    info = commands.add_parser("info", help="describe a model file", description="Show what a model file holds: task, tags, sizes, scores.")
    info.add_argument("model", help="model file (model.seqtag)")
    info.add_argument("--json", action="store_true", help="print meta, recipe and metrics as JSON")
    info.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``seqtag`` console script."""
    from seqtag.training.trainer import TrainingInterrupted

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return args.func(args)
    except TrainingInterrupted as error:
        print(f"seqtag: {error}", file=sys.stderr)
        return 130
    except SeqtagError as error:
        print(f"seqtag: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqtag: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
