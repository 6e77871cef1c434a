"""Resume checkpoints without pickles: tensors in safetensors, everything else in JSON.

A checkpoint folder holds ``model.safetensors`` (the parameters the optimizer holds; the rest
equals the pre-trained weights), ``optimizer.safetensors`` + ``optimizer.json``, ``scheduler.json``,
``rng.safetensors`` and ``state.json``. Folders are replaced atomically (write ``NAME.new``, then
swap), so a crash leaves the previous checkpoint intact. A checkpoint is read whole and checked
(every file parses, every tensor fits the model) before anything of it is applied, so a damaged
one raises :class:`DamagedCheckpoint` and leaves model, optimizer and RNG as they were.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from nlptune.errors import NlptuneError, first_line
from nlptune.training import sharding


class DamagedCheckpoint(NlptuneError):
    """A checkpoint's files are missing, truncated or do not fit the model."""


def save_weights(weights: dict[str, torch.Tensor], folder: Path) -> None:
    """Whole parameters (:func:`sharding.full_weights`: those a run changes) as
    ``model.safetensors``."""
    save_file(weights, str(folder / "model.safetensors"))


def load_weights(model: torch.nn.Module, folder: Path, accelerator: Any = None) -> None:
    """Copy ``folder``'s saved parameters into ``model``; DamagedCheckpoint when the file can't
    be read or does not fit the model (nothing is copied then)."""
    sharding.set_weights(model, _read_weights(folder, model), accelerator)


def check_weights(model: torch.nn.Module, folder: Path) -> None:
    """DamagedCheckpoint unless ``folder``'s saved parameters read and fit ``model``."""
    _read_weights(folder, model)


def _read_weights(folder: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``folder/model.safetensors``, checked against ``model``'s parameter names and shapes."""
    path = folder / "model.safetensors"
    state = _read(path, lambda: load_file(str(path)))
    params = dict(model.named_parameters())
    for name, value in state.items():
        if name not in params or params[name].shape != value.shape:
            raise DamagedCheckpoint(f"{path.name}: the tensor {name} does not fit the model")
    return state


def _read(path: Path, read: Callable[[], Any]) -> Any:
    """``read()`` of one checkpoint file; DamagedCheckpoint (naming the file) when it fails."""
    try:
        return read()
    except Exception as err:  # noqa: BLE001 (missing, truncated, not JSON, not safetensors)
        raise DamagedCheckpoint(f"{path.name}: {first_line(err)}") from None


def _read_json(path: Path) -> Any:
    return _read(path, lambda: json.loads(path.read_text(encoding="utf-8")))


def save_checkpoint(
    folder: Path,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any],
    scheduler: Any,
    state: dict[str, Any],
) -> None:
    """Write a full resume checkpoint to ``folder`` (replacing it atomically): whole
    ``weights`` and optimizer state (:mod:`sharding` gathers them under FSDP and DeepSpeed)."""
    new = folder.with_name(folder.name + ".new")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    save_weights(weights, new)
    tensors, meta = _split_optimizer(optimizer_state)
    save_file(tensors, str(new / "optimizer.safetensors"))
    (new / "optimizer.json").write_text(json.dumps(meta))
    (new / "scheduler.json").write_text(json.dumps(_plain(scheduler.state_dict())))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            rng[f"cuda.{i}"] = s
    save_file(rng, str(new / "rng.safetensors"))
    (new / "state.json").write_text(json.dumps(state, indent=1))
    _swap(new, folder)


def load_checkpoint(
    folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Restore everything :func:`save_checkpoint` wrote into an unsharded model and optimizer;
    return the loop state and the optimizer state (FSDP and DeepSpeed load that again once they
    have split the parameters or groups). Every file is read and checked first:
    DamagedCheckpoint (and nothing restored) when one is missing, truncated or does not fit."""
    state = _read_json(folder / "state.json")
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise DamagedCheckpoint("state.json: not a loop state")
    weights = _read_weights(folder, model)
    meta = _read_json(folder / "optimizer.json")
    tensors = _read(
        folder / "optimizer.safetensors", lambda: load_file(str(folder / "optimizer.safetensors"))
    )
    schedule = _read_json(folder / "scheduler.json")
    rng = _read(folder / "rng.safetensors", lambda: load_file(str(folder / "rng.safetensors")))
    if "torch" not in rng or not isinstance(schedule, dict):
        raise DamagedCheckpoint("rng.safetensors or scheduler.json: not what a checkpoint holds")
    _check_moments(tensors, optimizer)
    # the optimizer checks its groups before it changes anything: restored first
    moments = _read(folder / "optimizer.json", lambda: _join_optimizer(tensors, meta))
    _read(folder / "optimizer.json", lambda: optimizer.load_state_dict(moments))
    sharding.set_weights(model, weights)
    scheduler.load_state_dict(schedule)
    torch.set_rng_state(rng["torch"])
    cuda = [rng[k] for k in sorted(k for k in rng if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    return state, moments


def _check_moments(tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
    """Every saved optimizer tensor that is not a scalar has its parameter's shape (the
    optimizer itself only checks the number of groups and parameters)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for key, value in tensors.items():
        pid, _, _ = key.partition(".")
        fits = pid.isdigit() and int(pid) < len(params)
        if not fits or (value.dim() > 0 and value.shape != params[int(pid)].shape):
            raise DamagedCheckpoint(f"optimizer.safetensors: {key} does not fit the optimizer")


def checkpoint_step(folder: Path) -> int | None:
    """The step a checkpoint was written at (None when its ``state.json`` can't say)."""
    try:
        step = json.loads((folder / "state.json").read_text(encoding="utf-8")).get("step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def candidates(folder: Path) -> list[Path]:
    """The checkpoints at ``folder``, newest first: the folder itself and the backup an
    interrupted swap left (``NAME.old``), those with a ``state.json``."""
    both = (folder, folder.with_name(folder.name + ".old"))
    return [c for c in both if (c / "state.json").is_file()]


def find_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint at ``folder`` (or its backup from an interrupted swap)."""
    found = candidates(folder)
    return found[0] if found else None


def _swap(new: Path, folder: Path) -> None:
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    new.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _split_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{key}"] = value.contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"scalars": scalars, "param_groups": _plain(sd["param_groups"])}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, entry in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return None  # callables (lr lambdas) are rebuilt from the config, not stored
