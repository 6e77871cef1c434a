"""Tokenized features: columnar numpy arrays, cached on disk by content.

Sequence columns (``input_ids``, ``token_type_ids``) are ragged: stored as one flat array plus
offsets. Other columns (``labels``) hold one row per example. Cache files are ``.npz`` archives of
plain arrays (no pickles), written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FEATURE_VERSION = 2


@dataclass
class Features:
    """Features of N items. ``sequences[name][i]`` is item i's model-input token column (1-D,
    padded by collate); ``values[name][i]`` a per-item model input such as a label; ``meta`` holds
    ragged per-item arrays the model never sees (offsets, the example an item came from)."""

    sequences: dict[str, list[np.ndarray]]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.sequences.values())))

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.sequences["input_ids"]), dtype=np.int64)

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        for kind, group in (("seq", self.sequences), ("meta", self.meta)):
            for name, seqs in group.items():
                lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
                arrays[f"{kind}.{name}"] = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
                arrays[f"len.{kind}.{name}"] = lengths
        for name, value in self.values.items():
            arrays[f"val.{name}"] = value
        atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> Features:
        with np.load(path, allow_pickle=False) as z:
            groups: dict[str, dict[str, list[np.ndarray]]] = {"seq": {}, "meta": {}}
            values: dict[str, np.ndarray] = {}
            for key in z.files:
                kind, name = key.split(".", 1)
                if kind in groups:
                    flat, lengths = z[key], z[f"len.{key}"]
                    split = np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
                    groups[kind][name] = split
                elif kind == "val":
                    values[name] = z[key]
        return cls(groups["seq"], values, groups["meta"])


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through a temporary file and ``os.replace``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode) as f:
            write(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def file_digest(path: str | Path) -> str:
    """sha256 of a file (or of every file under a folder, in sorted order)."""
    h = hashlib.sha256()
    p = Path(path)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else "").encode())
        with open(f, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A digest of everything that changes how ``tokenizer`` splits text."""
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    h.update(type(tokenizer).__name__.encode())
    return h.hexdigest()


def cache_dir(configured: str | None) -> Path:
    if configured:
        return Path(configured)
    env = os.environ.get("NLPTUNE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "nlptune"


def cached(
    directory: Path, key_parts: Iterable[Any], build: Callable[[], Features]
) -> tuple[Features, bool]:
    """Return the features stored under the digest of ``key_parts``, building them on a miss.

    Returns:
        ``(features, hit)``; ``hit`` tells whether the cache answered.
    """
    key = hashlib.sha256(
        json.dumps([FEATURE_VERSION, *key_parts], sort_keys=True, default=str).encode()
    ).hexdigest()[:32]
    path = directory / "features" / f"{key}.npz"
    if path.is_file():
        try:
            return Features.load(path), True
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a damaged cache entry is rebuilt
    features = build()
    features.save(path)
    return features, False
