"""The one place that turns a run config into task, backbone, strategy, data and model.

Everything below this module takes flat, typed arguments; only this module reads ``RunConfig``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from nlptune.config import RunConfig
from nlptune.data import features as feats
from nlptune.data.features import Features
from nlptune.registry import BACKBONES, STRATEGIES, TASKS
from nlptune.tasks.base import Task

logger = logging.getLogger("nlptune")


@dataclass
class Parts:
    """The registry entries of a run, instantiated from its config."""

    task: Task
    backbone: Any
    strategy: Any


def parts(config: RunConfig) -> Parts:
    return Parts(
        task=TASKS.get(config.task.type)(config.task, config.data),
        backbone=BACKBONES.get(config.backbone.type),
        strategy=STRATEGIES.get(config.strategy.type)(config.strategy),
    )


@dataclass
class Dataset:
    """Examples and (once featurized) features of one split."""

    path: str
    examples: list[Any]
    features: Features | None = None
    part: str = ""  # which part of ``path`` (a held-out split), for the feature cache key


def read_splits(config: RunConfig, task: Any) -> dict[str, Dataset]:
    """Read train/dev/test, fix the label set from train and check dev/test labels against it.

    Raises DataError (file, line, what to change) before any weights load.
    """
    out: dict[str, Dataset] = {}
    for split in ("train", "dev", "test"):
        path = getattr(config.data, split)
        if path is not None:
            out[split] = Dataset(path, task.read(path))
    fraction = config.data.dev_fraction
    if fraction and "dev" not in out:
        train, dev = hold_out(out["train"].examples, fraction, config.seed)
        out["train"] = Dataset(out["train"].path, train, part=f"train-{fraction}-{config.seed}")
        out["dev"] = Dataset(out["train"].path, dev, part=f"dev-{fraction}-{config.seed}")
    task.fit(out["train"].examples)
    for data in out.values():
        task.encode_labels(data.examples)  # unknown labels fail here, named
    return out


def hold_out(examples: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Split off ``fraction`` of the examples of every lemma (or of all, without lemmas) as dev,
    taking only examples whose label occurs at least twice in their group, so that every dev
    label is also in train."""
    import random
    from collections import Counter, defaultdict

    groups: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        groups[str(getattr(e, "lemma", ""))].append(i)
    rng = random.Random(seed)
    held: set[int] = set()
    for members in groups.values():
        counts = Counter(str(getattr(examples[i], "label", "")) for i in members)
        candidates = [i for i in members if counts[str(getattr(examples[i], "label", ""))] > 1]
        rng.shuffle(candidates)
        picked: list[int] = []
        left = dict(counts)
        for i in candidates:
            if len(picked) >= round(fraction * len(members)):
                break
            label = str(getattr(examples[i], "label", ""))
            if left[label] > 1:  # keep one of every label in train
                picked.append(i)
                left[label] -= 1
        held.update(picked)
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [e for i, e in enumerate(examples) if i in held]


def check_model_fits(config: RunConfig, strategy: Any) -> None:
    """Cheap checks on the backbone's config.json (no weights) against strategy and task."""
    from transformers import AutoConfig

    from nlptune.backbones.hf_encoder import resolve_model_path
    from nlptune.errors import ModelError

    try:
        model_config = AutoConfig.from_pretrained(resolve_model_path(config.backbone.path))
    except (OSError, ValueError) as err:
        raise ModelError(
            f"backbone.path {config.backbone.path}: not a model folder: {err}"
        ) from None
    if hasattr(strategy, "check_model"):
        strategy.check_model(model_config)
    if getattr(model_config, "is_encoder_decoder", False):
        raise ModelError(
            f"backbone.path {config.backbone.path} is an encoder-decoder "
            f"({model_config.model_type}); task {config.task.type} needs an encoder such as BERT"
        )


def featurize(config: RunConfig, task: Any, tokenizer: Any, data: Dataset) -> tuple[Features, bool]:
    """Tokenized features of ``data``, from the on-disk cache when the same data, tokenizer and
    task settings were seen before. Returns ``(features, cache_hit)``."""
    key = [
        feats.file_digest(data.path) if _is_local(data.path) else data.path,
        data.part,
        feats.tokenizer_fingerprint(tokenizer),
        config.backbone.max_length,
        task.cache_key(),
    ]
    return feats.cached(
        feats.cache_dir(config.data.cache_dir),
        key,
        lambda: task.featurize(data.examples, tokenizer, config.backbone.max_length),
    )


def _is_local(path: str) -> bool:
    from pathlib import Path

    return Path(path).exists()


def load_model(config: RunConfig, task: Any, backbone: Any) -> tuple[Any, set[str]]:
    import transformers

    model_class = getattr(transformers, task.model_auto_class)
    model, new = backbone.load_model(config.backbone.path, model_class, **task.model_kwargs())
    if hasattr(task, "wrap_model"):  # a head of our own on top (e.g. a CRF)
        model, new = task.wrap_model(model, new)
    return model, new
