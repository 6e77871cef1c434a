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
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from nlptune.data.features import atomic_write, source_digest
from nlptune.errors import NlptuneError

META = "meta.json"


def is_complete(folder: Path) -> bool:
    return (folder / META).is_file()


def start_run(folder: Path, config_yaml: str) -> None:
    """Mark ``folder`` as a run in progress and store its resolved config."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META).unlink(missing_ok=True)
    atomic_write(folder / "config.yaml", lambda f: f.write(config_yaml), mode="w")


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


def read_run(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(config dict, labels)`` of a finished run, or raise a clear error."""
    if not folder.is_dir():
        raise NlptuneError(f"run directory not found: {folder}")
    if not is_complete(folder):
        raise NlptuneError(
            f"{folder} is not a finished run (no {META}); it may still be training or have "
            "crashed: resume it with `nlptune train CONFIG --resume`"
        )
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
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
