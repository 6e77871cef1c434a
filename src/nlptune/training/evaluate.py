"""Batched inference in original order, shared by training-time evaluation and the Predictor.

Examples are sorted by length into fixed-size batches (little padding). Under several processes
the batches are sharded by accelerate and outputs come back with ``gather_for_metrics``; rows carry
their example index, so the result is in input order either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import torch

from nlptune.data.batching import collate, eval_batches
from nlptune.data.features import Features
from nlptune.progress import Progress


class FixedBatches:
    """A batch sampler over precomputed index lists (accelerate needs ``batch_size``)."""

    def __init__(self, batches: list[list[int]], batch_size: int) -> None:
        self.batches, self.batch_size, self.drop_last = batches, batch_size, False

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def stream(
    forward: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    lengths: np.ndarray,
    make_batch: Callable[[list[int]], dict[str, torch.Tensor]],
    *,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager[Any]],
    accelerator: Any = None,
    by_length: bool = True,
    groups: np.ndarray | None = None,
    progress: Progress | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Run ``forward(batch) -> (B, ...)`` over every item and yield ``(index, output row)``.

    Items go in length-sorted batches (``by_length``); else, with ``groups`` (the example each
    item comes from), in batches sorted by example length that keep an example's items together
    and in order; else in index order. Under several processes
    every process yields every row (gathered with ``gather_for_metrics``). ``make_batch(indices)``
    builds a batch dict that includes ``index`` (which ``forward`` sees too). Raises if any item
    was not scored. ``progress`` counts the items as they are scored (and is closed at the end).
    """
    n = len(lengths)
    if by_length:
        batches = eval_batches(lengths, batch_size)
    elif groups is not None and n:
        batches = grouped_batches(lengths, groups, batch_size)
    else:
        batches = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    loader: Any = torch.utils.data.DataLoader(
        range(n),  # type: ignore[arg-type]
        batch_sampler=FixedBatches(batches, batch_size),
        collate_fn=make_batch,
    )
    sharded = accelerator is not None and accelerator.num_processes > 1
    if sharded:
        loader = accelerator.prepare_data_loader(loader, device_placement=True)
    seen = np.zeros(n, dtype=bool)
    with torch.inference_mode():
        for batch in loader:
            index = batch["index"]
            inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
            with autocast():
                output = forward(inputs)
            result = output.float().cpu().numpy()
            if sharded:  # every process's rows, the padding repeats left out
                rows = accelerator.gather_for_metrics(
                    list(zip(index.tolist(), result, strict=True)), use_gather_object=True
                )
                fresh = [(i, row) for i, row in rows if not seen[i]]
                for i, _ in fresh:
                    seen[i] = True
            else:  # one process: the batches partition the items, so no row repeats
                ids = index.numpy()
                seen[ids] = True
                fresh = list(zip(ids.tolist(), result, strict=True))
            yield from fresh
            if progress is not None:
                progress.update(len(fresh))
    if progress is not None:
        progress.close()
    if not seen.all():
        raise RuntimeError(f"evaluation scored {int(seen.sum())} of {n} items")


def grouped_batches(lengths: np.ndarray, groups: np.ndarray, batch_size: int) -> list[list[int]]:
    """Fixed-size batches over items ordered by their group's longest item (longest first),
    then by group, then by index: little padding, and the items of one group (the windows of
    one sentence or question) stay consecutive and in order."""
    longest = np.zeros(int(groups.max()) + 1, dtype=np.int64)
    np.maximum.at(longest, groups, lengths)
    order = np.lexsort((np.arange(len(lengths)), groups, -longest[groups]))
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def item_groups(features: Features) -> np.ndarray | None:
    """The example each item comes from (``meta["example"]``), where a task keeps it."""
    owners = features.meta.get("example")
    if owners is None or len(owners) != len(features):
        return None
    return np.fromiter((int(m[0]) for m in owners), dtype=np.int64, count=len(owners))


def stream_features(
    forward: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    features: Features,
    pad_id: int,
    **kwargs: Any,
) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`stream` over tokenized ``features``, padded by :func:`collate` without labels."""
    if not kwargs.get("by_length", True) and "groups" not in kwargs:
        kwargs["groups"] = item_groups(features)
    return stream(
        forward,
        features.lengths,
        lambda idx: collate(features, idx, pad_id, values=False),
        **kwargs,
    )
