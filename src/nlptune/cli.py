"""Command line: train, evaluate, predict, validate, list, vectors, serve, export, report,
compare, tune, demo. Thin: parse, call, print."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlptune import artefact
from nlptune.errors import NlptuneError
from nlptune.logs import show_messages

logger = logging.getLogger("nlptune")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nlptune", description="Fine-tune pre-trained language models for NLP tasks."
    )
    from nlptune import __version__

    parser.add_argument("--version", action="version", version=f"nlptune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train",
        help="fine-tune as a config says and save the run; several configs (or a stages file) "
        "run in order, each later one starting from the previous one's model",
    )
    train.add_argument(
        "args",
        nargs="+",
        metavar="CONFIG_OR_OVERRIDE",
        help="YAML run configs or a stages file, then dotted key=value overrides "
        "(stage.key=value for one stage)",
    )
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument("--overwrite", action="store_true", help="replace a finished run")

    evaluate = sub.add_parser("evaluate", help="score a finished run on labelled data")
    evaluate.add_argument("run", help="run directory")
    evaluate.add_argument(
        "--data", required=True, help="labelled data, read like the training data"
    )

    predict = sub.add_parser("predict", help="predict with a finished run")
    predict.add_argument("run", help="run directory")
    predict.add_argument(
        "--input",
        required=True,
        help=".txt (one input a line; TAB between a pair), .jsonl, .csv or .tsv",
    )
    predict.add_argument("--output", help="output file (default: stdout)")
    predict.add_argument(
        "--format",
        default="jsonl",
        choices=["jsonl", "json", "squad", "conll", "semeval"],
        help="jsonl (default): a JSON object a record; json: one JSON object keyed by id "
        "({id: answer} for QA, as SQuAD's scorer reads; squad is the same); conll: the input's "
        "lines with the predicted tag appended; semeval: 'lemma instance-id sense-id' lines",
    )
    predict.add_argument(
        "--keep",
        type=_names,
        default=[],
        metavar="FIELD[,FIELD...]",
        help="copy these fields of a JSON Lines or CSV/TSV input to each output record",
    )
    predict.add_argument(
        "--strict", action="store_true", help="stop at the first record that can't be predicted"
    )
    predict.add_argument(
        "--batch-size",
        type=_positive,
        help="inputs per batch (default: the run's eval batch, at most 32 on CPU)",
    )
    predict.add_argument(
        "--chunk",
        type=_positive,
        help="records read, predicted and written at a time (default: 4,096 or 32 batches); "
        "memory stays bounded by it for .txt and JSON Lines input of any size",
    )

    validate = sub.add_parser("validate", help="check a config and its data without training")
    validate.add_argument("args", nargs="+", metavar="CONFIG_OR_OVERRIDE")

    lister = sub.add_parser("list", help="list tasks, strategies, backbones, config keys")
    lister.add_argument("what", choices=["tasks", "strategies", "backbones", "keys", "configs"])

    vectors = sub.add_parser("vectors", help="work on static word vectors")
    vsub = vectors.add_subparsers(dest="vectors_command", required=True)
    adapt = vsub.add_parser(
        "adapt",
        help="continue training word vectors on unlabelled target text (gensim word2vec)",
    )
    adapt.add_argument("vectors", help="GloVe/word2vec/fastText/spaCy vectors or a packaged id")
    adapt.add_argument("corpus", help="a text file (one sentence a line) or a folder of .txt/.gz")
    adapt.add_argument("-o", "--output", required=True, help="word2vec file (.txt, .gz or .bin)")
    adapt.add_argument("--epochs", type=_positive, default=5)
    adapt.add_argument("--min-count", type=_positive, default=5, help="rarer corpus words skipped")
    adapt.add_argument("--window", type=_positive, default=5)
    adapt.add_argument("--skipgram", action="store_true", help="skip-gram instead of CBOW")
    adapt.add_argument("--lowercase", action="store_true", help="lower-case the corpus")
    adapt.add_argument("--seed", type=int, default=1)
    adapt.add_argument("--workers", type=_positive, default=1, help="gensim worker threads")
    adapt.add_argument("--overwrite", action="store_true", help="replace an existing output")

    from nlptune import compare, onnx_export, report, serve, tune

    serve.add_parser(sub)  # nlptune serve, export, report: their arguments live beside them
    onnx_export.add_parser(sub)
    report.add_parser(sub)
    compare.add_parser(sub)  # nlptune compare and tune: their arguments live beside them
    tune.add_parser(sub)
    demo = sub.add_parser("demo", help="fine-tune MiniLM on 200 movie reviews and predict")
    demo.add_argument("--output-dir", default="runs/demo")
    return parser


def _configs(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """Config files (a YAML name or an existing file) and ``key=value`` overrides."""
    configs, overrides = [], []
    for arg in args:
        if arg.lower().endswith((".yaml", ".yml")) or Path(arg).is_file():
            configs.append(arg)
        elif "=" in arg:
            overrides.append(arg)
        else:
            raise NlptuneError(
                f"'{arg}' is neither a config file nor a key=value override (e.g. trainer.epochs=3)"
            )
    if not configs:
        raise NlptuneError("give a YAML config file before the key=value overrides")
    return configs, overrides


def _has_stages(path: str) -> bool:
    from nlptune.stages import is_stages_file

    return is_stages_file(path)


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r}: give field names separated by commas")
    return names


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # configs and overrides after an option: `train a.yaml --resume x=1`
        if args.command not in ("train", "validate", "compare", "tune") or any(
            e.startswith("-") for e in extra
        ):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.args.extend(extra)
    show_messages()
    logger.setLevel(logging.INFO)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return _dispatch(args)
    except NlptuneError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `nlptune ... | head`: the reader left; end quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    except KeyboardInterrupt:
        resume = "; resume with `nlptune train CONFIG --resume`" if args.command == "train" else ""
        print(f"interrupted{resume}", file=sys.stderr)
        return 130
    except OSError as err:  # a full disk, a file that went away: one line, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception:  # a bug: its traceback (to report it) and an exit code of its own
        import traceback

        traceback.print_exc()
        print("error: unexpected failure inside nlptune (please report it)", file=sys.stderr)
        return 3


def _main_process() -> bool:
    """Whether this is the main process of a launched run (or the only one): the others
    print no metrics, so stdout holds them once."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "train":
        from nlptune import api

        configs, overrides = _configs(args.args)
        if len(configs) == 1 and not _has_stages(configs[0]):
            result = api.train(configs[0], overrides, resume=args.resume, overwrite=args.overwrite)
            if _main_process():
                print(json.dumps(result.metrics))
        else:
            results = api.train_stages(
                configs, overrides, resume=args.resume, overwrite=args.overwrite
            )
            if _main_process():
                print(json.dumps({str(r.output_dir): r.metrics for r in results}))
    elif args.command == "evaluate":
        from nlptune.predict import Predictor

        print(json.dumps(Predictor.from_dir(args.run, progress=True).evaluate(args.data)))
    elif args.command == "predict":
        return _predict(args)
    elif args.command == "validate":
        from nlptune import api

        configs, overrides = _configs(args.args)
        if len(configs) == 1 and not _has_stages(configs[0]):
            summary: dict[str, Any] = api.validate(configs[0], overrides)
        else:
            summary = {"stages": api.validate_stages(configs, overrides)}
        print(f"{' '.join(configs)}: OK")
        print(json.dumps(summary))
    elif args.command == "list":
        _list(args.what)
    elif args.command == "vectors":
        from nlptune.adapt import adapt

        summary = adapt(
            args.vectors,
            args.corpus,
            args.output,
            epochs=args.epochs,
            min_count=args.min_count,
            window=args.window,
            skipgram=args.skipgram,
            lowercase=args.lowercase,
            seed=args.seed,
            workers=args.workers,
            overwrite=args.overwrite,
        )
        print(json.dumps(summary))
    elif args.command == "serve":
        from nlptune import serve

        return serve.main(args)
    elif args.command == "export":
        from nlptune import onnx_export

        return onnx_export.main(args)
    elif args.command == "report":
        from nlptune import report

        return report.main(args)
    elif args.command == "compare":
        from nlptune import compare

        return compare.main(args)
    elif args.command == "tune":
        from nlptune import tune

        return tune.main(args)
    elif args.command == "demo":
        from nlptune.demo import run_demo

        run_demo(Path(args.output_dir))
    return 0


