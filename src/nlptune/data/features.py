"""Tokenized features: columnar numpy arrays, cached on disk by content.

Sequence columns (``input_ids``, ``token_type_ids``) are ragged: stored as one flat array plus
offsets. Other columns (``labels``) hold one row per example. Each item's length (what batching
groups by) is declared by the task that made the features. Cache files are ``.npz`` archives of
plain arrays (no pickles), written atomically; each holds a checksum of its arrays and the key
it was stored under (and, where the caller gives it, its example count), so a damaged entry, or
an entry copied over another key's file, is rebuilt, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nlptune.errors import NlptuneError

logger = logging.getLogger("nlptune")

FEATURE_VERSION = 5  # 4: entries carry a checksum; 5: and their key and example count


@dataclass
class Features:
    """Features of N items. ``sequences[name][i]`` is item i's model-input token column (1-D,
    padded by collate); ``values[name][i]`` a per-item model input such as a label; ``meta`` holds
    ragged per-item arrays the model never sees (offsets, the example an item came from)."""

    sequences: dict[str, list[np.ndarray]]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, list[np.ndarray]] = field(default_factory=dict)
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # whether the feature cache holds these features (set by :func:`cached`)
    stored: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        n = len(next(iter(self.sequences.values()))) if self.sequences else 0
        if len(self.lengths) != n:
            raise ValueError(f"Features: {len(self.lengths)} lengths for {n} items")

    def __len__(self) -> int:
        return len(self.lengths)

    def save(self, path: Path, stamp: dict[str, Any] | None = None) -> None:
        """Write the features to ``path``; ``stamp`` (JSON data: the cache key, the example
        count) is stored with them, under the checksum, for :meth:`load` to compare."""
        arrays: dict[str, np.ndarray] = {}
        for kind, group in (("seq", self.sequences), ("meta", self.meta)):
            for name, seqs in group.items():
                lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
                arrays[f"{kind}.{name}"] = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
                arrays[f"len.{kind}.{name}"] = lengths
        for name, value in self.values.items():
            arrays[f"val.{name}"] = value
        arrays["lengths"] = self.lengths
        if stamp is not None:
            arrays["stamp"] = np.frombuffer(json.dumps(stamp, sort_keys=True).encode(), np.uint8)
        arrays["checksum"] = np.frombuffer(_checksum(arrays), dtype=np.uint8)
        atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path, stamp: dict[str, Any] | None = None) -> Features:
        """Features saved by :meth:`save`; ValueError when the file's checksum does not match
        (a damaged or foreign file is never read as features) or, given ``stamp``, when the
        file was saved with another (an entry of another key or other data)."""
        with np.load(path, allow_pickle=False) as z:
            arrays = {key: z[key] for key in z.files}
        stored = arrays.pop("checksum", None)
        if stored is None or stored.tobytes() != _checksum(arrays):
            raise ValueError("its checksum does not match its content")
        saved = arrays.pop("stamp", None)
        if stamp is not None:
            _check_stamp(json.loads(saved.tobytes()) if saved is not None else {}, stamp)
        groups: dict[str, dict[str, list[np.ndarray]]] = {"seq": {}, "meta": {}}
        values: dict[str, np.ndarray] = {}
        for key, flat in arrays.items():
            kind, _, name = key.partition(".")
            if kind in groups:
                lengths = arrays[f"len.{key}"]
                groups[kind][name] = np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
            elif kind == "val":
                values[name] = flat
        return cls(groups["seq"], values, groups["meta"], arrays["lengths"])


def _check_stamp(found: Any, stamp: dict[str, Any]) -> None:
    """ValueError unless an entry's stored stamp is ``stamp``."""
    found = found if isinstance(found, dict) else {}
    if found.get("key") != stamp.get("key"):
        raise ValueError("it was stored under another key (a file copied or renamed)")
    if found.get("examples") != stamp.get("examples"):
        raise ValueError(
            f"it was made from {found.get('examples')} examples, not {stamp.get('examples')}"
        )


def _checksum(arrays: dict[str, np.ndarray]) -> bytes:
    """sha256 over every array's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{value.dtype.str}|{value.shape}|".encode())
        h.update(value.tobytes())
    return h.digest()


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through a temporary file and ``os.replace``: readers never see half a file."""
    if path.exists() and not path.is_symlink() and not path.is_file():
        raise NlptuneError(
            f"{path} is not a regular file (a folder, FIFO, device or socket); nlptune never "
            "replaces one: name a file"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, encoding=None if "b" in mode else "utf-8") as f:
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


def source_digest(path: str) -> str | None:
    """sha256 of a data file or folder; for a file prefix (parallel text: ``train`` for
    ``train.en`` + ``train.de``), of every ``prefix.*`` file; None when nothing is on disk (a
    hub id)."""
    p = Path(path)
    if p.exists():
        return file_digest(p)
    sides = (
        sorted(f for f in p.parent.glob(f"{p.name}.*") if f.is_file()) if p.parent.is_dir() else []
    )
    return ",".join(f"{f.name}:{file_digest(f)}" for f in sides) or None


def cache_dir(configured: str | None) -> Path:
    if configured:
        return Path(configured)
    env = os.environ.get("NLPTUNE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "nlptune"


def cached(
    directory: Path,
    key_parts: Iterable[Any],
    build: Callable[[], Features],
    examples: int | None = None,
) -> tuple[Features, bool]:
    """Return the features stored under the digest of ``key_parts``, building them on a miss.
    An entry holds its full key (and ``examples``, the number of examples it was made from,
    where given) and is used only when they match.

    Returns:
        ``(features, hit)``; ``hit`` tells whether the cache answered, ``features.stored``
        whether the cache holds them now.
    """
    digest = hashlib.sha256(
        json.dumps([FEATURE_VERSION, *key_parts], sort_keys=True, default=str).encode()
    ).hexdigest()
    key = digest[:32]
    stamp = {"key": digest, "examples": examples}
    path = directory / "features" / f"{key}.npz"
    if path.is_file():
        try:
            features = Features.load(path, stamp)
            features.stored = True
            return features, True
        except Exception as err:  # noqa: BLE001 (any damage: bad zip, truncation, checksum)
            logger.warning(
                "warning: feature cache entry %s is damaged (%s); rebuilding it",
                path,
                str(err).splitlines()[0] if str(err) else type(err).__name__,
            )
            with contextlib.suppress(OSError):
                path.unlink()
    features = build()
    try:
        features.save(path, stamp)
        features.stored = True
    except (OSError, NlptuneError) as err:  # a read-only or full cache: train without it
        logger.warning("warning: can't write the feature cache %s (%s); not cached", path, err)
    return features, False


def sequence_lengths(column: list[np.ndarray]) -> np.ndarray:
    """The length of every item of a sequence column, for ``Features.lengths``."""
    return np.fromiter((len(x) for x in column), dtype=np.int64, count=len(column))


def collect(rows: Iterable[tuple[int, np.ndarray]], n: int) -> np.ndarray:
    """Stack streamed ``(index, row)`` pairs into an (N, ...) float32 array in index order."""
    out: np.ndarray | None = None
    for i, row in rows:
        if out is None:
            out = np.zeros((n, *row.shape), dtype=np.float32)
        out[i] = row
    if out is None:
        raise ValueError("no rows to collect")
    return out
