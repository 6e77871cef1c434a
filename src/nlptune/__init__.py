"""nlptune: fine-tune pre-trained language models for NLP tasks.

import nlptune
result = nlptune.train("configs/text_classification/minilm_full.yaml")
predictor = nlptune.Predictor.from_dir(result.output_dir)
predictor.predict(["a gripping, funny film"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "Predictor",
    "RunResult",
    "load_config",
    "train",
    "train_stages",
    "validate",
    "validate_stages",
    "__version__",
]

if TYPE_CHECKING:
    from nlptune.api import RunResult, train, train_stages, validate, validate_stages
    from nlptune.config import load_config
    from nlptune.predict import Predictor


def __getattr__(name: str) -> Any:
    # Lazy: `import nlptune` stays fast; torch and transformers load on first use.
    if name in ("train", "train_stages", "validate", "validate_stages", "RunResult"):
        from nlptune import api

        return getattr(api, name)
    if name == "Predictor":
        from nlptune.predict import Predictor

        return Predictor
    if name == "load_config":
        from nlptune.config import load_config

        return load_config
    raise AttributeError(f"module 'nlptune' has no attribute {name!r}")
