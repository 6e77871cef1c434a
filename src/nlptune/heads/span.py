"""A span head: start and end scores for every token (extractive QA)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from nlptune.heads.layers import init_linear


class SpanHead(nn.Module):
    """Linear (H -> 2) over every token: ``start_logits`` and ``end_logits`` (B, T).

    The loss is transformers' question-answering loss: the mean of the start and end
    cross-entropies, positions outside the window clamped to an ignored index.
    """

    kind: ClassVar[str] = "span"
    reads: ClassVar[str] = "all"

    def __init__(self, hidden_size: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.qa_outputs = init_linear(nn.Linear(hidden_size, 2), init_std)

    def forward(
        self, states: torch.Tensor, batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        logits = self.qa_outputs(states)  # (B, T, 2)
        start, end = logits[..., 0].contiguous(), logits[..., 1].contiguous()  # (B, T) each
        out = {"start_logits": start, "end_logits": end}
        starts, ends = batch.get("start_positions"), batch.get("end_positions")
        if starts is not None and ends is not None:
            ignored = start.shape[1]
            loss = nn.functional.cross_entropy
            s, e = start.float(), end.float()
            mask = batch.get("attention_mask")
            if mask is not None:  # padding is never an answer: a window's loss does not
                # depend on how wide its batch is padded (N processes = 1 process)
                pad = mask[:, : s.shape[1]] == 0
                low = torch.finfo(torch.float32).min
                s, e = s.masked_fill(pad, low), e.masked_fill(pad, low)
            out["loss"] = (
                loss(s, starts.clamp(0, ignored), ignore_index=ignored)
                + loss(e, ends.clamp(0, ignored), ignore_index=ignored)
            ) / 2
        return out
