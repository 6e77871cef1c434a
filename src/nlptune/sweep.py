"""The runner behind ``nlptune compare`` and ``nlptune tune``: many runs of one config.

A run of a sweep is the base config (a YAML file or a mapping, plus ``key=value`` overrides)
with some dotted keys set to other values (:func:`resolve`), its own seed and its own folder
inside the sweep's output folder. Setting ``strategy.type`` keeps only the strategy keys the new
strategy takes (``strategy.k`` goes with ``last_k`` and stays out of ``full``), so one config
serves every strategy. Every run is resolved and checked before the first one trains.

The output folder belongs to one kind of sweep: it is marked (``.nlptune-compare``,
``.nlptune-tune``) when first used, a folder holding anything else is refused, and one process
at a time works in it (a lock). A run folder inside it holding a run of another config is an
error that names it; nothing is ever deleted to make room.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from nlptune import artefact, stages
from nlptune.config import (
    RunConfig,
    deep_copy,
    read_raw,
    section_class,
    validate,
)
from nlptune.errors import ConfigError, NlptuneError

logger = logging.getLogger("nlptune")
MARKERS = {"compare": ".nlptune-compare", "tune": ".nlptune-tune"}


def base_config(
    config: str | Path | Mapping[str, Any] | RunConfig, overrides: Sequence[str] = ()
) -> tuple[dict[str, Any], RunConfig]:
    """The raw config (YAML file or mapping, ``overrides`` applied) and its validated form.

    Raises:
        ConfigError: a missing or invalid config, or a bad override.
    """
    source = config.to_dict() if isinstance(config, RunConfig) else config
    raw, name = read_raw(source, overrides)
    if "stages" in raw:
        raise ConfigError(f"{name} is a stages file; give one run's config")
    return raw, validate(raw, name)


def config_args(args: Sequence[str]) -> tuple[str, list[str]]:
    """A command's ``CONFIG key=value ...`` arguments: the config file and the overrides."""
    config, *overrides = args
    if "=" in config and not Path(config).is_file():
        raise ConfigError(f"give a YAML config file before the key=value overrides, not {config!r}")
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"'{bad[0]}' is not a key=value override (e.g. trainer.epochs=3)")
    return config, overrides


def set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` of ``raw`` to ``value`` (sections are made as needed)."""
    node = raw
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def resolve(raw: Mapping[str, Any], values: Mapping[str, Any], name: str) -> RunConfig:
    """``raw`` with ``values`` (dotted key -> value) set, validated (errors start with
    ``name``). A new ``strategy.type`` keeps only the strategy keys that strategy takes."""
    out = deep_copy(raw)
    for key, value in values.items():
        set_key(out, key, value)
    strategy = out.get("strategy")
    if "strategy.type" in values and isinstance(strategy, dict):
        kind = strategy.get("type")
        if not isinstance(kind, str):
            raise ConfigError(f"{name}: strategy.type must be a name, got {kind!r}")
        try:
            fields = section_class("strategy", kind).model_fields
        except ConfigError as err:
            raise ConfigError(f"{name}: {err}") from None
        out["strategy"] = {k: v for k, v in strategy.items() if k in fields}
    return validate(out, name)


def check_folder(out: Path, kind: str) -> None:
    """Refuse a sweep output folder that is a file, another kind's, or holds other things."""
    if out.exists() and not out.is_dir():
        raise NlptuneError(f"output folder {out} is a file; name a folder (-o OUT)")
    if not out.is_dir() or (out / MARKERS[kind]).is_file():
        return
    others = sorted(p.name for p in out.iterdir() if p.name != artefact.LOCK)
    if others:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise NlptuneError(
            f"output folder {out} holds files that are not an nlptune {kind} ({shown}); give a "
            "new or empty folder with -o OUT"
        )


def claim(out: Path, kind: str) -> None:
    """Make ``out`` (checked by :func:`check_folder`) and mark it as a ``kind`` folder."""
    out.mkdir(parents=True, exist_ok=True)
    marker = out / MARKERS[kind]
    if not marker.is_file():
        artefact.write_json(marker, {"nlptune": kind})


@contextlib.contextmanager
def locked(out: Path, kind: str) -> Iterator[None]:
    """Hold ``out`` for this process: a second ``nlptune kind`` there is a one-line error."""
    try:
        lock = artefact.RunLock(out).__enter__()
    except NlptuneError:
        raise NlptuneError(
            f"{out} is in use by another nlptune {kind}; wait for it to end or pass -o OUT"
        ) from None
    try:
        yield
    finally:
        lock.__exit__()


def run_state(folder: Path, run: RunConfig) -> str:
    """``"new"``, ``"finished"`` or ``"unfinished"``: what ``folder`` holds for ``run``.

    Raises:
        NlptuneError: ``folder`` is a file, holds things that are not a run, or holds a run of
            another config (named with the keys that differ).
    """
    artefact.check_output_dir(folder)
    if not artefact.is_run(folder):
        return "new"
    if (folder / "config.yaml").is_file():
        changes = stages.changes_from_saved(folder, run)
        if changes:
            raise ConfigError(
                f"{folder} holds a run of another config ({'; '.join(changes[:4])}); nlptune "
                "never deletes it: move it away, or pass -o OUT for another output folder"
            )
    if artefact.is_complete(folder) and (folder / "metrics.json").is_file():
        return "finished"
    return "unfinished"


def discard(folder: Path) -> None:
    """Remove a trial's run (only what a run writes, its lock, then the folder if empty)."""
    if not artefact.is_run(folder):
        return
    artefact.clear_run(folder)
    (folder / artefact.LOCK).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()


def train_subprocess(config_file: Path, resume: bool, log_file: Path) -> str | None:
    """``nlptune train config_file [--resume]`` in a process of its own (its metrics' memory
    peak is its own; a crash ends only it), output appended to ``log_file``. Returns None, or
    the error it ended with."""
    command = [sys.executable, "-m", "nlptune", "train", str(config_file)]
    command += ["--resume"] if resume else []
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    with open(log_file, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(command)}\n")
        log.flush()
        done = subprocess.run(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    if done.returncode == 0:
        return None
    return f"{last_error(log_file)} (exit code {done.returncode}; log: {log_file})"


def last_error(log_file: Path) -> str:
    """The last ``error:`` line of a log, else its last line."""
    lines = [x.strip() for x in log_file.read_text("utf-8", errors="replace").splitlines()]
    lines = [x for x in lines if x]
    errors = [x for x in lines if x.startswith("error:")]
    return (errors or lines or ["no output"])[-1].removeprefix("error: ")


def task_of(run: RunConfig, labels: Mapping[str, Any] | None = None) -> Any:
    """The run's task as :mod:`nlptune.build` makes it (no model), with the state of a
    finished run (``labels``: its ``labels.json``), else fitted on the training data: what its
    ``main_metric`` and ``greater_is_better`` need."""
    from nlptune.build import make_task

    task = make_task(run)
    if labels is not None:
        task.load_state(dict(labels))
    else:
        assert run.data.train is not None  # validated
        task.fit(task.read(run.data.train))
    return task


def whole_number(text: str) -> int:
    """An argparse type: ``--seeds``, ``--trials`` (a range check is the command's)."""
    import argparse

    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise NlptuneError(f"{path}: can't read it ({err})") from None


def value_text(value: Any) -> str:
    """A value as a YAML config would write it, on one line (``2e-05``, ``[a, b]``)."""
    from nlptune.config import yaml_value

    return value if isinstance(value, str) else yaml_value(value)
