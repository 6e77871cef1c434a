"""Frozen-encoder caching: run the encoder once, then train the heads on stored states.

A head declares what it reads: the first token's state (sentence classification) or every
token's (tagging, word senses). :func:`compute_states` runs the frozen encoder over a split once
and keeps exactly that; :class:`CachedEncoder` is an encoder that answers a batch with the stored
states of its items (by the batch's ``index``), so the unchanged heads train on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn

from nlptune.data.features import Features
from nlptune.training.evaluate import stream_features


class StateCache:
    """Stored encoder states of one split: (N, H) first-token states, or per-item (T_i, H)."""

    def __init__(self, states: torch.Tensor | list[torch.Tensor]) -> None:
        self.states = states
        self.first = isinstance(states, torch.Tensor)

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """States of a batch: (B, 1, H), or (B, T, H) zero-padded to the longest item."""
        if isinstance(self.states, torch.Tensor):
            return self.states[indices.to(self.states.device)][:, None, :]
        rows = [self.states[i] for i in indices.tolist()]
        return torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)  # (B, T, H)


class CachedEncoder(nn.Module):
    """An encoder with no parameters that returns stored states; ``split`` picks the cache."""

    def __init__(self, caches: Mapping[str, StateCache], hidden_size: int) -> None:
        super().__init__()
        self.caches, self.hidden_size, self.split = dict(caches), hidden_size, "train"

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return self.caches[self.split].batch(batch["index"])

    def layer_groups(self) -> list[Any]:
        return []

    def embedding_parameters(self) -> list[str]:
        return []


def compute_states(
    encoder: nn.Module,
    features: Features,
    first: bool,
    pad_id: int,
    *,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[Any]],
    accelerator: Any = None,
) -> StateCache:
    """Run the frozen ``encoder`` once over ``features`` and keep its states on the device."""
    encoder.eval()

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        states = encoder(batch)  # (B, T, H)
        return states[:, 0] if first else states

    rows = stream_features(
        forward,
        features,
        pad_id,
        batch_size=batch_size,
        device=device,
        autocast=autocast,
        accelerator=accelerator,
    )
    lengths = features.lengths
    kept: list[torch.Tensor | None] = [None] * len(features)
    for i, row in rows:
        kept[i] = torch.from_numpy(row if first else row[: lengths[i]])
    done = [r for r in kept if r is not None]
    if first:
        return StateCache(torch.stack(done).to(device))
    return StateCache([r.to(device) for r in done])
