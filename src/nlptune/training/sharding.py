"""Full tensors out of, and into, a model whose training state is split over the processes.

Under accelerate's FSDP (version 2, ``configs/accelerate/fsdp.yaml``) every parameter is a
DTensor holding one process's shard: reading one gives a shard, copying a full tensor into one
fails, and the optimizer's moments are shards too. Under DeepSpeed ZeRO (stage 1 or 2,
``configs/accelerate/deepspeed_zero2.yaml``) the parameters stay whole on every process, maybe in
bf16, while the fp32 master weights and the moments are partitioned. Gathering is collective, so
every process calls these functions at the same point; the main process receives the full tensors
(the others an empty dict) and is the one that writes them. Loading gives every process the full
tensors (each read them from the shared output_dir) to cut its own part from. Without FSDP or
DeepSpeed these are the plain reads and copies of one process's module.

Optimizer states keep torch's own layout (``state`` keyed by the position of a parameter over the
param groups), so a checkpoint written under FSDP resumes without it and the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def is_sharded(accelerator: Any) -> bool:
    """Whether ``accelerator`` shards parameters (FSDP version 2)."""
    return accelerator is not None and bool(getattr(accelerator, "is_fsdp2", False))


def is_deepspeed(accelerator: Any) -> bool:
    """Whether ``accelerator`` runs DeepSpeed (ZeRO partitions the master weights and moments)."""
    return accelerator is not None and getattr(accelerator, "deepspeed_plugin", None) is not None


def is_split(accelerator: Any) -> bool:
    """Whether the training state is split over the processes (FSDP or DeepSpeed): reading or
    writing it whole takes every process."""
    return is_sharded(accelerator) or is_deepspeed(accelerator)


def check_version(accelerator: Any) -> None:
    """FSDP version 1 (flattened parameters) is not supported: one error line that says so."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP and not is_sharded(accelerator):
        from nlptune.errors import NlptuneError

        raise NlptuneError(
            "FSDP version 1 is not supported: set fsdp_version: 2 in the accelerate config file "
            "(as configs/accelerate/fsdp.yaml does) or pass --fsdp_version 2 to accelerate launch"
        )


def prepare_error(model: torch.nn.Module, err: ValueError) -> str | None:
    """The user's fix when accelerate can't shard ``model`` because the configured layer class
    is not in it (``fsdp_transformer_layer_cls_to_wrap``); None for any other error."""
    if "transformer layer class" not in str(err):
        return None
    layers = sorted(
        {
            type(layer).__name__
            for module in model.modules()
            if isinstance(module, torch.nn.ModuleList)
            for layer in module
        }
    )
    if not layers:
        return (
            f"FSDP: {err} FSDP shards a model by its transformer layers and this backbone has "
            "none: launch with configs/accelerate/ddp.yaml instead"
        )
    return (
        f"FSDP: {err} Its layers are {', '.join(layers)}: pass "
        f"--fsdp_transformer_layer_cls_to_wrap {','.join(layers)} to accelerate launch (or set "
        "fsdp_transformer_layer_cls_to_wrap in the accelerate config file)"
    )


