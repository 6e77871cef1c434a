"""The training plan a strategy hands the loop: which parameters the optimizer holds, which train
now, and at what learning-rate scale."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn


@dataclass
class Plan:
    """The outcome of applying a strategy.

    ``params`` are every parameter the optimizer holds (all that may train during the run),
    ``trainable`` those that train now; ``lr_scale[name]`` multiplies the backbone learning rate
    of a backbone parameter, and ``head`` parameters use the head learning rate.
    ``cache_backbone`` tells the loop that the encoder is frozen for the whole run, so its outputs
    may be computed once. ``stage`` says what trains now, for the log, when a strategy changes
    its plan during the run (gradual unfreezing).
    """

    params: list[str]
    trainable: set[str]
    head: set[str]
    lr_scale: dict[str, float] = field(default_factory=dict)
    cache_backbone: bool = False
    stage: str = ""


def enable(model: nn.Module, plan: Plan) -> None:
    """``requires_grad`` on exactly the parameters that train now."""
    for name, param in model.named_parameters():
        param.requires_grad_(name in plan.trainable)
