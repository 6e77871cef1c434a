"""``full``: every parameter trains (the word-embedding matrix unless freeze_embeddings)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from nlptune.registry import STRATEGIES
from nlptune.strategies.base import DecayConfig, Plan, make_plan


class FullConfig(DecayConfig):
    type: str = Field("full", description="which parameters train (nlptune list strategies)")


@STRATEGIES.register("full")
class Full:
    """Fine-tune everything, with optional layer-wise learning-rate decay."""

    Config = FullConfig

    def __init__(self, config: FullConfig) -> None:
        self.config = config

    @staticmethod
    def check_config(run: Any, name: str) -> None:
        return None

    def apply(self, model: Any, new: set[str]) -> Plan:
        freeze = self.config.freeze_embeddings
        return make_plan(
            model,
            new,
            trains=lambda part: not (freeze and part == "word_embeddings"),
            layer_lr_decay=self.config.layer_lr_decay,
        )
