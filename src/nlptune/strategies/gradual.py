"""``gradual``: ULMFiT-style gradual unfreezing (Howard & Ruder 2018) with discriminative
learning rates.

Stage 0 trains the head (with the ``top`` groups above the last layer: a final layer norm); each
later stage adds one layer group from the top: at each epoch, or every ``every_steps`` optimizer
steps. For an encoder-decoder, a stage adds the next layer from the top of both stacks. The
embeddings come last (the word-embedding matrix only when ``freeze_embeddings`` is false). Layer
i from the top learns at ``lr * layer_lr_decay**i``; the default decay is ULMFiT's 1/2.6 per
layer.

The stage is a pure function of ``(epoch, step)``, so a resumed run trains exactly what the
uninterrupted run trained at that point; the optimizer holds every parameter from the start
(one that does not train yet has no gradient, and AdamW leaves it as it is).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field
from torch import nn

from nlptune.registry import STRATEGIES
from nlptune.strategies.base import (
    DECAY,
    DecayConfig,
    group_of,
    layer_index,
    layer_plan,
    stack_layers,
    stack_of,
)
from nlptune.training.plan import Plan, enable

logger = logging.getLogger("nlptune")

ULMFIT_DECAY = 1 / 2.6  # ULMFiT's discriminative fine-tuning: each layer down learns 2.6x slower


class GradualConfig(DecayConfig):
    type: str = Field("gradual", description="which parameters train (nlptune list strategies)")
    layer_lr_decay: float | None = Field(ULMFIT_DECAY, gt=0, le=1, description=DECAY)
    every_steps: int | None = Field(
        None,
        ge=1,
        description="gradual: unfreeze the next layer group every N optimizer steps (null: at "
        "the start of each epoch)",
    )


def stage_of(group: str, counts: dict[str, int]) -> int:
    """The stage that unfreezes ``group``: 0 the head and ``top``, then layer n-1 (of each
    stack) at 1 down to layer 0 at n, the embeddings last."""
    if group == "head" or group.rsplit(".", 1)[-1] == "top":
        return 0
    index = layer_index(group)
    if index is not None:
        return counts.get(stack_of(group), 0) - index
    return max(counts.values(), default=0) + 1  # embeddings, word_embeddings


@STRATEGIES.register("gradual")
class Gradual:
    """Unfreeze one layer group more from the top at each epoch (or every N steps)."""

    Config = GradualConfig

    def __init__(
        self,
        freeze_embeddings: bool = True,
        layer_lr_decay: float | None = ULMFIT_DECAY,
        every_steps: int | None = None,
    ) -> None:
        self.freeze_embeddings, self.layer_lr_decay = freeze_embeddings, layer_lr_decay
        self.every_steps = every_steps
        self._plans: list[Plan] = []

    def check(self, num_layers: int) -> None:
        return None

    def apply(self, model: Any, new: set[str]) -> tuple[nn.Module, Plan]:
        freeze = self.freeze_embeddings
        whole = layer_plan(
            model,
            new,
            lambda group: not (freeze and group == "word_embeddings"),
            layer_lr_decay=self.layer_lr_decay,
        )
        groups, counts = group_of(model, new), stack_layers(model)
        by_stage: dict[int, dict[str, None]] = {}  # stage -> its groups, in model order
        names: dict[int, set[str]] = {}
        for name in whole.params:
            group = groups.get(name, "head")
            stage = stage_of(group, counts)
            by_stage.setdefault(stage, {})[group] = None
            names.setdefault(stage, set()).add(name)
        stages = sorted(by_stage)  # stages without parameters are skipped
        self._plans = []
        trainable: set[str] = set()
        for number, stage in enumerate(stages):
            trainable = trainable | names[stage]
            shown = f"gradual stage {number + 1} of {len(stages)}: {', '.join(by_stage[stage])}"
            self._plans.append(
                Plan(whole.params, trainable, whole.head, whole.lr_scale, stage=shown)
            )
        plan = self._plans[0]
        enable(model, plan)
        unit = "optimizer step" if self.every_steps else "epoch"
        every = self.every_steps or 1
        schedule = "; ".join(
            f"{unit} {i * every}: {', '.join(by_stage[stage])}" for i, stage in enumerate(stages)
        )
        logger.info(
            "gradual: unfreezes from the top, one group per %s (layer_lr_decay %s): %s",
            f"{self.every_steps} optimizer steps" if self.every_steps else "epoch",
            f"{self.layer_lr_decay:.4g}" if self.layer_lr_decay else "none",
            schedule,
        )
        return model, plan

    def stage_at(self, epoch: int, step: int) -> int:
        """The stage (0-based) the run is in at ``(epoch, step)``."""
        done = step // self.every_steps if self.every_steps else epoch
        return min(done, len(self._plans) - 1)

    def update(self, plan: Plan, epoch: int, step: int) -> Plan | None:
        if not self._plans:
            return None
        return self._plans[self.stage_at(epoch, step)]