def _predict(args: argparse.Namespace) -> int:
    """Stream predictions to ``--output`` (see :func:`nlptune.outputs.output_target`) or
    stdout. Returns 0, or 1 when some records failed."""
    run, source, output, fmt = args.run, args.input, args.output, args.format
    strict, batch_size, chunk = args.strict, args.batch_size, args.chunk
    from nlptune.inputs import input_exists
    from nlptune.outputs import Writer, check_format, output_target, write_output
    from nlptune.predict import Predictor
    from nlptune.progress import Progress

    if not input_exists(Path(source)):
        raise NlptuneError(f"input file not found: {source}")
    target = output_target(output, source)
    raw, _ = artefact.read_run(Path(run))  # the task, before the model loads
    data_format = str((raw.get("data") or {}).get("format", "auto"))
    fmt = check_format(fmt, str((raw.get("task") or {}).get("type")), source, data_format)
    predictor = Predictor.from_dir(run, batch_size=batch_size)
    file_format = getattr(predictor.task, "file_format", None)
    conllu = file_format is not None and file_format(source) == "conllu"
    counts = [0, 0]  # records written, failed
    failed: list[dict[str, Any]] = []  # the first few failed records, for the summary

    def write(out: Any) -> None:
        writer = Writer(fmt, out, source, conllu)
        shown = Progress("predicting", None, "record", leave=False)
        for row in predictor.stream_file(source, strict, chunk, args.keep):
            writer.write(row)
            counts[0] += 1
            shown.update()
            if "error" in row:
                counts[1] += 1
                if len(failed) < 5:
                    failed.append(row)
        shown.close()
        writer.close()
        out.flush()  # a reader that left (`| head`) is found here, inside the try

    write_output(target, write, sys.stdout)
    _report(counts[0], counts[1], failed, output if target.path is not None else None)
    return 1 if counts[1] else 0


