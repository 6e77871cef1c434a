"""The auxiliary language-model head of static-vector networks: multi-task learning with
language modelling as the supporting task (Rei 2017; Liu et al. 2018).

The forward half of a BiLSTM's state at word t predicts word t+1, the backward half predicts
word t-1, over one output layer shared by both directions. ``softmax="full"`` scores the whole
vocabulary; ``"sampled"`` scores the batch's own target words plus ``samples`` words drawn
uniformly (shared by the batch), which costs a fraction of a large vocabulary's softmax.
The loss (the mean over sentences of each one's mean over both directions' words) is computed
only in training: the head changes nothing at prediction time. The full softmax gives the same
gradient whatever the number of processes; the sampled one draws its words per process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from nlptune.heads.layers import init_linear


def word_positions(ids: torch.Tensor, mask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """(B, T) bool: the pieces that are words (not padding, not character pieces >= V)."""
    return mask.bool() & (ids < vocab_size)


def compact(values: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``keep`` positions of ``values`` (B, T, ...) moved to the front, in order:
    ``(B, W, ...)`` with W the most kept in a row, and the (B, W) validity mask."""
    width: Any
    if torch.jit.is_tracing():  # ONNX export: the width as a tensor, so it stays dynamic
        width = keep.sum(1).max()
    else:
        width = int(keep.sum(1).max()) if keep.numel() else 0
    # kept positions first, each group in order: distinct keys, so no stable sort is needed
    # (ONNX has none)
    positions = torch.arange(keep.shape[1], device=keep.device)
    key = (~keep).long() * keep.shape[1] + positions
    order = torch.argsort(key, dim=1)[:, :width]  # (B, W)
    valid = keep.gather(1, order)
    if values.dim() == 2:
        return values.gather(1, order), valid
    index = order[..., None].expand(-1, -1, values.shape[-1])
    return values.gather(1, index), valid


class WordLMHead(nn.Module):
    """Forward next-word and backward previous-word prediction from BiLSTM states."""

    kind: ClassVar[str] = "word_lm"
    reads: ClassVar[str] = "all"

    def __init__(
        self, hidden_size: int, vocab_size: int, softmax: str = "full", samples: int = 1024
    ) -> None:
        super().__init__()
        self.vocab_size, self.softmax, self.samples = vocab_size, softmax, samples
        self.split = hidden_size // 2
        self.out = init_linear(nn.Linear(self.split, vocab_size), 0.02)

    def forward(
        self, states: torch.Tensor, batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        if not self.training:
            return {}
        ids = batch["input_ids"]
        keep = word_positions(ids, batch["attention_mask"], self.vocab_size)
        keep[:, 0] = False  # <s>: its state is the pooled sentence, not a word's
        words, valid = compact(ids, keep)  # (B, W)
        hidden, _ = compact(states, keep)  # (B, W, H)
        pair = valid[:, 1:] & valid[:, :-1]  # word t and word t+1 both exist
        forward = hidden[:, :-1, : self.split][pair]  # predicts the next word
        backward = hidden[:, 1:, self.split :][pair]  # predicts the previous word
        inputs = torch.cat([forward, backward])  # (N, H/2)
        targets = torch.cat([words[:, 1:][pair], words[:, :-1][pair]])  # (N,)
        owner = pair.nonzero(as_tuple=True)[0].repeat(2)  # the sentence of each prediction
        if not len(targets):  # no two adjacent words: a zero loss that still reaches every
            # parameter, so that DDP finds the gradients it waits for
            zero = states.sum() + self.out.weight.sum() + self.out.bias.sum()
            return {"loss": zero * 0.0}
        # the mean over sentences of each one's mean token loss: a per-item mean like the task
        # losses, so a batch split over processes (item-weighted) gives the same gradient
        per_token = self._losses(inputs, targets)
        sums = torch.zeros(len(ids), device=ids.device).index_add_(0, owner, per_token)
        counts = torch.bincount(owner, minlength=len(ids)).clamp(min=1)
        return {"loss": (sums / counts).mean()}

    def _losses(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.softmax == "full" or self.samples >= self.vocab_size:
            logits = self.out(inputs).float()
            return nn.functional.cross_entropy(logits, targets, reduction="none")
        drawn = torch.randint(self.vocab_size, (self.samples,), device=targets.device)
        candidates = torch.unique(torch.cat([targets, drawn]))  # sorted
        weight, bias = self.out.weight[candidates], self.out.bias[candidates]
        logits = (inputs @ weight.T + bias).float()
        index = torch.searchsorted(candidates, targets)
        return nn.functional.cross_entropy(logits, index, reduction="none")
