"""A per-token head: dropout -> linear over every token, optional mean subword pooling and CRF."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from nlptune.heads.crf import CRF
from nlptune.heads.layers import init_linear


class TokenHead(nn.Module):
    """Scores every token; words are scored on their first subword or the mean of their subwords.

    Batch keys: ``labels`` (B, T) with -100 off scored tokens; ``word_ids`` (B, T), each token's
    1-based word (0: special or padding), for ``pooling="mean"``; ``word_mask`` (B, T: 1 on first
    subwords) with a CRF. With ``crf_labels`` a linear-chain CRF over the first-subword scores
    gives the loss, and in evaluation ``logits`` holds the Viterbi tags as one-hot rows, so
    decoding is an argmax either way.
    """

    kind: ClassVar[str] = "token"
    reads: ClassVar[str] = "all"

    def __init__(
        self,
        hidden_size: int,
        num_labels: int,
        dropout: float = 0.1,
        pooling: str = "first",
        crf_labels: list[str] | None = None,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = init_linear(nn.Linear(hidden_size, num_labels), init_std)
        self.crf = CRF(crf_labels) if crf_labels is not None else None

    def forward(
        self, states: torch.Tensor, batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        logits = self.classifier(self.dropout(states))  # (B, T, L)
        if self.pooling == "mean":
            logits = mean_over_words(logits.float(), batch["word_ids"][:, : logits.shape[1]])
        labels = batch.get("labels")
        if self.crf is None:
            out = {"logits": logits}
            if labels is not None:
                n = logits.shape[-1]
                out["loss"] = nn.functional.cross_entropy(
                    logits.float().reshape(-1, n), labels.reshape(-1), ignore_index=-100
                )
            return out
        return self._crf(logits, batch["word_mask"].bool(), labels)

    def _crf(
        self, emissions: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        assert self.crf is not None
        counts = mask.sum(1)
        width = max(int(counts.max()), 1)
        order = torch.argsort((~mask).int(), dim=1, stable=True)[:, :width]  # first subwords first
        words = torch.gather(emissions, 1, order[:, :, None].expand(-1, -1, emissions.shape[-1]))
        valid = torch.arange(width, device=mask.device)[None] < counts[:, None]  # (B, W)
        out: dict[str, torch.Tensor] = {}
        if labels is not None:
            tags = torch.gather(labels, 1, order).clamp(min=0)
            out["loss"] = self.crf.nll(words, tags, valid).mean()
        if self.training:
            return out  # Viterbi is only needed to predict
        out["logits"] = crf_scores(self.crf, emissions, mask, (words, valid, order))
        return out


def crf_scores(
    crf: CRF,
    emissions: torch.Tensor,
    mask: torch.Tensor,
    words: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The Viterbi tag of each word as a one-hot row (B, T, L), valued at the tag's probability
    under the emission scores alone (a confidence for the predicted entities); decoding is an
    argmax. ``mask`` (B, T bool) marks first subwords; ``words``: the first-subword emissions,
    their mask and positions when the caller has them. Also the ONNX runner's CRF step."""
    if words is None:
        counts = mask.sum(1)
        width = max(int(counts.max()), 1)
        order = torch.argsort((~mask).int(), dim=1, stable=True)[:, :width]
        index = order[:, :, None].expand(-1, -1, emissions.shape[-1])
        valid = torch.arange(width, device=mask.device)[None] < counts[:, None]
        words = (torch.gather(emissions, 1, index), valid, order)
    scores, valid, order = words
    onehot = torch.zeros_like(emissions, dtype=torch.float32)  # (B, T, L)
    for i, path in enumerate(crf.viterbi(scores, valid)):
        if path:
            positions = order[i, : len(path)]
            onehot[i, positions, torch.tensor(path, device=onehot.device)] = 1.0
    return onehot * torch.softmax(emissions.float(), dim=-1)


def mean_over_words(logits: torch.Tensor, word_ids: torch.Tensor) -> torch.Tensor:
    """Each token's scores replaced by the mean over its word's tokens (B, T, L).

    The classifier is linear, so this equals the classifier applied to the mean of the word's
    subword states. ``word_ids`` (B, T) numbers words from 1; 0 marks tokens of no word.
    """
    b, _, n = logits.shape
    # ONNX export: the width as a tensor, so it stays dynamic
    width: Any = word_ids.max() + 1 if torch.jit.is_tracing() else int(word_ids.max()) + 1
    index = word_ids[:, :, None].expand(-1, -1, n)
    sums = logits.new_zeros(b, width, n).scatter_add_(1, index, logits)  # (B, W+1, L)
    ones = torch.ones_like(word_ids, dtype=logits.dtype)
    counts = logits.new_zeros(b, width).scatter_add_(1, word_ids, ones).clamp(min=1.0)
    return torch.gather(sums / counts[:, :, None], 1, index)  # (B, T, L)
