"""Runs in stages: adapt a backbone, then fine-tune it, in one command.

A stages file is YAML with one key, ``stages``: a list of run configs, each with a ``name``
(``nlptune train A.yaml B.yaml`` makes the same list from whole files, named by file stem). A
stage that does not set ``backbone.path`` starts from the previous stage's ``model/`` folder.
``output_dir`` defaults to ``runs/<file stem>-<stage name>``. Overrides apply to every stage
(``trainer.epochs=1``) or to one (``adapt.trainer.epochs=1``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nlptune.config import RunConfig, apply_override, validate
from nlptune.errors import ConfigError

SECTIONS = ("task", "data", "backbone", "strategy", "trainer", "seed", "output_dir")
# keys that change how a run is shown or how fast it goes, never what it computes
SAFE_KEYS = {
    "trainer.progress",
    "trainer.tensorboard",
    "trainer.num_threads",
    "trainer.log_every",
    "trainer.keep_checkpoints",
    "trainer.eval_batch_size",
    "data.cache_dir",
}
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass
class Stage:
    """One run of a multi-stage job: its name, where it was defined and its raw config."""

    name: str
    source: str
    raw: dict[str, Any]
    chained: bool  # backbone.path comes from the previous stage

    def config(self) -> RunConfig:
        return validate(self.raw, f"{self.source} (stage {self.name})")


def is_stages_file(path: str | Path) -> bool:
    """Whether a YAML config file is a stages file (a top-level ``stages`` key)."""
    raw = _read_yaml(Path(path))
    return isinstance(raw, dict) and "stages" in raw


def expand(
    configs: Sequence[str | Path | Mapping[str, Any]], overrides: Sequence[str]
) -> list[Stage]:
    """The stages of ``configs`` (stages files and plain run configs, in order), with
    overrides applied and ``backbone.path`` chained. Raises ConfigError naming what is wrong."""
    stages: list[Stage] = []
    for config in configs:
        stages.extend(_stages_of(config))
    if not stages:
        raise ConfigError("no stages to run: give a config file")
    names = [s.name for s in stages]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"two stages are named '{name}'; give each stage its own name")
    for item in overrides:
        key = item.partition("=")[0].strip()
        first, _, rest = key.partition(".")
        if first in SECTIONS:
            for stage in stages:
                apply_override(stage.raw, item)
        elif first in names and rest:
            apply_override(stages[names.index(first)].raw, f"{rest}={item.partition('=')[2]}")
        else:
            raise ConfigError(
                f"override '{item}': '{first}' is neither a stage ({', '.join(names)}) nor a "
                f"config section ({', '.join(SECTIONS)})"
            )
    for previous, stage in zip(stages, stages[1:], strict=False):
        backbone = stage.raw.setdefault("backbone", {}) or {}
        if not isinstance(backbone, dict):
            raise ConfigError(f"{stage.source} (stage {stage.name}): 'backbone' must be a mapping")
        if "path" not in backbone:
            out = previous.raw.get("output_dir")
            backbone["path"] = str(Path(str(out)) / "model")
            stage.raw["backbone"], stage.chained = backbone, True
    return stages


def _stages_of(config: str | Path | Mapping[str, Any]) -> list[Stage]:
    if isinstance(config, Mapping):
        raw: Any = dict(config)
        source, stem = "<dict>", "run"
    else:
        path = Path(config)
        raw = _read_yaml(path)
        source, stem = str(path), path.stem
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
    if "stages" not in raw:
        raw.setdefault("output_dir", f"runs/{stem}")
        return [Stage(stem, source, _plain(raw), False)]
    extra = sorted(set(raw) - {"stages"})
    if extra:
        raise ConfigError(
            f"{source}: a stages file has only the key 'stages', found {', '.join(extra)}; move "
            "them into each stage"
        )
    items = raw["stages"]
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{source}: 'stages' must be a non-empty list of run configs")
    out = []
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise ConfigError(f"{source}: stage {i} must be a mapping of sections")
        body = _plain(item)
        name = str(body.pop("name", f"stage{i}"))
        if not NAME.match(name) or name in SECTIONS:
            raise ConfigError(
                f"{source}: stage name '{name}' must be a word (letters, digits, _ or -) and not "
                f"a section name ({', '.join(SECTIONS)})"
            )
        body.setdefault("output_dir", f"runs/{stem}-{name}")
        out.append(Stage(name, source, body, False))
    return out


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason}); save it as UTF-8") from None


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def changed_keys(saved: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every resolved config key that differs, except SAFE_KEYS."""
    out = []
    for key in sorted(set(_flat(saved)) | set(_flat(new))):
        old, value = _flat(saved).get(key), _flat(new).get(key)
        if old != value and key not in SAFE_KEYS and key != "output_dir":
            out.append(f"{key}: {old!r} -> {value!r}")
    return out


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
