"""What ``nlptune report`` reads of a finished run without loading its model: the config (as
written, for the page, and parsed), ``labels.json``, ``metrics.json``, ``meta.json`` and the
training curves of ``train_log.jsonl`` (:class:`RunRecord`), and the task's main metric.

A log line that is not a log record (damaged JSON, not an object, no step) is skipped with a
warning that names the file and its lines; the report says so too.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlptune import artefact
from nlptune.config import printable
from nlptune.errors import NlptuneError

logger = logging.getLogger("nlptune")
LOG = "train_log.jsonl"


@dataclass
class Curves:
    """The training log's numbers in step order: ``train`` records (``step``, ``loss``,
    ``lr``, ``loss_<head>`` ...) and ``eval`` records (``step``, the dev metrics, ``best``)."""

    train: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # line numbers that are not records


@dataclass
class RunRecord:
    """A finished run as the report shows it (``notes``: what the page should say is missing)."""

    folder: Path
    config: dict[str, Any]
    config_text: str
    labels: dict[str, Any]
    metrics: dict[str, Any]
    meta: dict[str, Any]
    curves: Curves
    notes: list[str] = field(default_factory=list)

    @property
    def task_type(self) -> str:
        return str((self.config.get("task") or {}).get("type", ""))


def read(folder: Path) -> RunRecord:
    """Read the finished run in ``folder``; NlptuneError for a folder that is missing, not a
    run, or not finished, and for a damaged ``metrics.json``."""
    if not folder.exists():
        raise NlptuneError(f"run directory not found: {printable(str(folder))}")
    if not folder.is_dir():
        raise NlptuneError(f"{printable(str(folder))} is a file; give a run directory")
    if not artefact.is_run(folder):
        raise NlptuneError(
            f"{printable(str(folder))} is not an nlptune run (no config.yaml and training "
            "log); give a folder that `nlptune train` wrote"
        )
    config, labels = artefact.read_run(folder)  # refuses an unfinished run (no meta.json)
    metrics = _json_object(folder / "metrics.json", "metrics")
    meta = _json_object(folder / artefact.META, "metadata")
    text = (folder / "config.yaml").read_text(encoding="utf-8", errors="replace")
    record = RunRecord(folder, config, text, labels, metrics, meta, Curves())
    record.curves = read_log(folder / LOG, record.notes)
    return record


def _json_object(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise NlptuneError(
            f"{path}: missing; the run is not finished or its folder is damaged: train it again"
        )
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise NlptuneError(f"{path}: can't read the run's {what} ({err}); train it again") from None
    if not isinstance(value, dict):
        raise NlptuneError(f"{path}: not the run's {what} (a JSON object); train it again")
    return value


def read_log(path: Path, notes: list[str]) -> Curves:
    """The curves of ``train_log.jsonl``; what is missing or skipped goes to ``notes``."""
    curves = Curves()
    if not path.is_file():
        notes.append(f"{LOG} is missing: no training curves.")
        logger.warning("warning: %s is missing: the report has no training curves", path)
        return curves
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            record = _record(line)
            if record is None:
                curves.skipped.append(number)
            elif record["event"] == "train":
                curves.train.append(record)
            elif record["event"] == "eval":
                curves.evals.append(record)
    curves.train.sort(key=lambda r: r["step"])
    curves.evals.sort(key=lambda r: r["step"])
    if curves.skipped:
        lines = ", ".join(map(str, curves.skipped[:5])) + (
            ", ..." if len(curves.skipped) > 5 else ""
        )
        notes.append(f"{LOG}: skipped {len(curves.skipped)} damaged line(s) (line {lines}).")
        logger.warning(
            "warning: %s: skipped %d line(s) that are not log records (line %s)",
            path,
            len(curves.skipped),
            lines,
        )
    if not curves.train:
        notes.append(f"{LOG} holds no training steps: no loss or learning-rate curve.")
        logger.warning("warning: %s holds no training steps: no loss or lr curve", path)
    return curves


def _record(line: str) -> dict[str, Any] | None:
    """A log line as ``{"event", "step", numbers..., "best"?}``, or None when it is not one
    (an event of another kind is kept under its name and ignored by the caller)."""
    try:
        raw = json.loads(line)
    except ValueError:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("event"), str):
        return None
    step = raw.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return None
    out: dict[str, Any] = {"event": raw["event"], "step": step}
    for key, value in raw.items():
        if key in ("event", "step", "time", "epoch", "examples_per_s"):
            continue
        if isinstance(value, bool):
            out[key] = value
        elif isinstance(value, (int, float)):
            out[key] = float(value)
    return out


def main_metric(record: RunRecord, task: Any) -> str | None:
    """The metric the run chose its best checkpoint by: ``task.main_metric`` (``task`` from
    :func:`task_of` or a loaded run), else ``task.metric`` of the config; None if unknown."""
    name = getattr(task, "main_metric", None)
    if isinstance(name, str):
        return name
    named = (record.config.get("task") or {}).get("metric")
    return named if isinstance(named, str) else None


def greater_is_better(name: str, task: Any) -> bool:
    default = name not in ("mse", "perplexity", "loss")
    return bool(getattr(task, "greater_is_better", default))


def task_of(record: RunRecord) -> Any:
    """The run's task with its saved state, made from the config as build.parts makes it (no
    model loads), or None when that fails (a plugin that is not installed, say)."""
    from nlptune.build import make_task
    from nlptune.config import validate

    try:
        task = make_task(validate({**record.config, "output_dir": str(record.folder)}))
        task.load_state(record.labels)
    except Exception:  # noqa: BLE001 (the report goes on without it)
        return None
    return task


def finite(values: list[float]) -> bool:
    """Whether any value is a finite number (something to plot)."""
    return any(math.isfinite(v) for v in values)
