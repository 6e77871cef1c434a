"""Save and load a run directory.

    output_dir/
      config.yaml        the resolved config (every default filled in)
      labels.json        problem type and label names in model order
      model/             transformers format (config, safetensors weights, tokenizer files)
      metrics.json       dev (and test) metrics of the best checkpoint, timing
      train_log.jsonl    one JSON object per logged step and evaluation
      tensorboard/       TensorBoard event files
      meta.json          versions, data hashes, seed, git revision: written last

``meta.json`` marks a finished run: it is removed when a run (re)starts and written only after
everything else is in place, so a crash never leaves a directory that loads as complete.

``.nlptune-run`` is written first, before anything else: it marks the folder as nlptune's (and
holds the data files' sha256, which ``--resume`` compares). nlptune writes into, and with
``--overwrite`` clears, only a folder that is empty or marked (or a run made before the marker),
and then removes only the entries it writes itself (``OWN``); anything else in it stays.
``.nlptune-lock`` is held (``flock``) by the one process writing the run.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nlptune.data.features import atomic_write, source_digest
from nlptune.errors import NlptuneError

META = "meta.json"
MARKER = ".nlptune-run"
LOCK = ".nlptune-lock"
# what a run writes into its folder (the only entries --overwrite removes)
OWN = (
    MARKER,
    "config.yaml",
    "labels.json",
    "model",
    "metrics.json",
    "train_log.jsonl",
    "tensorboard",
    "checkpoints",
    ".staging",
    "report",  # nlptune report's default folder: stale once the run trains again
    META,
)


def is_complete(folder: Path) -> bool:
    return (folder / META).is_file()


def is_run(folder: Path) -> bool:
    """Whether ``folder`` is an nlptune run (marked, or a run made before the marker)."""
    if (folder / MARKER).is_file():
        return True
    return (folder / "config.yaml").is_file() and any(
        (folder / name).exists() for name in (META, "checkpoints", "train_log.jsonl")
    )


def owning_run(path: Path) -> Path | None:
    """The run folder that ``path`` (absolute, symlinks resolved) belongs to, as one of the
    entries a run writes (``OWN``, the lock) or inside one; None for anything else (a file of
    the user's beside a run's entries is not the run's)."""
    for parent in path.parents:
        entry = path.relative_to(parent).parts[0]
        if entry in (*OWN, LOCK) and is_run(parent):
            return parent
    return None


def check_output_dir(folder: Path) -> None:
    """Refuse an output_dir that nlptune must not write into: a file, a symlink to nothing, or
    a folder with other things in it that is not a run."""
    if folder.is_symlink() and not folder.exists():
        raise NlptuneError(
            f"output_dir {folder} is a symlink to {os.readlink(folder)}, which does not exist; "
            "make that folder or set output_dir=... to another folder"
        )
    if folder.exists() and not folder.is_dir():
        raise NlptuneError(f"output_dir {folder} is a file; name a folder")
    if folder.is_dir() and not is_run(folder):
        others = sorted(p.name for p in folder.iterdir() if not _marker_litter(p.name))
        if others:
            shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
            raise NlptuneError(
                f"output_dir {folder} holds files that are not an nlptune run ({shown}); "
                "nlptune writes runs only into new, empty or run folders: set output_dir=... to "
                "another folder"
            )


def _marker_litter(name: str) -> bool:
    """The lock, or the marker's temporary file left by a run killed while writing it: a
    folder holding only these is still new."""
    return name == LOCK or re.fullmatch(rf"\.{re.escape(MARKER)}\.\d+\.tmp", name) is not None


def clear_run(folder: Path) -> None:
    """Remove what a run wrote (``OWN``) from ``folder``; other files stay."""
    for name in OWN:
        target = folder / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()


def start_run(folder: Path, config_yaml: str, data: dict[str, str | None] | None = None) -> None:
    """Mark ``folder`` as a run in progress (the marker first, with the data files' sha256)
    and store its resolved config."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f".{MARKER}.*.tmp"):  # from a run killed while writing it
        stale.unlink(missing_ok=True)
    marker = {"nlptune": _version(), "data": data or {}}
    write_json(folder / MARKER, marker)
    (folder / META).unlink(missing_ok=True)
    atomic_write(folder / "config.yaml", lambda f: f.write(config_yaml), mode="w")


def started_data(folder: Path) -> dict[str, str | None]:
    """The data files' sha256 recorded when the run in ``folder`` started ({} if unknown)."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    data = marker.get("data") if isinstance(marker, dict) else None
    return data if isinstance(data, dict) else {}


def _version() -> str:
    from nlptune import __version__

    return __version__


class RunLock:
    """The one writer of a run folder: an exclusive ``flock`` on ``.nlptune-lock``, released
    when the process ends however it ends (so a lock is never stale)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.handle: Any = None

    def __enter__(self) -> RunLock:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.folder / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 (held)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise NlptuneError(
                f"output_dir {self.folder} is in use by another nlptune run ({holder}); wait "
                "for it to end or set output_dir=... to another folder"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()  # releases the lock
            self.handle = None


def write_json(path: Path, value: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(value, indent=2) + "\n"), mode="w")


def finish_run(
    folder: Path,
    write_model: Callable[[Path], None],
    labels: dict[str, Any],
    metrics: dict[str, Any],
    meta: dict[str, Any],
) -> None:
    """Write model (``write_model(folder)``), labels and metrics through a staging folder, then
    ``meta.json`` last."""
    staging = folder / ".staging"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "model").mkdir(parents=True)
    write_model(staging / "model")
    write_json(staging / "labels.json", labels)
    write_json(staging / "metrics.json", metrics)
    for item in staging.iterdir():
        target = folder / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)
    staging.rmdir()
    write_json(folder / META, meta)


def read_config(folder: Path) -> dict[str, Any]:
    """The config a run (finished or not) in ``folder`` started with."""
    from nlptune.config import read_yaml

    config = read_yaml(folder / "config.yaml")
    if not isinstance(config, dict):
        raise NlptuneError(f"{folder / 'config.yaml'}: not a run config")
    return config


def read_run(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(config dict, labels)`` of a finished run, or raise a clear error."""
    from nlptune.config import printable

    if not folder.is_dir():
        raise NlptuneError(f"run directory not found: {printable(str(folder))}")
    try:
        str(folder).encode("utf-8")
    except UnicodeEncodeError:  # the model's files (safetensors) can't be opened under it
        raise NlptuneError(
            f"run directory {printable(str(folder))}: its path is not valid UTF-8; rename it"
        ) from None
    if not is_complete(folder):
        raise NlptuneError(
            f"{folder} is not a finished run (no {META}); it may still be training or have "
            "crashed: resume it with `nlptune train CONFIG --resume`"
        )
    config = read_config(folder)
    path = folder / "labels.json"
    try:
        labels = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise NlptuneError(
            f"{path}: can't read the run's labels ({err}); the run folder is "
            "damaged: train it again"
        ) from None
    if not isinstance(labels, dict):
        raise NlptuneError(f"{path}: not the run's labels (a JSON object); train it again")
    return config, labels


def run_meta(seed: int, data_files: dict[str, str]) -> dict[str, Any]:
    """Package versions, data hashes, seed and the git revision of the working directory."""
    import importlib.metadata as md

    versions: dict[str, str | None] = {}
    for package in ("nlptune", "torch", "transformers", "accelerate", "tokenizers", "numpy"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "versions": versions,
        "seed": seed,
        "data": {
            split: {"path": path, "sha256": source_digest(path)}
            for split, path in data_files.items()
        },
        "git_revision": _git_revision(),
    }


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    revision = out.stdout.strip()
    return revision if out.returncode == 0 and revision else None
