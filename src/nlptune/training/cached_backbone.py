"""Frozen-backbone caching: run the backbone once, then train the head on stored states.

Sequence-classification heads of encoder families read only the first token of the last hidden
state (BERT's pooler, RoBERTa/ELECTRA/DeBERTa/MPNet heads, DistilBERT). For those, the first-token
state of every example is computed once; while :class:`CachedBackbone` is active, the model's base
forward returns the stored state passed in as ``inputs_embeds`` (B, 1, H) instead of running the
encoder, so the unchanged transformers head (pooler, dropout, classifier, loss) trains on it.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import torch

FIRST_TOKEN_HEADS = {
    "bert",
    "roberta",
    "xlm-roberta",
    "camembert",
    "electra",
    "deberta",
    "deberta-v2",
    "mpnet",
    "distilbert",
}


def supports_cache(model: Any) -> bool:
    return getattr(model.config, "model_type", None) in FIRST_TOKEN_HEADS


def backbone_states(model: Any, batch: dict[str, torch.Tensor], first: bool) -> torch.Tensor:
    """The backbone's last hidden state (B, T, H), or its first token (B, H)."""
    inputs = {
        k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")
    }
    states = model.base_model(**inputs)[0]  # (B, T, H)
    return states[:, 0] if first else states


class StateCache:
    """Stored backbone states of one split: (N, H) first-token states, or per-item (T_i, H)."""

    def __init__(self, states: torch.Tensor | list[torch.Tensor]) -> None:
        self.states = states
        self.first = isinstance(states, torch.Tensor)

    def embeds(self, indices: list[int]) -> torch.Tensor:
        """``inputs_embeds`` for a batch: (B, 1, H), or (B, T, H) zero-padded to the longest."""
        if isinstance(self.states, torch.Tensor):
            return self.states[torch.tensor(indices)][:, None, :]
        rows = [self.states[i] for i in indices]
        return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)  # (B, T, H)


class CachedBackbone:
    """Context manager that makes ``model.base_model`` echo stored first-token states."""

    def __init__(self, model: Any) -> None:
        self.base = model.base_model

    def _forward(self, *args: Any, inputs_embeds: torch.Tensor | None = None, **kwargs: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        hidden = inputs_embeds  # (B, 1, H)
        pooler = getattr(self.base, "pooler", None)
        pooled = pooler(hidden) if pooler is not None else None  # (B, H)
        return BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled)

    def __enter__(self) -> CachedBackbone:
        self.base.forward = self._forward
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        del self.base.forward
