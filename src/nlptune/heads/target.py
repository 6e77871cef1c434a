"""A target-span head: the mean of a target's token states -> dropout -> linear (word senses)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from nlptune.heads.layers import init_linear


class TargetHead(nn.Module):
    """Pools the tokens marked by ``target_mask`` (B, T) and classifies the pooled vector."""

    kind: ClassVar[str] = "target"
    reads: ClassVar[str] = "all"

    def __init__(
        self,
        hidden_size: int,
        num_labels: int,
        dropout: float = 0.1,
        init_std: float | None = None,
    ) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = init_linear(nn.Linear(hidden_size, num_labels), init_std)

    def forward(
        self, states: torch.Tensor, batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        weights = batch["target_mask"].to(states.dtype)[:, : states.shape[1], None]  # (B, T, 1)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, H)
        logits = self.classifier(self.dropout(pooled))  # (B, L)
        out = {"logits": logits}
        labels = batch.get("labels")
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits.float(), labels, ignore_index=-1)
        return out
