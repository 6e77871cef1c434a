"""``frozen``: only the head trains ("feature extraction").

The backbone's outputs do not change, so the loop computes them once (first token of the last
hidden state) and later epochs run only the head.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from nlptune.config import StrategyConfig
from nlptune.registry import STRATEGIES
from nlptune.strategies.base import Plan, make_plan


class FrozenConfig(StrategyConfig):
    type: str = Field("frozen", description="which parameters train (nlptune list strategies)")
    cache: bool = Field(True, description="frozen: compute backbone outputs once and reuse them")


@STRATEGIES.register("frozen")
class Frozen:
    """Train the head (classifier and pooler) on a fixed backbone."""

    Config = FrozenConfig

    def __init__(self, config: FrozenConfig) -> None:
        self.config = config

    @staticmethod
    def check_config(run: Any, name: str) -> None:
        return None

    def apply(self, model: Any, new: set[str]) -> Plan:
        return make_plan(
            model, new, trains=lambda part: part == "head", cache_backbone=self.config.cache
        )
