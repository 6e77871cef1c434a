"""``frozen``: only the head trains ("feature extraction"); for an encoder-decoder, the
encoder is fixed and the decoder (the text-to-text model's own head) trains.

The encoder's outputs do not change, so the loop may compute what the head reads once (the first
token's state, or every token's) and later epochs run only the head.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from torch import nn

from nlptune.config import StrategyConfig
from nlptune.registry import STRATEGIES
from nlptune.strategies.base import layer_plan, stack_of
from nlptune.training.plan import Plan


class FrozenConfig(StrategyConfig):
    type: str = Field("frozen", description="which parameters train (nlptune list strategies)")
    cache: bool = Field(True, description="frozen: compute backbone outputs once and reuse them")


@STRATEGIES.register("frozen")
class Frozen:
    """Train the task head on a fixed backbone."""

    Config = FrozenConfig

    def __init__(self, freeze_embeddings: bool = True, cache: bool = True) -> None:
        self.cache = cache

    def check(self, num_layers: int) -> None:
        return None

    def apply(self, model: Any, new: set[str]) -> tuple[nn.Module, Plan]:
        plan = layer_plan(model, new, lambda group: stack_of(group) in ("head", "decoder"))
        # newly initialised encoder weights train like the head, and then nothing may be cached
        plan.cache_backbone = self.cache and not any(n.startswith("encoder.") for n in plan.params)
        return model, plan

    def update(self, plan: Plan, epoch: int, step: int) -> Plan | None:
        return None
