"""LoRA adapters (peft) on a transformers encoder or encoder-decoder, and the artefact that holds
them without the base model's weights.

The ``lora`` strategy adds adapters with :func:`inject`; the model saved from it is either merged
(:func:`merge`: the standard transformers model, nothing of peft left) or this folder:

    model/
      adapter_config.json            peft's config (``base_model_name_or_path``: backbone.path)
      adapter_model.safetensors      the adapters, as ``PeftModel.save_pretrained`` names them
      nlptune_heads.safetensors      the task heads, and encoder weights trained in full (new)
      nlptune_lora.json              LoRA settings, and each base model's identity
      tokenizer files

A base model's identity is its ``backbone.path``, the folder it loaded from, and the sha256 of
the weight files there; :func:`find_bases` refuses a base that is missing or holds other weights.
peft is imported only here, and only when adapters are added or loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from nlptune.backbones.hf_paths import quiet_transformers, resolve_model_path
from nlptune.errors import ConfigError, ModelError

INSTALL = "pip install 'nlptune[lora]'"
INFO = "nlptune_lora.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
OWN_WEIGHTS = "nlptune_heads.safetensors"
NAME = "default"  # peft's adapter name
PEFT_PREFIX = "base_model.model."  # what PeftModel.save_pretrained puts before a module name

# model_type -> the linear layers LoRA adapts by default (the attention's query and value, as in
# Hu et al. 2021 and peft's own table); an encoder-decoder built from encoders uses its encoder's
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        ("bert", "roberta", "xlm-roberta", "camembert", "electra", "ernie"), ("query", "value")
    ),
    "mpnet": ("q", "v"),
    "deberta": ("in_proj",),
    "deberta-v2": ("query_proj", "value_proj"),
    "distilbert": ("q_lin", "v_lin"),
    **dict.fromkeys(("t5", "mt5", "umt5", "longt5"), ("q", "v")),
    **dict.fromkeys(
        ("bart", "mbart", "marian", "pegasus", "m2m_100", "nllb-moe", "blenderbot"),
        ("q_proj", "v_proj"),
    ),
}


@dataclass
class Adapter:
    """LoRA settings of an encoder's adapters; ``names`` (its adapter parameters) and ``full``
    (its parameters trained in full: newly initialised ones) are relative to the encoder."""

    r: int
    alpha: float
    dropout: float
    targets: list[str]
    full: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def peft_missing() -> bool:
    """True when peft can't be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("peft") is None
    except ValueError:  # sys.modules["peft"] is None
        return True


def _peft(what: str) -> Any:
    if torch.distributed.is_available():  # recent peft reads torch.distributed.tensor.DTensor
        with contextlib.suppress(ImportError):  # without importing it (transformers 5 does)
            importlib.import_module("torch.distributed.tensor")
    try:
        import peft
    except ImportError:
        raise ModelError(f"{what} needs peft, which is not installed: {INSTALL}") from None
    return peft


def model_type(config: Any) -> str:
    """The architecture whose layer names LoRA targets (an encoder-decoder built from two
    encoders: its encoder's)."""
    inner = getattr(config, "encoder", None)
    return str(getattr(inner, "model_type", None) or config.model_type)


def linear_names(module: nn.Module) -> list[str]:
    """Every ``nn.Linear`` of ``module``, by its full name."""
    return [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]


def skeleton_linears(build: Callable[[], nn.Module]) -> list[str]:
    """:func:`linear_names` of the model ``build()`` makes, built without weights (no memory,
    no initialisation): what a config is checked against before weights load."""
    from accelerate import init_empty_weights

    with init_empty_weights(), quiet_transformers():
        return linear_names(build())


def resolve_targets(
    wanted: Iterable[str] | None, kind: str, linear: list[str], key: str = "strategy.target_modules"
) -> list[str]:
    """The module names LoRA adapts: ``wanted``, else the architecture's default. ConfigError
    naming the model's linear layers when one matches none of them (as peft matches: the whole
    name or its dotted tail)."""
    leaves = sorted({name.rsplit(".", 1)[-1] for name in linear})
    if wanted is None:
        if kind not in DEFAULT_TARGETS:
            raise ConfigError(
                f"{key}: nlptune has no default for a {kind} model; name the linear layers to "
                f"adapt, e.g. {key}=[{', '.join(leaves[:2])}] (its linear layers: "
                f"{', '.join(leaves)})"
            )
        wanted = DEFAULT_TARGETS[kind]
    targets = list(dict.fromkeys(wanted))
    for target in targets:
        if not any(name == target or name.endswith(f".{target}") for name in linear):
            raise ConfigError(
                f"{key}: '{target}' is no linear layer of this {kind} model; its linear layers "
                f"are: {', '.join(leaves)}"
            )
    return targets


