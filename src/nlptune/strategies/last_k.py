"""``last_k``: the top k encoder layers and the head train; everything below is fixed.

For an encoder-decoder, the top k layers of each stack (encoder and decoder) train."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from torch import nn

from nlptune.errors import ModelError
from nlptune.registry import STRATEGIES
from nlptune.strategies.base import DecayConfig, layer_index, layer_plan, stack_layers, stack_of
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
        counts = stack_layers(model)
        for n in counts.values():
            self.check(n)

        def trains(group: str) -> bool:
            index = layer_index(group)
            lowest = counts.get(stack_of(group), 0) - self.k
            return (
                group == "head" or group.endswith("top") or (index is not None and index >= lowest)
            )

        return model, layer_plan(model, new, trains, layer_lr_decay=self.layer_lr_decay)

    def update(self, plan: Plan, epoch: int, step: int) -> Plan | None:
        return None
