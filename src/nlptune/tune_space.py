"""``nlptune tune``'s search space: a YAML mapping of dotted config keys to distributions.

.. code-block:: yaml

    trainer.lr: {type: float, low: 1e-5, high: 1e-3, log: true}
    trainer.warmup_ratio: {type: float, low: 0.0, high: 0.2, step: 0.05}
    trainer.batch_size: {type: int, low: 8, high: 32, step: 8}
    strategy.type: {type: categorical, choices: [full, last_k]}

``float`` and ``int`` take ``low`` < ``high`` (both included), ``log`` (sample on a log scale;
``low`` > 0) or ``step`` (not both); ``categorical`` takes a list of ``choices``. Every entry is
checked before any trial: its bounds and choices are set in the config and validated, so an
unknown key or a value the key refuses is an error that names it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nlptune import sweep
from nlptune.config import read_yaml
from nlptune.errors import ConfigError, did_you_mean

FIELDS = {
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
}
EXAMPLE = "e.g. trainer.lr: {type: float, low: 1e-5, high: 1e-3, log: true}"


@dataclass(frozen=True)
class Param:
    """One searched config key and its distribution."""

    key: str
    type: str  # float, int or categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The trial's value (an Optuna trial's ``suggest_*``)."""
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "int":
            low, high, step = int(self.low or 0), int(self.high or 0), int(self.step or 1)
            return trial.suggest_int(self.key, low, high, step=step, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def examples(self) -> list[Any]:
        """Values that must all be valid for the key: the bounds, or every choice."""
        if self.type == "categorical":
            return list(self.choices)
        return [self.low, self.high]

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def read_space(path: str | Path) -> list[Param]:
    """The space file's entries, each checked for form (not yet against the config)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--space {path}: file not found")
    data = read_yaml(path)
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: a space file maps config keys to distributions, {EXAMPLE}")
    return [_param(path, key, spec) for key, spec in data.items()]


def _param(path: Path, key: Any, spec: Any) -> Param:
    where = f"{path}: {key}"
    if not isinstance(key, str) or not key or key in ("output_dir",):
        raise ConfigError(f"{path}: {key!r} can't be searched; give a dotted config key")
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: give a mapping with a type, {EXAMPLE}")
    kind = spec.get("type")
    if kind not in FIELDS:
        raise ConfigError(f"{where}: type must be float, int or categorical, got {kind!r}")
    for name in spec:
        if name not in FIELDS[kind]:
            hint = did_you_mean(str(name), FIELDS[kind])
            raise ConfigError(
                f"{where}: {kind} takes {', '.join(FIELDS[kind][1:])}, not {name!r}{hint}"
            )
    if kind == "categorical":
        return Param(key, kind, choices=_choices(where, spec.get("choices")))
    low, high = (_number(where, spec, n, kind) for n in ("low", "high"))
    if low >= high:
        raise ConfigError(f"{where}: low ({low:g}) must be below high ({high:g})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    step = _number(where, spec, "step", kind) if spec.get("step") is not None else None
    if log and step is not None:
        raise ConfigError(f"{where}: give log or step, not both")
    if log and low <= 0:
        raise ConfigError(f"{where}: log needs low above 0, got {low:g}")
    if step is not None and step <= 0:
        raise ConfigError(f"{where}: step must be above 0, got {step:g}")
    return Param(key, kind, low=low, high=high, log=log, step=step)


def _number(where: str, spec: Mapping[str, Any], name: str, kind: str) -> float:
    """A bound or step: a number (YAML reads ``1e-5`` as text: it is taken as a number)."""
    value = spec.get(name)
    if value is None:
        raise ConfigError(f"{where}: {kind} needs {name}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{where}: {name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: {name} must be a finite number, got {value!r}")
    if kind == "int" and float(value) != int(value):
        raise ConfigError(f"{where}: {name} must be a whole number for an int, got {value!r}")
    return int(value) if kind == "int" else float(value)


def _choices(where: str, choices: Any) -> tuple[Any, ...]:
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where}: categorical needs a list of choices, e.g. [full, last_k]")
    for choice in choices:
        if choice is not None and not isinstance(choice, (str, int, float, bool)):
            raise ConfigError(f"{where}: a choice must be a single value, got {choice!r}")
    shown = [json.dumps(c) for c in choices]
    twice = sorted({s for s in shown if shown.count(s) > 1})
    if twice:
        raise ConfigError(f"{where}: choices list {', '.join(twice)} more than once")
    return tuple(choices)


def check_space(raw: Mapping[str, Any], params: list[Param], path: str | Path) -> None:
    """Set each entry's bounds (or each choice) in the config and validate it: an unknown
    key or a value the key refuses is a ConfigError naming the entry. Where the space searches
    ``strategy.type`` too, a strategy key is checked with each searched strategy that takes it
    (and dropped for the others in the trials)."""
    kinds = [c for p in params if p.key == "strategy.type" for c in p.choices]
    for param in params:
        contexts: list[dict[str, Any]] = [{}]
        if kinds and param.key.startswith("strategy.") and param.key != "strategy.type":
            leaf = param.key.split(".", 1)[1]
            contexts = [{"strategy.type": k} for k in kinds if _takes(k, leaf)]
            if not contexts:
                raise ConfigError(
                    f"{path}: {param.key}: none of the searched strategies "
                    f"({', '.join(map(str, kinds))}) takes {leaf}"
                )
        for context in contexts:
            for value in param.examples():
                sweep.resolve(raw, {**context, param.key: value}, f"{path}: {param.key}={value!r}")


def _takes(kind: Any, key: str) -> bool:
    from nlptune.config import section_class

    try:
        return key in section_class("strategy", str(kind)).model_fields
    except ConfigError:
        return True  # an unknown strategy: the check of strategy.type names it