def inject(encoder: Any, adapter: Adapter, new: set[str] | None = None) -> list[str]:
    """Add LoRA adapters to ``encoder.transformer`` in place and set ``encoder.adapter``.
    ``new``: the encoder's newly initialised parameters (before the adapters were added),
    recorded in ``adapter.full``. Returns the adapter parameters' names (relative to the
    encoder)."""
    peft = _peft("strategy.type=lora")
    transformer = encoder.transformer
    before = {id(p) for p in encoder.parameters()}
    fresh = {id(p) for n, p in encoder.named_parameters() if n in (new or set())}
    resolve_targets(adapter.targets, model_type(transformer.config), linear_names(transformer))
    with quiet_transformers():
        peft.inject_adapter_in_model(_config(peft, adapter), transformer, adapter_name=NAME)
    adapter.names = [n for n, p in encoder.named_parameters() if id(p) not in before]
    if new is not None:
        adapter.full = [n for n, p in encoder.named_parameters() if id(p) in fresh]
    encoder.adapter = adapter
    return adapter.names


def _config(peft: Any, adapter: Adapter, base: str | None = None) -> Any:
    alpha = int(adapter.alpha) if float(adapter.alpha).is_integer() else adapter.alpha
    return peft.LoraConfig(
        r=adapter.r,
        lora_alpha=alpha,
        lora_dropout=adapter.dropout,
        target_modules=list(adapter.targets),
        bias="none",
        base_model_name_or_path=base,
    )


def merge(encoder: Any) -> None:
    """Fold the adapters into the weights they adapt and remove them: ``encoder.transformer``
    is a plain transformers model again. Each adapted weight is copied first, so a weight two
    layers share (a decoder tied to its encoder) takes each layer's own update."""
    from peft.tuners.lora import LoraLayer

    transformer = encoder.transformer
    for name, module in list(transformer.named_modules()):
        if not isinstance(module, LoraLayer):
            continue
        base: Any = module.get_base_layer()
        base.weight = nn.Parameter(base.weight.detach().clone(), requires_grad=False)
        module.merge()
        parent, _, child = name.rpartition(".")
        setattr(transformer.get_submodule(parent) if parent else transformer, child, base)
    with contextlib.suppress(AttributeError):
        del transformer.peft_config
    encoder.adapter = None


def _peft_name(name: str) -> str:
    """A parameter's name as peft saves it: without the adapter's name."""
    return PEFT_PREFIX + re.sub(rf"\.(lora_[A-Za-z_]+)\.{NAME}(?=\.|$)", r".\1", name)


def _adapter_keys(encoder: Any) -> dict[str, str]:
    """peft's file key -> the encoder's parameter name, for every adapter parameter."""
    params = dict(encoder.named_parameters())
    inner = {id(p): n for n, p in encoder.transformer.named_parameters()}
    return {_peft_name(inner[id(params[n])]): n for n in encoder.adapter.names}


def _own_state(model: Any) -> dict[str, torch.Tensor]:
    """What an adapter artefact stores besides the adapters: every tensor of the model that is
    not the encoder's (heads), and the encoder parameters trained in full."""
    encoder = model.encoder
    shared = {t.data_ptr() for t in (*encoder.parameters(), *encoder.buffers())}
    full = {f"encoder.{n}" for n in encoder.adapter.full}
    return {
        k: v.detach().clone().contiguous()
        for k, v in model.state_dict().items()
        if k in full or (not k.startswith("encoder.") and v.data_ptr() not in shared)
    }


