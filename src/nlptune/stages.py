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

from nlptune.config import RunConfig, apply_override, deep_copy, read_yaml, validate
from nlptune.errors import ConfigError

SECTIONS = ("task", "data", "backbone", "strategy", "trainer", "seed", "output_dir")
# keys that change how a run is shown or how fast it goes, never what it computes
SAFE_KEYS = {
    "trainer.progress",
    "trainer.tensorboard",
    "trainer.report_to",
    "trainer.num_threads",
    "trainer.log_every",
    "trainer.save_every",
    "trainer.keep_checkpoints",
    "trainer.prefetch",
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
    for stage in stages[1:]:  # chained: the stage's own config names no backbone
        backbone = stage.raw.get("backbone") or {}
        if not isinstance(backbone, dict):
            raise ConfigError(f"{stage.source} (stage {stage.name}): 'backbone' must be a mapping")
        stage.chained = "path" not in backbone
    for item in overrides:
        _override(stages, names, item)
    for previous, stage in zip(stages, stages[1:], strict=False):
        if stage.chained:
            backbone = stage.raw.get("backbone") or {}
            if backbone.get("init", "pretrained") != "pretrained":
                raise ConfigError(
                    f"{stage.source} (stage {stage.name}): backbone.init={backbone['init']} "
                    f"would throw away the model of stage {previous.name} that it starts from; "
                    "remove it, or set this stage's backbone.path"
                )
            stage.raw["backbone"] = {**backbone, "path": str(_model_of(previous))}
    _check_folders(stages)
    return stages


def _override(stages: list[Stage], names: list[str], item: str) -> None:
    """Apply ``key=value`` to every stage (``backbone.path``/``backbone.init``: to the stages
    that do not start from an earlier one) or ``stage.key=value`` to one."""
    key, _, value = item.partition("=")
    first, _, rest = key.strip().partition(".")
    if first in SECTIONS:
        if key.strip() == "output_dir" and len(stages) > 1:
            raise ConfigError(
                f"override '{item}' would put every stage in one folder; set "
                f"<stage>.output_dir=... for each (stages: {', '.join(names)})"
            )
        starts = key.strip() in ("backbone.path", "backbone.init")
        for stage in stages:
            if not (starts and stage.chained):
                apply_override(stage.raw, item)
        return
    if first in names and rest:
        stage = stages[names.index(first)]
        apply_override(stage.raw, f"{rest}={value}")
        if rest.strip() == "backbone.path":
            stage.chained = False  # its own backbone now
        return
    raise ConfigError(
        f"override '{item}': '{first}' is neither a stage ({', '.join(names)}) nor a config "
        f"section ({', '.join(SECTIONS)})"
    )


def _model_of(stage: Stage) -> Path:
    return Path(str(stage.raw.get("output_dir"))) / "model"


def _check_folders(stages: list[Stage]) -> None:
    """Every stage writes its own folder, and none writes inside another's or its backbone."""
    folders = [(s, Path(str(s.raw.get("output_dir"))).resolve()) for s in stages]
    for i, (a, one) in enumerate(folders):
        for b, other in folders[i + 1 :]:
            if one == other or one in other.parents or other in one.parents:
                raise ConfigError(
                    f"stages {a.name} and {b.name} write to {a.raw.get('output_dir')} and "
                    f"{b.raw.get('output_dir')}: give each stage a folder of its own "
                    f"({b.name}.output_dir=...)"
                )
        backbone = Path(str((a.raw.get("backbone") or {}).get("path", ""))).resolve()
        if backbone == one or one in backbone.parents:
            raise ConfigError(
                f"stage {a.name}: backbone.path {backbone} is inside its own output_dir; "
                "a run would replace the model it starts from"
            )


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
        name = re.sub(r"\W", "_", stem)  # the file stem, usable in overrides
        return [Stage(f"{name}_" if name in SECTIONS else name, source, deep_copy(raw), False)]
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
        body = deep_copy(item)
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
    return read_yaml(path)


def changes_from_saved(folder: Path, run: RunConfig) -> list[str]:
    """How ``run`` differs from the config the run in ``folder`` saved (that config resolved as
    today's code would, keys as :func:`changed_keys` names them)."""
    import contextlib

    from nlptune import artefact

    saved = artefact.read_config(folder)
    with contextlib.suppress(ConfigError):
        saved = validate({**saved, "output_dir": run.output_dir}).to_dict()
    return changed_keys(saved, run.to_dict())


def changed_keys(saved: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every resolved config key that differs, except SAFE_KEYS."""
    out = []
    before, after = _flat(saved), _flat(new)
    for key in sorted(set(before) | set(after)):
        old, value = before.get(key), after.get(key)
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
