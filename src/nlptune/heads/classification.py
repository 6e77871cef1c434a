"""A classification (or regression) head over the first token's state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from nlptune.heads.layers import init_linear

ACTIVATIONS = {"tanh": nn.Tanh, "gelu": nn.GELU, "relu": nn.ReLU}


class ClassificationHead(nn.Module):
    """First-token state -> optional pooler (dense + activation) -> dropout -> linear.

    ``problem`` picks the loss as transformers does: ``single_label`` cross-entropy,
    ``multi_label`` binary cross-entropy on sigmoids, ``regression`` mean squared error
    (``num_labels`` 1). The encoder family decides the pooler's activation and whether dropout
    also comes before it (BERT: pooler, dropout, linear; RoBERTa: dropout, pooler, dropout,
    linear), so that the saved model is that family's standard class.
    """

    kind: ClassVar[str] = "classification"
    reads: ClassVar[str] = "first"  # a frozen-backbone cache may store only the first token

    def __init__(
        self,
        hidden_size: int,
        num_labels: int,
        problem: str = "single_label",
        pooler: str | None = "tanh",
        dropout: float = 0.1,
        dropout_before_pooler: bool = False,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        self.problem = problem
        self.pooler = nn.Linear(hidden_size, hidden_size) if pooler else None
        self.activation = ACTIVATIONS[pooler]() if pooler else nn.Identity()
        self.pre_dropout = nn.Dropout(dropout) if dropout_before_pooler and pooler else None
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_labels)
        for layer in (self.pooler, self.out):
            if layer is not None:
                init_linear(layer, init_std)

    def forward(
        self, states: torch.Tensor, batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        x = states[:, 0]  # (B, H)
        if self.pooler is not None:
            if self.pre_dropout is not None:
                x = self.pre_dropout(x)
            x = self.activation(self.pooler(x))
        logits = self.out(self.dropout(x))  # (B, L)
        out = {"logits": logits}
        labels = batch.get("labels")
        if labels is not None:
            out["loss"] = classification_loss(logits, labels, self.problem)
        return out


class NextSentenceHead(nn.Module):
    """BERT's next-sentence prediction: pooler (dense + tanh) over [CLS], then two logits
    (0: B follows A, 1: B is a random sentence, as transformers numbers them), read from
    ``next_sentence_label``. No dropout before the output, as in ``BertForPreTraining``."""

    kind: ClassVar[str] = "next_sentence"
    reads: ClassVar[str] = "first"

    def __init__(self, hidden_size: int, init_std: float = 0.02) -> None:
        super().__init__()
        self.pooler = nn.Linear(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, 2)
        for layer in (self.pooler, self.out):
            init_linear(layer, init_std)

    def forward(
        self, states: torch.Tensor, batch: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        logits = self.out(torch.tanh(self.pooler(states[:, 0])))  # (B, 2)
        out = {"logits": logits}
        labels = batch.get("next_sentence_label")
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits.float(), labels)
        return out


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, problem: str) -> torch.Tensor:
    """The loss transformers uses for ``problem_type`` (logits (B, L), labels (B,) or (B, L))."""
    logits = logits.float()
    if problem == "regression":
        return nn.functional.mse_loss(logits.squeeze(-1), labels.float().view(-1))
    if problem == "multi_label":
        return nn.functional.binary_cross_entropy_with_logits(logits, labels.float())
    return nn.functional.cross_entropy(logits, labels.view(-1))
