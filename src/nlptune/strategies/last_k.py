"""``last_k``: the top k encoder layers and the head train; everything below is fixed."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from torch import nn

from nlptune.errors import ModelError
from nlptune.registry import STRATEGIES
from nlptune.strategies.base import DecayConfig, layer_index, layer_plan, num_layers
from nlptune.training.plan import Plan


class LastKConfig(DecayConfig):
    type: str = Field("last_k", description="which parameters train (nlptune list strategies)")
    k: int = Field(2, ge=1, description="last_k: how many top layers train")


@STRATEGIES.register("last_k")
class LastK:
    """Fine-tune the top ``k`` layers and the head."""

    Config = LastKConfig

    def __init__(
        self, freeze_embeddings: bool = True, layer_lr_decay: float | None = None, k: int = 2
    ) -> None:
        self.layer_lr_decay, self.k = layer_lr_decay, k

    def check(self, num_layers: int) -> None:
        if num_layers and self.k > num_layers:
            raise ModelError(f"strategy.k={self.k} but the backbone has only {num_layers} layers")

    def apply(self, model: Any, new: set[str]) -> tuple[nn.Module, Plan]:
        n = num_layers(model)
        self.check(n)
        lowest = n - self.k

        def trains(group: str) -> bool:
            index = layer_index(group)
            return group in ("head", "top") or (index is not None and index >= lowest)

        return model, layer_plan(model, new, trains, layer_lr_decay=self.layer_lr_decay)

    def update(self, plan: Plan, epoch: int, step: int) -> Plan | None:
        return None