def _report(written: int, failures: int, first: list[dict[str, Any]], output: str | None) -> None:
    where = f" to {output}" if output else ""
    logger.info("predicted %d records%s, %d failed", written - failures, where, failures)
    for row in first:
        place = f"line {row['line']}" if "line" in row else row.get("where", "")
        named = f" (id {row['id']})" if "id" in row else ""
        logger.info("  failed: %s%s: %s", place, named, row["error"])
    if failures > len(first):
        logger.info("  ... and %d more (each has an error record)", failures - len(first))


def _list(what: str) -> None:
    from nlptune.config import iter_keys, yaml_value
    from nlptune.registry import BACKBONES, STRATEGIES, TASKS

    if what == "keys":
        rows = [(k, kind, yaml_value(d), _plain(doc)) for k, kind, d, doc in iter_keys()]
        _columns(rows, widest=(32, 32, 14))
        return
    if what == "configs":
        root = Path(__file__).resolve().parents[2] / "configs"
        for path in sorted(root.glob("*/*.yaml")):
            print(path.relative_to(root.parent))
        return
    registry = {"tasks": TASKS, "strategies": STRATEGIES, "backbones": BACKBONES}[what]
    _columns(
        [
            (name, _plain((entry.__doc__ or "").strip().splitlines()[0] if entry.__doc__ else ""))
            for name, entry in registry
        ]
    )


def _columns(rows: Sequence[tuple[str, ...]], widest: Sequence[int] = (24,)) -> None:
    """Rows as aligned columns; a cell wider than its column (``widest``, the last value for
    the rest) ends its line and the next cell starts under its column on the next, so long
    types never shift the rest."""
    caps = [*widest, *[widest[-1]] * len(rows[0])]
    widths = [min(caps[i], max(len(r[i]) for r in rows)) for i in range(len(rows[0]) - 1)]
    for row in rows:
        line = ""
        for cell, width in zip(row, widths, strict=False):
            if len(cell) > width:
                print((line + cell).rstrip())
                line = " " * (len(line) + width + 2)
            else:
                line += cell.ljust(width + 2)
        print((line + row[-1]).rstrip())


def _plain(text: str) -> str:
    """A docstring line without reST markup: ``x`` and :class:`X` become x and X."""
    import re

    text = re.sub(r":[a-z]+:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], text)
    return text.replace("``", "")


if __name__ == "__main__":
    sys.exit(main())
