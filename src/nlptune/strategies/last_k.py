"""``last_k``: the top k transformer layers and the head train; everything below is fixed."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from nlptune.errors import ModelError
from nlptune.registry import STRATEGIES
from nlptune.strategies.base import DecayConfig, Plan, make_plan, num_layers


class LastKConfig(DecayConfig):
    type: str = Field("last_k", description="which parameters train (nlptune list strategies)")
    k: int = Field(2, ge=1, description="last_k: how many top layers train")


@STRATEGIES.register("last_k")
class LastK:
    """Fine-tune the top ``k`` layers and the head."""

    Config = LastKConfig

    def __init__(self, config: LastKConfig) -> None:
        self.config = config

    @staticmethod
    def check_config(run: Any, name: str) -> None:
        return None

    def check_model(self, model_config: Any) -> None:
        class _M:
            config = model_config

        n = num_layers(_M)
        if n and self.config.k > n:
            raise ModelError(f"strategy.k={self.config.k} but the backbone has only {n} layers")

    def apply(self, model: Any, new: set[str]) -> Plan:
        self.check_model(model.config)
        lowest = num_layers(model) - self.config.k
        return make_plan(
            model,
            new,
            trains=lambda part: (
                part in ("head", "top") or (isinstance(part, int) and part >= lowest)
            ),
            layer_lr_decay=self.config.layer_lr_decay,
        )
