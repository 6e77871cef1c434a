"""Where the transformers model that ``backbone.path`` names is: folder, package or hub cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nlptune.backbones.packaged import PACKAGE_NAMES, PACKAGED_MODELS, resolve_packaged
from nlptune.errors import ModelError


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
    # a hub id is "name" or "owner/name"; anything else names a folder
    looks_local = (
        path.startswith((".", "/", "~"))
        or path.count("/") > 1
        or (os.sep != "/" and os.sep in path)
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
    unreachable = _hub_unreachable()
    if unreachable:  # fail now, not after transformers' retries
        raise ModelError(
            f"backbone.path {path}: not a local folder, not a packaged model and not in the hub "
            f"cache, and the hub can't be reached ({unreachable}); download it where there is "
            f"network (`huggingface-cli download {path}`, then copy ~/.cache/huggingface here) "
            "or point backbone.path to a local folder"
        )
    return path


# what a tokenizer reads its vocabulary from: a fast tokenizer, WordPiece, BPE (GPT-2, RoBERTa,
# BART: vocab.json + merges.txt; XLM: vocab + bpe codes), sentencepiece (spiece.model,
# sentencepiece.bpe.model, spm.model, tokenizer.model; Marian's source.spm), tiktoken
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "*.model",
    "*.spm",
    "*.tiktoken",
    "vocab.*",
    "*vocab*.txt",
    "bpe.codes",
)
# tokenizers that need no file (bytes or characters are the vocabulary)
NO_FILE_TOKENIZERS = {"ByT5Tokenizer", "CanineTokenizer", "PerceiverTokenizer"}
NO_FILE_MODELS = {"canine", "perceiver"}


def check_tokenizer_files(folder: Path, what: str) -> None:
    """Refuse a model folder without tokenizer files: transformers then builds a tokenizer with
    an empty vocabulary that reads every word as unknown, silently. (Not part of
    :func:`resolve_model_path`: a folder of a config alone is enough to check architectures.)
    ``what`` names the folder in the message (``backbone.path X``)."""
    if any(next(folder.glob(pattern), None) is not None for pattern in TOKENIZER_FILES):
        return
    if json_key(folder / "tokenizer_config.json", "tokenizer_class") in NO_FILE_TOKENIZERS:
        return
    if json_key(folder / "config.json", "model_type") in NO_FILE_MODELS:
        return
    raise ModelError(
        f"{what}: the folder has no tokenizer files (tokenizer.json, vocab.txt, vocab.json + "
        "merges.txt, or a sentencepiece .model), so every word would read as unknown; copy "
        "the model's tokenizer files into it"
    )


def json_key(path: Path, key: str) -> Any:
    """``key`` of a JSON object file (None when the file is missing, not JSON or no object)."""
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get(key) if isinstance(data, dict) else None


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the Hugging Face hub can't be reached (a failed name lookup or connection within
    ``timeout`` seconds), or None when it can, or when a proxy decides (not probed)."""
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        return f"{host}:{port}: {err.strerror or err}"
    return None


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading reports and progress bars (nlptune reports what matters)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:  # as it was: an enclosing quiet_transformers() stays quiet
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_saved(auto_class: Any, folder: Path) -> Any:
    """A trained run's ``model/`` as ``auto_class`` in fp32: safetensors only (a folder that
    holds only a pickle is refused, never unpickled), and every weight present (a missing one
    would be initialised at random and predict silently wrong)."""
    import torch

    from nlptune.compat import hf_dtype

    model, info = auto_class.from_pretrained(
        folder, **hf_dtype(torch.float32), use_safetensors=True, output_loading_info=True
    )
    missing = [str(k if isinstance(k, str) else k[0]) for k in info.get("missing_keys", ())]
    missing = [k for k in missing if "pooler." not in k]  # an encoder saved without its pooler
    if missing:
        raise ModelError(
            f"{folder}: the saved weights lack {len(missing)} of the model's tensors "
            f"({', '.join(missing[:3])}); the run folder is damaged or was changed: train it again"
        )
    return model


# architectures whose learned positions start after the padding index (RoBERTa's +2)
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "mpnet", "longformer", "bart", "mbart"}


def check_max_length(path: str, config: Any, max_length: int) -> None:
    """Refuse a ``backbone.max_length`` beyond the model's learned position embeddings (a
    longer input would index past them inside the model, at the first long batch)."""
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return  # relative positions (T5): no fixed limit
    usable = positions - 2 if config.model_type in _OFFSET_POSITIONS else positions
    if max_length > usable:
        raise ModelError(
            f"backbone.max_length={max_length} is more than the {usable} positions "
            f"{path} has ({config.model_type}); set backbone.max_length to {usable} or less"
        )
