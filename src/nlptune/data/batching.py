"""Length-grouped batching and dynamic padding."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from nlptune.data.features import Features


def train_batches(
    lengths: np.ndarray, batch_size: int, *, seed: int, epoch: int, group_by_length: bool
) -> list[list[int]]:
    """The batches of one training epoch, a pure function of ``(seed, epoch)``.

    With ``group_by_length``, a shuffled order is cut into pools of 64 batches, each pool is sorted
    by length and cut into batches, and the batches are shuffled: padding is close to zero while
    the order stays random. Exact resume relies on this being deterministic.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if group_by_length:
        pool = batch_size * 64
        chunks = [order[i : i + pool] for i in range(0, len(order), pool)]
        order = (
            np.concatenate([c[np.argsort(-lengths[c], kind="stable")] for c in chunks])
            if chunks
            else order
        )
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if group_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def eval_batches(lengths: np.ndarray, batch_size: int) -> list[list[int]]:
    """Fixed-size batches over examples sorted by length (longest first)."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


PAD = {"labels": -100}  # -100: not scored by the losses


def collate(
    features: Features,
    indices: Sequence[int],
    pad_id: int,
    values: bool = True,
    multiple: int | None = None,
) -> dict[str, torch.Tensor]:
    """Pad every sequence column of the items ``indices`` to its own longest item, rounded up
    to a multiple of ``multiple`` when given (few distinct shapes, for compiled models)
    (``values=False`` leaves out per-item values such as labels, for inference).

    Returns:
        A batch dict with Hugging Face keys: ``input_ids`` (B, T) and ``attention_mask`` (B, T)
        where the features have input ids, every other sequence column (B, T_column), the
        per-item values, and ``index`` (B,).
    """
    batch: dict[str, torch.Tensor] = {}
    for name, column in features.sequences.items():
        width = max((len(column[i]) for i in indices), default=0)
        if multiple:
            width = -(-width // multiple) * multiple
        pad = pad_id if name == "input_ids" else PAD.get(name, 0)
        out = np.full((len(indices), width), pad, dtype=np.int64)
        for row, i in enumerate(indices):
            out[row, : len(column[i])] = column[i]
        batch[name] = torch.from_numpy(out)
        if name == "input_ids":
            mask = np.zeros((len(indices), width), dtype=np.int64)
            for row, i in enumerate(indices):
                mask[row, : len(column[i])] = 1
            batch["attention_mask"] = torch.from_numpy(mask)
    if values:
        for name, value in features.values.items():
            batch[name] = torch.from_numpy(value[list(indices)])
    batch["index"] = torch.tensor(list(indices), dtype=torch.int64)
    return batch
