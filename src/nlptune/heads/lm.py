"""The text-to-text head: the sequence-to-sequence model's own LM logits, and their loss."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn


class Seq2SeqLMHead(nn.Module):
    """Reads the LM logits over the target (B, T, V) that a seq2seq encoder returns (the LM
    projection is the model's own, saved with it) and computes token cross-entropy against
    ``labels`` (B, T; -100 where padded), with optional label smoothing. No parameters."""

    kind: ClassVar[str] = "seq2seq_lm"
    reads: ClassVar[str] = "all"

    def __init__(self, hidden_size: int, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(
        self, states: torch.Tensor, batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        out = {"logits": states}
        labels = batch.get("labels")
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(
                states.float().reshape(-1, states.shape[-1]),
                labels.reshape(-1),
                ignore_index=-100,
                label_smoothing=self.label_smoothing,
            )
        return out
