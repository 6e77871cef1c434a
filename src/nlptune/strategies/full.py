"""``full``: every parameter trains (the word-embedding matrix unless freeze_embeddings)."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from torch import nn

from nlptune.registry import STRATEGIES
from nlptune.strategies.base import DecayConfig, layer_plan
from nlptune.training.plan import Plan


class FullConfig(DecayConfig):
    type: str = Field("full", description="which parameters train (nlptune list strategies)")


@STRATEGIES.register("full")
class Full:
    """Fine-tune everything, with optional layer-wise learning-rate decay."""

    Config = FullConfig

    def __init__(self, freeze_embeddings: bool = True, layer_lr_decay: float | None = None) -> None:
        self.freeze_embeddings, self.layer_lr_decay = freeze_embeddings, layer_lr_decay

    def check(self, num_layers: int) -> None:
        return None

    def apply(self, model: Any, new: set[str]) -> tuple[nn.Module, Plan]:
        freeze = self.freeze_embeddings
        plan = layer_plan(
            model,
            new,
            lambda group: not (freeze and group == "word_embeddings"),
            layer_lr_decay=self.layer_lr_decay,
        )
        return model, plan

    def update(self, plan: Plan, epoch: int, step: int) -> Plan | None:
        return None