def _options(**kwargs: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def full_weights(
    model: torch.nn.Module, names: Any, accelerator: Any = None
) -> dict[str, torch.Tensor]:
    """The parameters ``names`` of ``model``, whole and detached: on the main process (every
    process calls this under FSDP or DeepSpeed; the others get ``{}``)."""
    keep = set(names)
    if is_deepspeed(accelerator):
        from deepspeed.utils import safe_get_full_fp32_param

        out = {}
        for name, param in model.named_parameters():
            if name in keep:
                # the fp32 master copy, assembled from every process's partition (collective);
                # a parameter without one never trains (a fresh build holds its value)
                whole = safe_get_full_fp32_param(param)
                if whole is not None and accelerator.is_main_process:
                    out[name] = whole.detach().to("cpu").contiguous().clone()
        return out
    if not is_sharded(accelerator):
        if accelerator is not None and not accelerator.is_main_process:
            return {}
        return {
            n: p.detach().contiguous().clone() for n, p in model.named_parameters() if n in keep
        }
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    # cpu_offload with a full state dict: gathered on the main process only
    state: Any = get_model_state_dict(model, options=_options(cpu_offload=True))
    return {n: v.contiguous() for n, v in state.items() if n in keep}


def set_weights(
    model: torch.nn.Module, state: dict[str, torch.Tensor], accelerator: Any = None
) -> None:
    """Copy the whole tensors ``state`` into ``model``'s parameters (every process, each with
    the same ``state``, under FSDP or DeepSpeed: each keeps its own part)."""
    sharded, deepspeed = is_sharded(accelerator), is_deepspeed(accelerator)
    if sharded:  # the shards are what trains: a module left gathered (the root) holds copies
        _reshard(model)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            param: Any = params[name]
            if deepspeed:  # this process's part of the master copy, then the working copy
                from deepspeed.utils import safe_set_full_fp32_param

                safe_set_full_fp32_param(param, value.to(param.device, torch.float32))
            if sharded and hasattr(param, "device_mesh"):  # a DTensor: cut this process's shard
                from torch.distributed.tensor import distribute_tensor

                value = distribute_tensor(
                    value.to(param.device, param.dtype),
                    param.device_mesh,
                    param.placements,
                    src_data_rank=None,  # every process holds the whole tensor: no traffic
                )
            param.copy_(value)


def _inner(optimizer: Any) -> torch.optim.Optimizer:
    """The torch optimizer under accelerate's wrapper."""
    return getattr(optimizer, "optimizer", optimizer)


def _layout(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[list[str]]:
    """The names of each group's parameters of ``optimizer``."""
    names = {id(p): n for n, p in model.named_parameters()}
    return [[names[id(p)] for p in group["params"]] for group in optimizer.param_groups]


def _positions(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The names of the optimizer's parameters, in the order torch numbers them."""
    return [name for group in _layout(model, optimizer) for name in group]


def remember_layout(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Note which parameter each group of ``optimizer`` holds, by name, before DeepSpeed replaces
    the groups' parameters with its flat partitions."""
    optimizer._nlptune_layout = _layout(model, optimizer)  # type: ignore[attr-defined]


def _deepspeed_layout(optimizer: Any) -> tuple[Any, list[list[str]]]:
    """DeepSpeed's wrapped torch optimizer and the layout :func:`remember_layout` noted, with
    every parameter's view of its moments linked (ZeRO links them once, after its first step,
    and a group whose moments did not exist yet stays unlinked; on resume none exist yet: they
    are made, as zeros, as Adam makes them)."""
    zero: Any = _inner(optimizer)  # accelerate's wrapper holds ZeRO's optimizer
    base = zero.optimizer
    for flat in zero.single_partition_of_fp32_groups:  # this process's part of each group
        entry = base.state[flat]
        if "exp_avg" not in entry:
            entry["step"] = torch.zeros((), dtype=torch.float32, device=flat.device)
            entry["exp_avg"] = torch.zeros_like(flat, memory_format=torch.preserve_format)
            entry["exp_avg_sq"] = torch.zeros_like(flat, memory_format=torch.preserve_format)
    zero._hp_optimizer_states_linked = False
    zero._lazy_init_hp_params_optimizer_state()
    return base, base._nlptune_layout


def full_optimizer_state(model: torch.nn.Module, optimizer: Any, accelerator: Any = None) -> Any:
    """The optimizer's state dict in torch's layout, its moments whole: on the main process
    (every process calls this under FSDP or DeepSpeed; the others get ``None``)."""
    inner = _inner(optimizer)
    if is_deepspeed(accelerator):
        return _deepspeed_optimizer_state(model, optimizer, accelerator)
    if not is_sharded(accelerator):
        if accelerator is not None and not accelerator.is_main_process:
            return None
        return inner.state_dict()
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    named: Any = get_optimizer_state_dict(model, inner, options=_options(cpu_offload=True))
    if not accelerator.is_main_process:
        return None
    order = {name: i for i, name in enumerate(_positions(model, inner))}
    groups = [dict(g, params=[order[n] for n in g["params"]]) for g in named["param_groups"]]
    return {"state": {order[n]: s for n, s in named["state"].items()}, "param_groups": groups}


def set_optimizer_state(
    model: torch.nn.Module, optimizer: Any, state: dict[str, Any], accelerator: Any = None
) -> None:
    """Load a state dict in torch's layout, moments whole, into the optimizer (every process,
    each with the same ``state``, under FSDP or DeepSpeed: each keeps its own part)."""
    inner = _inner(optimizer)
    if is_deepspeed(accelerator):
        _set_deepspeed_optimizer_state(model, optimizer, state)
        return
    if not is_sharded(accelerator):
        inner.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    names = _positions(model, inner)
    groups = [dict(g, params=[names[i] for i in g["params"]]) for g in state["param_groups"]]
    named: Any = {
        "state": {names[int(i)]: s for i, s in state["state"].items()},
        "param_groups": groups,
    }
    inner.state.clear()  # moments keyed by the parameters before they were sharded
    set_optimizer_state_dict(model, inner, named, options=_options())


def _deepspeed_optimizer_state(model: torch.nn.Module, optimizer: Any, accelerator: Any) -> Any:
    from deepspeed.utils import safe_get_full_optimizer_state

    base, layout = _deepspeed_layout(optimizer)
    params = dict(model.named_parameters())
    state: dict[int, dict[str, Any]] = {}
    steps = [s["step"] for s in base.state.values() if "step" in s]
    position = 0
    for names in layout:
        for name in names:
            moments = {}
            for key in ("exp_avg", "exp_avg_sq"):  # collective: assembled from every partition
                whole = safe_get_full_optimizer_state(params[name], key)
                if whole is not None:
                    moments[key] = whole.detach().to("cpu").contiguous().clone()
            if moments and steps:
                state[position] = {"step": steps[0].detach().to("cpu").clone(), **moments}
            position += 1
    if not accelerator.is_main_process:
        return None
    groups, start = [], 0
    for group, names in zip(base.param_groups, layout, strict=True):
        settings = {k: v for k, v in group.items() if k != "params"}
        groups.append({**settings, "params": list(range(start, start + len(names)))})
        start += len(names)
    return {"state": state, "param_groups": groups}


def _set_deepspeed_optimizer_state(
    model: torch.nn.Module, optimizer: Any, state: dict[str, Any]
) -> None:
    from deepspeed.utils import safe_set_full_optimizer_state

    base, layout = _deepspeed_layout(optimizer)
    params = dict(model.named_parameters())
    names = [name for group in layout for name in group]
    steps = []
    for position, saved in state["state"].items():
        param = params[names[int(position)]]
        for key in ("exp_avg", "exp_avg_sq"):
            if key in saved:  # this process's part of the whole moment
                safe_set_full_optimizer_state(param, saved[key].to(param.device), key)
        if "step" in saved:
            steps.append(saved["step"])
    if steps:
        for entry in base.state.values():
            if "step" in entry:
                entry["step"] = steps[0].to(entry["step"].device, entry["step"].dtype).clone()


def _reshard(model: torch.nn.Module) -> None:
    """Put every module FSDP wrapped back on its shards (the root stays gathered after a
    forward pass)."""
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()


def mark(model: torch.nn.Module, accelerator: Any) -> None:
    """Tell transformers that FSDP shards ``model``: ``generate`` then keeps every process
    stepping until all are done (each step gathers layers from every process)."""
    if is_sharded(accelerator):
        for module in model.modules():
            # what transformers' own FSDP2 setup sets
            setattr(module, "_is_fsdp_managed_module", True)  # noqa: B010


@contextmanager
def gathered(model: torch.nn.Module, accelerator: Any) -> Iterator[None]:
    """Evaluation with the outermost module's own parameters (embeddings, heads) whole: code
    that calls a submodule directly (``generate`` runs the encoder alone) skips the root's
    forward, which gathers them. The layers gather themselves. Collective under FSDP."""
    from torch.distributed.fsdp import FSDPModule

    if not is_sharded(accelerator) or not isinstance(model, FSDPModule):
        yield
        return
    model.unshard()
    try:
        yield
    finally:
        _reshard(model)


def check_deepspeed(accelerator: Any, batch_size: int, grad_accum: int, strategy: str) -> None:
    """Before ``prepare`` under DeepSpeed: give it the per-process micro-batch it needs
    (accelerate reads it from a data loader, and nlptune batches without one) unless its config
    names one, and refuse what DeepSpeed can't run as nlptune does, each with one line: several
    micro-batches a step (it steps at every backward), a strategy that changes what trains (its
    partitions are fixed at start-up), and ZeRO stage 3 (use FSDP for fully sharded training)."""
    plugin = getattr(accelerator, "deepspeed_plugin", None)
    if plugin is None:
        return
    from nlptune.errors import NlptuneError

    if grad_accum > 1:
        raise NlptuneError(
            f"trainer.grad_accum={grad_accum} under DeepSpeed: DeepSpeed steps the optimizer at "
            "every backward pass; set trainer.grad_accum: 1 (a larger batch: more processes, or "
            "FSDP or DDP with grad_accum)"
        )
    if strategy == "gradual":
        raise NlptuneError(
            "strategy.type=gradual under DeepSpeed: DeepSpeed fixes the parameters that train "
            "when it starts; launch with configs/accelerate/ddp.yaml or fsdp.yaml instead"
        )
    if getattr(plugin, "zero_stage", 2) == 3:
        raise NlptuneError(
            "DeepSpeed ZeRO stage 3 is not supported: for fully sharded training launch with "
            "configs/accelerate/fsdp.yaml, or set zero_stage: 2"
        )
    key = "train_micro_batch_size_per_gpu"
    if plugin.get_value(key) in (None, "auto"):
        plugin.deepspeed_config[key] = max(1, batch_size // accelerator.num_processes)
