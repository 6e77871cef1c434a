"""Frozen-encoder caching: run the encoder once, then train the heads on stored states.

A head declares what it reads: the first token's state (sentence classification) or every
token's (tagging, word senses). :func:`compute_states` runs the frozen encoder over a split once
and keeps exactly that; :class:`CachedEncoder` is an encoder that answers a batch with the stored
states of its items (by the batch's ``index``), so the unchanged heads train on them.

Every token's states of many long windows (extractive QA: ~380 tokens x hidden size per window)
do not fit in memory: :func:`write_states` stores them in a file as bfloat16 bits and
:class:`DiskStates` reads a batch's rows from it through a memory map (only those rows come into
memory, as float32), so epochs after the states were computed run the head alone.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nlptune.data.features import Features
from nlptune.training.evaluate import stream_features


class StateCache:
    """Stored encoder states of one split: (N, H) first-token states, or per-item (T_i, H)."""

    def __init__(self, states: torch.Tensor | list[torch.Tensor]) -> None:
        self.states = states
        self.first = isinstance(states, torch.Tensor)

    def batch(self, indices: torch.Tensor, width: int | None = None) -> torch.Tensor:
        """States of a batch: (B, 1, H), or (B, T, H) zero-padded to the longest item (or to
        ``width``, the batch's padded width, when that is wider)."""
        if isinstance(self.states, torch.Tensor):
            return self.states[indices.to(self.states.device)][:, None, :]
        rows = [self.states[i] for i in indices.tolist()]
        states = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)  # (B, T, H)
        if width is not None and width > states.shape[1]:
            states = nn.functional.pad(states, (0, 0, 0, width - states.shape[1]))
        return states


class CachedEncoder(nn.Module):
    """An encoder with no parameters that returns stored states; ``split`` picks the cache."""

    def __init__(self, caches: Mapping[str, StateCache], hidden_size: int) -> None:
        super().__init__()
        self.caches, self.hidden_size, self.split = dict(caches), hidden_size, "train"

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        ids = batch.get("input_ids")  # states as wide as the batch (trainer.pad_to_multiple_of)
        return self.caches[self.split].batch(
            batch["index"], None if ids is None else int(ids.shape[1])
        )

    def layer_groups(self) -> list[Any]:
        return []

    def embedding_parameters(self) -> list[str]:
        return []


def compute_states(
    encoder: nn.Module,
    features: Features,
    first: bool,
    pad_id: int,
    *,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[Any]],
    accelerator: Any = None,
) -> StateCache:
    """Run the frozen ``encoder`` once over ``features`` and keep its states on the device."""
    encoder.eval()

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        states = encoder(batch)  # (B, T, H)
        return states[:, 0] if first else states

    rows = stream_features(
        forward,
        features,
        pad_id,
        batch_size=batch_size,
        device=device,
        autocast=autocast,
        accelerator=accelerator,
    )
    lengths = features.lengths
    kept: list[torch.Tensor | None] = [None] * len(features)
    for i, row in rows:
        kept[i] = torch.from_numpy(row if first else row[: lengths[i]])
    done = [r for r in kept if r is not None]
    if first:
        return StateCache(torch.stack(done).to(device))
    return StateCache([r.to(device) for r in done])


