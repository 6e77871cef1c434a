"""What every strategy shares: naming the parts of a model and the resulting training plan."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from nlptune.config import StrategyConfig

_LAYER = re.compile(r"\.(?:layer|layers|block|blocks|h)\.(\d+)\.")


@dataclass
class Plan:
    """The outcome of applying a strategy.

    ``lr_scale[name]`` multiplies the backbone learning rate of a trainable backbone parameter;
    head parameters (absent from it) use the head learning rate. ``cache_backbone`` tells the loop
    that the backbone is frozen and its outputs may be computed once.
    """

    trainable: list[str]
    head: set[str]
    lr_scale: dict[str, float] = field(default_factory=dict)
    cache_backbone: bool = False


def part_of(name: str, model: Any, new: set[str]) -> str | int:
    """Classify a parameter: ``"head"``, ``"word_embeddings"``, ``"embeddings"`` or a layer index.

    The head is everything outside the base model, its pooler, and any parameter the checkpoint
    did not have (newly initialised weights always train).
    """
    prefix = getattr(model, "base_model_prefix", "")
    if name in new or not name.startswith(prefix + ".") or ".pooler." in name:
        return "head"
    if "word_embeddings" in name or name.endswith("embed_tokens.weight"):
        return "word_embeddings"
    match = _LAYER.search(name)
    if match:
        return int(match.group(1))
    return "embeddings" if "embed" in name else "top"


def num_layers(model: Any) -> int:
    config = model.config
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        if isinstance(getattr(config, attr, None), int):
            return int(getattr(config, attr))
    return 0


def make_plan(
    model: Any,
    new: set[str],
    *,
    trains: Any,
    layer_lr_decay: float | None = None,
    cache_backbone: bool = False,
) -> Plan:
    """Set ``requires_grad`` from ``trains(part) -> bool`` and build the plan."""
    n = num_layers(model)
    trainable, head, scale = [], set(), {}
    for name, param in model.named_parameters():
        part = part_of(name, model, new)
        param.requires_grad_(bool(trains(part)))
        if not param.requires_grad:
            continue
        trainable.append(name)
        if part == "head":
            head.add(name)
        elif layer_lr_decay is not None:
            depth = part if isinstance(part, int) else {"top": n}.get(part, 0)
            scale[name] = layer_lr_decay ** (n - depth)
    return Plan(trainable, head, scale, cache_backbone)


class DecayConfig(StrategyConfig):
    layer_lr_decay: float | None = Field(
        None, gt=0, le=1, description="layer-wise LR decay: layer i from the top learns decay**i"
    )
