"""``lora``: low-rank adapters (peft) on the backbone's linear layers, and the task head, train;
every pre-trained weight stays fixed.

Adapters go on ``target_modules`` (default: the architecture's attention query and value
projections, :data:`~nlptune.backbones.hf_adapter.DEFAULT_TARGETS`); newly initialised weights
(a bert2bert model's cross-attention) train in full, like the head. On save the adapters are
merged into the weights (``merge: true``: a standard transformers model) or kept apart, with the
head and the base model's identity (:mod:`nlptune.backbones.hf_adapter`).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field
from torch import nn

from nlptune.backbones import hf_adapter
from nlptune.config import StrategyConfig
from nlptune.errors import ConfigError, ModelError
from nlptune.registry import STRATEGIES
from nlptune.training.plan import Plan, enable

logger = logging.getLogger("nlptune")


class LoraConfig(StrategyConfig):
    type: str = Field("lora", description="which parameters train (nlptune list strategies)")
    r: int = Field(8, ge=1, description="lora: rank of each adapter (its update is r-dimensional)")
    alpha: float = Field(16, gt=0, description="lora: scale; an adapter's update counts alpha / r")
    dropout: float = Field(0.1, ge=0, lt=1, description="lora: dropout on the adapters' input")
    target_modules: list[str] | None = Field(
        None,
        min_length=1,
        description="lora: names of the linear layers that get adapters (null: the "
        "architecture's attention query and value: query,value for BERT/MiniLM/RoBERTa, q,v for "
        "MPNet and T5, q_proj,v_proj for BART/Marian, query_proj,value_proj for DeBERTa-v2)",
    )
    lr_scale: float = Field(
        10.0,
        gt=0,
        description="lora: adapters and head learn at trainer.lr x lr_scale (LoRA wants about "
        "ten times the full fine-tuning rate: the LoRA paper's RoBERTa runs use 4e-4-5e-4); "
        "trainer.head_lr, when set, still sets the head's",
    )
    merge: bool = Field(
        False,
        description="lora: merge the adapters into the weights on save (model/ is a standard "
        "transformers model); false: model/ holds adapters and head, and loads on the base model",
    )


@STRATEGIES.register("lora")
class Lora:
    """Train low-rank adapters and the head on a fixed pre-trained transformer."""

    Config = LoraConfig

    def __init__(
        self,
        freeze_embeddings: bool = True,
        r: int = 8,
        alpha: float = 16,
        dropout: float = 0.1,
        target_modules: list[str] | None = None,
        merge: bool = False,
        lr_scale: float = 10.0,
    ) -> None:
        self.r, self.alpha, self.dropout, self.lr_scale = r, alpha, dropout, lr_scale
        self.target_modules, self.merge = target_modules, merge

    def check(self, num_layers: int) -> None:
        if hf_adapter.peft_missing():
            raise ConfigError(
                f"strategy.type=lora needs peft, which is not installed: {hf_adapter.INSTALL}"
            )

    def check_layers(self, kind: str, linear: list[str]) -> None:
        """Refuse target modules that name no linear layer of the ``kind`` architecture."""
        hf_adapter.resolve_targets(self.target_modules, kind, linear)

    def apply(self, model: Any, new: set[str]) -> tuple[nn.Module, Plan]:
        self.check(0)
        encoder = model.encoder
        transformer = getattr(encoder, "transformer", None)
        if transformer is None:
            raise ModelError(
                "strategy.type=lora adapts a transformers model; this backbone has none: use "
                "backbone.type hf_encoder or hf_seq2seq"
            )
        kind = hf_adapter.model_type(transformer.config)
        targets = hf_adapter.resolve_targets(
            self.target_modules, kind, hf_adapter.linear_names(transformer)
        )
        adapter = hf_adapter.Adapter(self.r, self.alpha, self.dropout, targets)
        inner = {n.removeprefix("encoder.") for n in new}
        hf_adapter.inject(encoder, adapter, inner)
        full = {f"encoder.{n}" for n in adapter.full}
        head = set(model.head_parameters()) | full
        train = head | {f"encoder.{n}" for n in adapter.names}
        params = [n for n, _ in model.named_parameters() if n in train]
        scale = {n: self.lr_scale for n in params}  # the head too, unless trainer.head_lr
        plan = Plan(params, set(params), head & set(params), scale)
        enable(model, plan)
        logger.info(
            "lora: adapters of rank %d (alpha %g, dropout %g, lr x %g) on %d linear layers of "
            "the %s model (%s)%s",
            self.r,
            self.alpha,
            self.dropout,
            self.lr_scale,
            len({n.split(".lora_", 1)[0] for n in adapter.names}),
            kind,
            ", ".join(targets),
            f"; {len(full)} newly initialised tensors train in full" if full else "",
        )
        return model, plan

    def update(self, plan: Plan, epoch: int, step: int) -> Plan | None:
        return None

    def finish(self, model: Any) -> None:
        """Before the model is saved: merge the adapters into the weights (``merge: true``)."""
        if self.merge and getattr(model.encoder, "adapter", None) is not None:
            hf_adapter.merge(model.encoder)
            logger.info("lora: adapters merged into the weights; model/ is a standard model")
