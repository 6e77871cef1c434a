"""The one initialisation rule the heads share."""

from __future__ import annotations

from torch import nn


def init_linear(layer: nn.Linear, init_std: float | None) -> nn.Linear:
    """Initialise ``layer`` in place as transformers initialises its heads (weights from
    N(0, ``init_std``), zero bias); None keeps torch's default. Returns the layer."""
    if init_std is not None:
        nn.init.normal_(layer.weight, std=init_std)
        nn.init.zeros_(layer.bias)
    return layer
