"""Resume checkpoints without pickles: tensors in safetensors, everything else in JSON.

A checkpoint folder holds ``model.safetensors`` (the parameters the optimizer holds; the rest
equals the pre-trained weights), ``optimizer.safetensors`` + ``optimizer.json``, ``scheduler.json``,
``rng.safetensors`` and ``state.json``. Folders are replaced atomically (write ``NAME.new``, then
swap), so a crash leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def weights_of(model: torch.nn.Module, names: Iterable[str]) -> dict[str, torch.Tensor]:
    keep = set(names)
    return {n: p.detach().contiguous().clone() for n, p in model.named_parameters() if n in keep}


def save_weights(model: torch.nn.Module, folder: Path, names: Iterable[str]) -> None:
    """The parameters ``names`` of ``model`` (those a run changes) as ``model.safetensors``."""
    save_file(weights_of(model, names), str(folder / "model.safetensors"))


def load_weights(model: torch.nn.Module, folder: Path) -> None:
    state = load_file(str(folder / "model.safetensors"))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def save_checkpoint(
    folder: Path,
    model: torch.nn.Module,
    names: Iterable[str],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
) -> None:
    """Write a full resume checkpoint to ``folder`` (replacing it atomically)."""
    new = folder.with_name(folder.name + ".new")
    shutil.rmtree(new, ignore_errors=True)
    new.mkdir(parents=True)
    save_weights(model, new, names)
    tensors, meta = _split_optimizer(optimizer.state_dict())
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
) -> dict[str, Any]:
    """Restore everything :func:`save_checkpoint` wrote; return the loop state."""
    load_weights(model, folder)
    meta = json.loads((folder / "optimizer.json").read_text())
    optimizer.load_state_dict(
        _join_optimizer(load_file(str(folder / "optimizer.safetensors")), meta)
    )
    scheduler.load_state_dict(json.loads((folder / "scheduler.json").read_text()))
    rng = load_file(str(folder / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    cuda = [rng[k] for k in sorted(k for k in rng if k.startswith("cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    state: dict[str, Any] = json.loads((folder / "state.json").read_text())
    return state


def find_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint at ``folder`` (or its backup from an interrupted swap)."""
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / "state.json").is_file():
            return candidate
    return None


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