def save(model: Any, folder: Path, bases: list[dict[str, str]]) -> None:
    """Write ``model``'s adapters, heads and base identities (not its text encoder)."""
    encoder = model.encoder
    adapter: Adapter = encoder.adapter
    peft = _peft("saving LoRA adapters")
    params = dict(encoder.named_parameters())
    tensors = {k: params[n].detach().contiguous() for k, n in _adapter_keys(encoder).items()}
    save_file(tensors, str(folder / ADAPTER_WEIGHTS))
    _config(peft, adapter, bases[0]["path"]).save_pretrained(str(folder))
    save_file(_own_state(model), str(folder / OWN_WEIGHTS))
    settings = {k: v for k, v in asdict(adapter).items() if k != "names"}
    info = {"format": 1, "lora": settings, "bases": bases}
    (folder / INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def is_adapter(folder: Path) -> bool:
    """Whether ``folder`` (a run's ``model/``) holds LoRA adapters rather than a whole model."""
    return (folder / INFO).is_file()


def refuse_adapters(path: str, key: str) -> None:
    """ModelError when ``path`` (a backbone path) is an unmerged LoRA run's ``model/``: it holds
    no whole model to start from."""
    if is_adapter(Path(path).expanduser()):
        raise ModelError(
            f"{key} {path} holds LoRA adapters, not a whole model; train that run with "
            "strategy.merge: true to start from it"
        )


def _info(folder: Path) -> dict[str, Any]:
    try:
        info = json.loads((folder / INFO).read_text(encoding="utf-8"))
        fits = set(info["lora"]) >= {"r", "alpha", "dropout", "targets", "full"} and all(
            set(base) >= {"key", "path", "folder", "sha256"} for base in info["bases"]
        )
    except (OSError, ValueError, KeyError, TypeError):
        fits = False
    if not fits:
        raise ModelError(
            f"{folder / INFO}: not nlptune's LoRA record; the run folder is damaged: train it again"
        )
    return dict(info)


def restore(model: Any, folder: Path) -> None:
    """Add the saved adapters to ``model`` (a TaskModel on the base model) and load them, its
    heads and its weights trained in full."""
    _peft(f"{folder.parent}: model/ holds LoRA adapters, and loading them")
    settings = _info(folder)["lora"]
    adapter = Adapter(**{k: settings[k] for k in ("r", "alpha", "dropout", "targets", "full")})
    inject(model.encoder, adapter)
    keys = _adapter_keys(model.encoder)
    tensors = load_file(str(folder / ADAPTER_WEIGHTS))
    own = load_file(str(folder / OWN_WEIGHTS))
    expected = set(_own_state(model))
    if set(tensors) != set(keys) or set(own) != expected:
        wrong = sorted((set(tensors) ^ set(keys)) | (set(own) ^ expected))
        raise ModelError(
            f"{folder}: the saved adapters or heads do not fit the model ({', '.join(wrong[:3])}"
            "); the run folder is damaged or was changed: train it again"
        )
    state = {f"encoder.{n}": tensors[k] for k, n in keys.items()} | own
    model.load_state_dict(state, strict=False)  # the rest: the base model's, as loaded


def weights_sha256(folder: Path) -> str:
    """sha256 over the names and bytes of a model folder's weight files (safetensors, bin and
    their shard indexes), in name order."""
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and (p.suffix in (".safetensors", ".bin") or p.name.endswith(".index.json"))
    )
    for path in files:
        digest.update(path.name.encode("utf-8") + b"\0")
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
    return digest.hexdigest()


def base_folder(path: str) -> Path | None:
    """The local folder that ``backbone.path`` loads from (a folder, an installed package, the
    hub cache); None when there is none."""
    try:
        resolved = resolve_model_path(path)
    except ModelError:
        return None
    if Path(resolved).is_dir():
        return Path(resolved).resolve()
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(resolved, "config.json")
    return Path(cached).parent if isinstance(cached, str) else None


def identity(key: str, path: str) -> dict[str, str]:
    """A base model's identity: its config key, ``path``, folder and weights' sha256."""
    folder = base_folder(path)
    if folder is None:
        raise ModelError(f"{key} {path}: can't find the model's folder to record it")
    return {"key": key, "path": path, "folder": str(folder), "sha256": weights_sha256(folder)}


def find_bases(folder: Path) -> dict[str, Path]:
    """The folder of each base model an adapter artefact was trained on, by config key, each
    checked to hold the same weights. ModelError when one is missing or different."""
    run = folder.parent
    out = {}
    for base in _info(folder)["bases"]:
        where = Path(base["folder"])
        found = where if where.is_dir() else base_folder(base["path"])
        merged = "or train again with strategy.merge: true (a model that needs no base)"
        if found is None:
            raise ModelError(
                f"{run}: model/ holds LoRA adapters for the base model {base['path']} "
                f"({base['key']}), which is not found (it was at {where}); put it back there, "
                f"{merged}"
            )
        digest = weights_sha256(found)
        if digest != base["sha256"]:
            raise ModelError(
                f"{run}: model/ holds LoRA adapters for the base model {base['path']} "
                f"({base['key']}, weights sha256 {base['sha256'][:12]}), but {found} holds "
                f"other weights (sha256 {digest[:12]}); restore the base model it was trained "
                f"on, {merged}"
            )
        out[base["key"]] = found
    return out
