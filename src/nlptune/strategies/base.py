"""What every strategy shares: the training plan, and plans made from an encoder's layer groups.

A strategy decides which parameters of a :class:`~nlptune.heads.TaskModel` train and how fast.
It reads the encoder's declared layer groups (``embeddings``, ``layer.0`` ... ``layer.N-1``,
``top``, and for an encoder-decoder the same again under ``decoder.``; never parameter-name
patterns), may wrap the model (adapters), and is asked at every
step whether the plan changes (gradual unfreezing). The contract:

    strategy.check(num_layers)                 before weights load
    model, plan = strategy.apply(model, new)   ``new``: newly initialised parameter names
    strategy.update(plan, epoch, step)         a new Plan, or None to keep the current one

``update`` must be a pure function of ``(epoch, step)`` so that a resumed run gets the plan the
uninterrupted run had at that point. Two optional hooks:

    strategy.check_layers(model_type, linear)  before weights load, with the names of the
                                               backbone's linear layers (``linear_layers()``)
    strategy.finish(model)                     before the model is saved (lora: merge)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from pydantic import Field
from torch import nn

from nlptune.config import StrategyConfig
from nlptune.training.plan import Plan, enable


class Strategy(Protocol):
    Config: ClassVar[type[StrategyConfig]]

    def check(self, num_layers: int) -> None:
        """Refuse settings the backbone cannot meet (ModelError), before weights load."""
        ...

    def apply(self, model: Any, new: set[str]) -> tuple[nn.Module, Plan]: ...

    def update(self, plan: Plan, epoch: int, step: int) -> Plan | None: ...


def group_of(model: Any, new: set[str]) -> dict[str, str]:
    """Every parameter's group: ``head`` (task heads and newly initialised weights),
    ``word_embeddings``, or the encoder's layer group (``embeddings``, ``layer.i``, ``top``)."""
    out = {name: "head" for name in model.head_parameters()}
    encoder = model.encoder
    words = set(encoder.embedding_parameters())
    for group in encoder.layer_groups():
        for name in group.params:
            full = f"encoder.{name}"
            if full in new:
                out[full] = "head"
            else:
                out[full] = "word_embeddings" if name in words else group.name
    return out


def depth(group: str, n: int) -> int:
    """Embeddings 0, layer i at i, top at n, within the group's stack (for layer-wise
    learning-rate decay; ``n`` is the stack's layer count)."""
    index = layer_index(group)
    if index is not None:
        return index
    return n if group.rsplit(".", 1)[-1] == "top" else 0


def stack_of(group: str) -> str:
    """``decoder`` for an encoder-decoder's decoder groups (``decoder.layer.3``), ``head`` for
    heads, else ``encoder``."""
    if group == "head":
        return "head"
    return "decoder" if group.startswith("decoder.") else "encoder"


def layer_plan(
    model: Any,
    new: set[str],
    trains: Callable[[str], bool],
    *,
    layer_lr_decay: float | None = None,
    cache_backbone: bool = False,
) -> Plan:
    """A plan from ``trains(group) -> bool`` over :func:`group_of`; sets ``requires_grad``."""
    groups = group_of(model, new)
    counts = stack_layers(model)
    params, head, scale = [], set(), {}
    for name, _ in model.named_parameters():
        group = groups.get(name, "head")
        if not trains(group):
            continue
        params.append(name)
        if group == "head":
            head.add(name)
        elif layer_lr_decay is not None:
            n = counts.get(stack_of(group), 0)
            scale[name] = layer_lr_decay ** (n - depth(group, n))
    plan = Plan(params, set(params), head, scale, cache_backbone)
    enable(model, plan)
    return plan


def num_layers(model: Any) -> int:
    """How many ``layer.i`` groups the model's encoder declares (in its first stack)."""
    return stack_layers(model).get("encoder", 0)


def stack_layers(model: Any) -> dict[str, int]:
    """Layer groups per stack: ``{"encoder": n}``, plus ``"decoder"`` for encoder-decoders."""
    counts: dict[str, int] = {}
    for g in model.encoder.layer_groups():
        if layer_index(g.name) is not None:
            counts[stack_of(g.name)] = counts.get(stack_of(g.name), 0) + 1
    return counts


def layer_index(group: str) -> int | None:
    """``i`` of ``layer.i`` (or ``decoder.layer.i``), None for other groups."""
    leaf = group.removeprefix("decoder.")
    return int(leaf.split(".", 1)[1]) if leaf.startswith("layer.") else None


DECAY = (
    "layer-wise LR decay: layer i from the top learns lr * decay**i (null: none; gradual's "
    "default is ULMFiT's 1/2.6)"
)


class DecayConfig(StrategyConfig):
    layer_lr_decay: float | None = Field(None, gt=0, le=1, description=DECAY)
