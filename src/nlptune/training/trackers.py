"""Experiment tracking through accelerate's trackers (``trainer.report_to``): TensorBoard event
files under the run by default; MLflow, Weights & Biases, Aim, Comet, ClearML or DVCLive when
installed. Each gets the run's config once and the same scalars as ``train_log.jsonl``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlptune.config import TrainerConfig
from nlptune.errors import ConfigError, first_line

logger = logging.getLogger("nlptune")

PACKAGES = {
    "tensorboard": "tensorboard",
    "mlflow": "mlflow (or mlflow-skinny)",
    "wandb": "wandb",
    "aim": "aim",
    "comet_ml": "comet_ml",
    "clearml": "clearml",
    "dvclive": "dvclive",
}


def wanted(trainer: TrainerConfig) -> list[str]:
    """The trackers a run reports to, each once (``trainer.tensorboard: false`` drops
    TensorBoard)."""
    names = [n for n in trainer.report_to if trainer.tensorboard or n != "tensorboard"]
    return list(dict.fromkeys(names))


def check(trainer: TrainerConfig) -> None:
    """Refuse a tracker whose package is not installed, before anything trains."""
    import accelerate.utils as available

    for name in wanted(trainer):
        if not getattr(available, f"is_{name}_available")():
            raise ConfigError(
                f"trainer.report_to: {name} is not installed; pip install {PACKAGES[name]}, or "
                "remove it from trainer.report_to"
            )


def start(names: Sequence[str], folder: Path, config: dict[str, Any]) -> list[Any]:
    """Started trackers for a run in ``folder`` (TensorBoard writes to ``folder/tensorboard``;
    the others name the experiment or project after the folder), given the flattened config."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    started = []
    for name in names:
        kind = LOGGER_TYPE_TO_CLASS[name]
        if name == "tensorboard":
            tracker = kind("tensorboard", str(folder))
        elif kind.requires_logging_directory:
            tracker = kind(folder.name, str(folder / name))
        else:
            tracker = kind(folder.name)
        try:
            tracker.start()
            if name != "tensorboard":  # (its hparams make a folder per call; config.yaml is there)
                tracker.store_init_configuration(config)
        except Exception as err:  # noqa: BLE001 (the tracker's own setup, e.g. its server or store)
            raise ConfigError(
                f"trainer.report_to: {name} could not start: {first_line(err)}"
            ) from None
        started.append(tracker)
    return started


def flat_config(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config as ``{"trainer.lr": 5e-05, ...}`` with values every tracker stores (numbers,
    strings, booleans; lists and null as text)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_config(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = "null" if value is None else str(value)
    return out
