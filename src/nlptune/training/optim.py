"""Parameter groups, AdamW and the warm-up + linear-decay schedule."""

from __future__ import annotations

import math
from typing import Any

import torch

from nlptune.training.plan import Plan


def no_decay(name: str) -> bool:
    """Biases and normalisation weights get no weight decay."""
    lowered = name.lower()
    return (
        name.endswith("bias")
        or "layernorm" in lowered
        or "layer_norm" in lowered
        or ".norm" in lowered
    )


def param_groups(
    model: torch.nn.Module, plan: Plan, lr: float, head_lr: float | None, weight_decay: float
) -> list[dict[str, Any]]:
    """One group per (learning rate, weight decay) pair, in a deterministic order, over every
    parameter of the plan (one that does not train yet has no gradient, so AdamW skips it).
    A parameter learns at ``lr`` times its ``plan.lr_scale`` (1 by default); a head parameter
    at ``head_lr`` when that is given."""
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    named = dict(model.named_parameters())
    for name in plan.params:
        if name in plan.head and head_lr is not None:
            rate = head_lr
        else:
            rate = lr * plan.lr_scale.get(name, 1.0)
        decay = 0.0 if no_decay(name) else weight_decay
        groups.setdefault((rate, decay), []).append(named[name])
    return [{"params": p, "lr": r, "weight_decay": d} for (r, d), p in groups.items()]


def describe_groups(model: torch.nn.Module, plan: Plan, groups: list[dict[str, Any]]) -> list[str]:
    """One line per optimizer group: learning rate, weight decay, size and which parameters
    (their modules, layers run together: ``encoder.base.encoder.layer.0-5``)."""
    names = {id(p): n for n, p in model.named_parameters()}
    lines = []
    for i, group in enumerate(groups):
        params = group["params"]
        now = [p for p in params if names[id(p)] in plan.trainable]
        waiting = f", {len(params) - len(now)} not training yet" if len(now) < len(params) else ""
        lines.append(
            f"optimizer group {i}: lr {group['lr']:.3g}, weight decay {group['weight_decay']:g}, "
            f"{len(params)} tensors ({sum(p.numel() for p in params):,} parameters{waiting}): "
            + _modules([names[id(p)] for p in params])
        )
    return lines


def _modules(names: list[str], most: int = 6) -> str:
    """Parameter names summed up as their modules: up to the layer number (or three parts);
    numbered layers of one module run together (``layer.0-5``)."""
    stems: dict[str, list[int]] = {}
    for name in names:
        parts = name.split(".")
        cut = next((i for i, x in enumerate(parts[:-1]) if x.isdigit()), None)
        if cut is None:
            stems.setdefault(".".join(parts[: min(3, len(parts) - 1) or 1]), [])
        else:
            numbers = stems.setdefault(".".join(parts[:cut]) + ".#", [])
            if int(parts[cut]) not in numbers:
                numbers.append(int(parts[cut]))
    shown = []
    for stem, numbers in stems.items():
        if not stem.endswith(".#"):
            shown.append(stem)
            continue
        low, high = min(numbers), max(numbers)
        span = (
            f"{low}-{high}"
            if sorted(numbers) == list(range(low, high + 1))
            else "/".join(str(x) for x in numbers)
        )
        shown.append(stem[:-1] + (span if len(numbers) > 1 else str(low)))
    more = f", +{len(shown) - most} more" if len(shown) > most else ""
    return ", ".join(shown[:most]) + more


def make_optimizer(groups: list[dict[str, Any]], device: torch.device) -> torch.optim.Optimizer:
    """AdamW, fused where the device supports it (CPU and CUDA in current torch)."""
    try:
        return torch.optim.AdamW(groups, fused=device.type in ("cpu", "cuda"))
    except (RuntimeError, TypeError):  # older torch or an unsupported device
        return torch.optim.AdamW(groups)


def linear_schedule(
    optimizer: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from 0 to the peak over ``warmup`` steps, then linear decay to 0 (the same
    curve as transformers' ``get_linear_schedule_with_warmup``)."""

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def warmup_steps(total: int, ratio: float, steps: int | None) -> int:
    return steps if steps is not None else math.ceil(total * ratio)
