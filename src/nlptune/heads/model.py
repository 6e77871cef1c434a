"""One model for every task and family: an encoder and one or more named heads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class HeadSpec:
    """A head a task asks for: its class and flat arguments (``hidden_size`` and the encoder
    family's options for that kind of head are added by the builder). ``weight`` scales the
    head's loss when several heads train together."""

    cls: type[nn.Module]
    args: Mapping[str, Any] = field(default_factory=dict)
    weight: float = 1.0

    @property
    def kind(self) -> str:
        """The head's kind (``classification``, ``token``, ...): what a backbone must feed."""
        return str(getattr(self.cls, "kind", ""))


class TaskModel(nn.Module):
    """``encoder(batch) -> states (B, T, H)``, then every head reads the states and the batch.

    Returns the first head's outputs under their own names (``logits``, ``start_logits``, ...),
    every head's outputs also as ``"<head>.<name>"``, and ``loss``: the weighted sum of the losses
    of the heads whose labels the batch carries (absent when none does); with several heads, each
    one's own loss also as ``"<head>.loss"`` (detached: for the training log).
    """

    def __init__(
        self,
        encoder: Any,
        heads: Mapping[str, nn.Module],
        weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.hidden_size: int = encoder.hidden_size
        self.heads = nn.ModuleDict(dict(heads))
        self.weights = {name: float((weights or {}).get(name, 1.0)) for name in self.heads}

    def forward(self, **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        states = self.encoder(batch)  # (B, T, H)
        out: dict[str, torch.Tensor] = {}
        losses = []
        for i, (name, head) in enumerate(self.heads.items()):
            result = head(states, batch)
            if "loss" in result:
                losses.append(self.weights[name] * result["loss"])
                if len(self.heads) > 1:  # each head's own (unweighted) loss, for the log
                    out[f"{name}.loss"] = result["loss"].detach()
            for key, value in result.items():
                if key != "loss":
                    out[f"{name}.{key}"] = value
                    if i == 0:
                        out[key] = value
        if losses:
            out["loss"] = torch.stack(losses).sum() if len(losses) > 1 else losses[0]
        return out

    def with_encoder(self, encoder: nn.Module) -> TaskModel:
        """The same heads (shared parameters) on another encoder, e.g. a frozen-state cache."""
        return TaskModel(encoder, dict(self.heads.items()), self.weights)

    def head_parameters(self) -> list[str]:
        return [f"heads.{n}" for n, _ in self.heads.named_parameters()]