class DiskStates:
    """Every token's states of one split, stored in ``path`` as bfloat16 bits (int16, rows of
    ``hidden``) and read through a read-only memory map: item i's rows are
    ``offsets[i]:offsets[i + 1]``. A batch copies its items' rows out, zero-padded, as float32;
    the pages it read are then dropped from this process (they stay in the OS page cache), so
    the resident memory does not grow with the file."""

    first = False

    def __init__(self, path: Path, lengths: np.ndarray, hidden: int) -> None:
        self.path, self.hidden = Path(path), hidden
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.offsets = _row_offsets(self.lengths)
        expected = int(self.offsets[-1]) * hidden * 2
        self._file = open(self.path, "rb")  # noqa: SIM115 (closed by close())
        size = os.fstat(self._file.fileno()).st_size
        if size != expected:
            self._file.close()
            raise ValueError(f"{self.path}: {size} bytes, expected {expected}")
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        self.states: np.ndarray | None = (
            np.frombuffer(self._map, dtype=np.int16).reshape(-1, hidden)
            if self._map is not None
            else np.zeros((0, hidden), dtype=np.int16)
        )

    def batch(self, indices: torch.Tensor, width: int | None = None) -> torch.Tensor:
        """States of a batch: (B, T, H) float32, T the longest item (or ``width``)."""
        assert self.states is not None, f"{self.path} is closed"
        idx = indices.tolist()
        longest = max((int(self.lengths[i]) for i in idx), default=0)
        out = np.zeros((len(idx), max(longest, width or 0), self.hidden), dtype=np.int16)
        for row, i in enumerate(idx):
            a, b = int(self.offsets[i]), int(self.offsets[i + 1])
            out[row, : b - a] = self.states[a:b]
        if self._map is not None and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED)  # clean file pages: re-read when needed
        states = torch.from_numpy(out).view(torch.bfloat16).float()
        return states.to(indices.device)

    def close(self) -> None:
        self.states = None  # the array holds the map's buffer
        if self._map is not None:
            self._map.close()
            self._map = None
        self._file.close()


def _row_offsets(lengths: np.ndarray) -> np.ndarray:
    """Where each item's rows start in a states file (and, last, the file's row count)."""
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def states_key(features: Features, *parts: Any) -> str:
    """What a split's stored states depend on: its token ids (and types) and ``parts`` (the
    frozen encoder: its path, initialisation, precision)."""
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(features.lengths, dtype=np.int64).tobytes())
    for name in sorted(features.sequences):
        for seq in features.sequences[name]:
            h.update(np.ascontiguousarray(seq, dtype=np.int64).tobytes())
    return h.hexdigest()


def write_states(
    encoder: nn.Module,
    features: Features,
    pad_id: int,
    path: Path,
    key: str,
    hidden: int,
    *,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[Any]],
    accelerator: Any = None,
) -> DiskStates:
    """Every token's states (``hidden`` wide) of the frozen ``encoder`` over ``features`` in
    ``path`` (bf16 bits, memory-mapped), reused when ``path`` already holds them under ``key``
    (a run resumed).

    Under several processes all take part in the forward passes; the main process writes the
    file (through a temporary file, then renamed, then its ``.json`` stamp), the others wait
    and read it."""
    stamp_path = path.with_suffix(".json")
    stamp = {
        "key": key,
        "items": len(features),
        "tokens": int(features.lengths.sum()),
        "hidden": hidden,
    }
    main = accelerator is None or accelerator.is_main_process
    if _stamped(stamp_path, stamp):
        return DiskStates(path, features.lengths, hidden)
    if accelerator is not None:  # every process has looked before the main one writes
        accelerator.wait_for_everyone()
    encoder.eval()
    offsets = _row_offsets(features.lengths)
    rows = stream_features(
        encoder,
        features,
        pad_id,
        batch_size=batch_size,
        device=device,
        autocast=autocast,
        accelerator=accelerator,
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if main:
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp_path.unlink(missing_ok=True)
        try:
            with open(tmp, "wb") as f:
                f.truncate(int(offsets[-1]) * hidden * 2)
                for i, row in rows:
                    bits = torch.from_numpy(row[: features.lengths[i]]).to(torch.bfloat16)
                    os.pwrite(
                        f.fileno(),
                        bits.view(torch.int16).numpy().tobytes(),
                        int(offsets[i]) * hidden * 2,
                    )
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        stamp_path.write_text(json.dumps(stamp))
    else:
        for _ in rows:  # take part in the sharded forward passes; the main process writes
            pass
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return DiskStates(path, features.lengths, hidden)


def _stamped(stamp_path: Path, stamp: dict[str, Any]) -> bool:
    """Whether ``stamp_path`` says its states file holds ``stamp``'s states."""
    try:
        return bool(json.loads(stamp_path.read_text()) == stamp)
    except (OSError, ValueError):
        return False
