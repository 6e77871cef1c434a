"""``nlptune report RUN_DIR``: a finished run as figures and one HTML page.

Writes into ``RUN_DIR/report/`` (or ``-o OUT``):

- ``loss.png``, ``lr.png``, ``dev_metric.png``: training loss, learning rate and the dev metric
  the run chose its best checkpoint by, against steps (from ``train_log.jsonl``);
- the dev-set figure (:mod:`nlptune.report_dev`): ``confusion.png`` (one label an item: text
  classification, sentence pairs, word senses, POS tags), ``per_type_f1.png`` (entity tags),
  ``per_label_f1.png`` (multi-label) or ``scatter.png`` (a score), from the run's predictions
  on its dev set (``data.dev``) or on ``--data FILE``;
- ``index.html`` (:mod:`nlptune.report_page`): the run's identity, metrics, figures and config
  in one self-contained page (figures embedded; it still shows when moved).

Figures that can't be made (no dev file here, a task without labels, an empty log) are left
out and the page says why. The folder is marked ``.nlptune-report``: a later report replaces
its own files there, and a folder holding anything else is refused. matplotlib is imported only
when a report is drawn (``pip install 'nlptune[report]'``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlptune.errors import NlptuneError

if TYPE_CHECKING:
    import argparse

    from nlptune.report_plots import Image
    from nlptune.report_run import RunRecord

logger = logging.getLogger("nlptune")
INSTALL = "nlptune report needs matplotlib: pip install 'nlptune[report]'"
MARKER = ".nlptune-report"
# every file a report writes (the only ones a later report replaces or removes)
OWN = (
    "index.html",
    "loss.png",
    "lr.png",
    "dev_metric.png",
    "confusion.png",
    "per_type_f1.png",
    "per_label_f1.png",
    "scatter.png",
)


def require() -> None:
    """Raise a one-line error when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NlptuneError(INSTALL) from None


def write_report(
    run: str | Path, out: str | Path | None = None, data: str | Path | None = None
) -> Path:
    """Write the report of the finished run ``run`` into ``out`` (default ``run/report``) and
    return the path of its ``index.html``.

    ``data``: labelled data for the dev-set figure, read like the run's dev set (default: the
    run's ``data.dev``, when it is here)."""
    require()
    from nlptune import report_dev, report_run

    folder = Path(run)
    record = report_run.read(folder)
    target = Path(out) if out is not None else folder / "report"
    check_output(target)
    if data is not None:
        _check_data(str(data), record)
    dev, task = report_dev.dev_figure(folder, record.config, None if data is None else str(data))
    task = task if task is not None else report_run.task_of(record)  # without the model
    main = report_run.main_metric(record, task)
    images = _images(record, main, task)
    if dev.kind:
        from nlptune.report_plots import dev_image

        images.append(dev_image(dev))
    from nlptune import __version__
    from nlptune.report_page import page

    created = time.strftime("%Y-%m-%d %H:%M:%S %z")
    html = page(record, images, dev, main, __version__, created)
    _write(target, folder, images, html)
    return target / "index.html"


def _images(record: RunRecord, main: str | None, task: Any) -> list[Image]:
    """The curves there is something to draw for; what is missing goes to ``record.notes``."""
    from nlptune import report_plots, report_run

    curves = record.curves
    best = record.metrics.get("best_step")
    best_step = best if isinstance(best, int) and not isinstance(best, bool) else None
    images = []
    if report_run.finite([r.get("loss", float("nan")) for r in curves.train]):
        images.append(report_plots.loss(curves, best_step))
    elif curves.train:
        record.notes.append("The training log has no finite loss values: no loss curve.")
    if report_run.finite([r["lr"] for r in curves.train if "lr" in r]):
        images.append(report_plots.learning_rate(curves, best_step))
    if main is not None and report_run.finite([r[main] for r in curves.evals if main in r]):
        higher = report_run.greater_is_better(main, task)
        images.append(report_plots.dev_metric(curves, main, higher, best_step))
    else:
        why = f"no values of {main}" if main and curves.evals else "no dev evaluations"
        record.notes.append(f"No dev-metric curve: the training log has {why}.")
    return images


def _check_data(data: str, record: RunRecord) -> None:
    from nlptune.inputs import input_exists

    hub = (record.config.get("data") or {}).get("format") == "hf"
    if not hub and not input_exists(Path(data)):
        raise NlptuneError(f"--data {data}: file not found")


def check_output(target: Path) -> None:
    """Refuse a report folder that is a file, a dangling symlink, or a folder holding anything
    but an earlier report (nothing of the user's is ever replaced)."""
    if target.is_symlink() and not target.exists():
        raise NlptuneError(f"{target} is a symlink to a folder that does not exist; name a folder")
    if target.exists() and not target.is_dir():
        raise NlptuneError(f"{target} is a file; name a new folder for the report")
    if target.is_dir() and not (target / MARKER).is_file():
        others = sorted(p.name for p in target.iterdir())
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise NlptuneError(
                f"{target} holds files that are not an nlptune report ({shown}); name a new "
                "or empty folder with -o"
            )


def _write(target: Path, run: Path, images: list[Image], html: str) -> None:
    """The marker first, then every file through a temporary one; an earlier report's files
    that this one does not write are removed (only those)."""
    from nlptune import __version__
    from nlptune.data.features import atomic_write

    target.mkdir(parents=True, exist_ok=True)
    marker = json.dumps({"nlptune": __version__, "run": str(run.resolve())}) + "\n"
    atomic_write(target / MARKER, lambda f: f.write(marker), mode="w")
    written = {image.file for image in images} | {"index.html"}
    for name in OWN:
        stale = target / name
        if name not in written and stale.is_file():
            stale.unlink()
    for image in images:
        _write_bytes(target / image.file, image.png)
    atomic_write(target / "index.html", lambda f: f.write(html), mode="w")


def _write_bytes(path: Path, data: bytes) -> None:
    from nlptune.data.features import atomic_write

    atomic_write(path, lambda f: f.write(data))


def add_parser(sub: Any) -> None:
    """``nlptune report``'s arguments (``sub``: the CLI's subparsers)."""
    parser = sub.add_parser(
        "report",
        help="plots (loss, lr, dev metric, confusion or per-type F1) and one HTML page of a "
        "finished run (needs matplotlib)",
    )
    parser.add_argument("run", help="run directory")
    parser.add_argument(
        "-o", "--output", help="folder for the report (default: RUN/report; a new folder)"
    )
    parser.add_argument(
        "--data",
        help="labelled data for the confusion matrix / per-type F1 (default: the run's dev set)",
    )


def main(args: argparse.Namespace) -> int:
    """Run ``nlptune report`` as parsed: print where the page is, as one JSON line."""
    index = write_report(args.run, args.output, args.data)
    files = sorted(p.name for p in index.parent.iterdir() if p.name in OWN)
    logger.info("report written to %s", index)
    print(json.dumps({"report": str(index), "files": files}))
    return 0
