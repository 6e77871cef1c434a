"""Differences between the dependency versions nlptune supports, in one place.

pyproject.toml declares a range for every dependency; both ends are tested (CI runs the suite
with the newest versions and again with every dependency at its floor, constraints/minimum.txt).
Code that needs an API whose name or form changed inside a range asks here instead of testing
versions itself, so the day a floor passes the change, the shim goes and its callers stay.
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["hf_dtype", "transformers_version"]


@cache
def transformers_version() -> tuple[int, int]:
    """The installed transformers' (major, minor)."""
    import transformers

    major, minor = transformers.__version__.split(".")[:2]
    return int(major), int(minor)


def hf_dtype(dtype: Any) -> dict[str, Any]:
    """The keyword that sets the weights' dtype in transformers' ``from_pretrained`` and
    ``from_config``: ``dtype`` from 4.56 on, ``torch_dtype`` before (where ``dtype=`` would reach
    the model's constructor and fail). Use as ``from_pretrained(path, **hf_dtype(torch.float32))``.
    """
    return {"dtype" if transformers_version() >= (4, 56) else "torch_dtype": dtype}
