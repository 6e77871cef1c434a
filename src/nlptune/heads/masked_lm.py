"""The masked-LM head: the architecture's own prediction head, scored at masked positions only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
from torch import nn


class MaskedLMHead(nn.Module):
    """Runs ``parts`` (the architecture's masked-LM modules, e.g. BERT's ``cls``, RoBERTa's
    ``lm_head``; applied in order, the output layer tied to the input embeddings as the
    architecture ties it) over the positions that are scored, never over the whole sequence.

    Positions are those with ``labels`` (B, T; -100 elsewhere) when the batch has them, else
    those in ``mlm_positions`` (B, T bool), else all. Returns ``logits`` (N, V) of those positions
    in row-major order and, with labels, the mean token cross-entropy as ``loss``.
    """

    kind: ClassVar[str] = "masked_lm"
    reads: ClassVar[str] = "all"

    def __init__(
        self, hidden_size: int, parts: Sequence[tuple[str, nn.Module]] = (), vocab_size: int = 0
    ) -> None:
        super().__init__()
        if not parts:
            raise ValueError("MaskedLMHead needs the architecture's masked-LM modules")
        self.lm = nn.ModuleDict(dict(parts))  # names as in transformers' *ForMaskedLM
        self.vocab_size = vocab_size

    def forward(
        self, states: torch.Tensor, batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        labels = batch.get("labels")
        if labels is not None:
            where = labels != -100
        elif "mlm_positions" in batch:
            where = batch["mlm_positions"].bool()
        else:
            where = torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)
        x = states[where]  # (N, H)
        for module in self.lm.values():
            x = module(x)
        out = {"logits": x}
        if labels is not None:
            if x.shape[0]:
                out["loss"] = nn.functional.cross_entropy(x.float(), labels[where])
            else:  # nothing masked in this share: a zero that still reaches every parameter
                out["loss"] = x.float().sum() * 0.0
        return out
