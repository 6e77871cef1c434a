"""Hold out part of the training data as a development set."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Any


def hold_out(examples: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Split off ``fraction`` of the examples of every lemma (or of all, without lemmas) as dev,
    taking only examples whose label occurs at least twice in their group, so that every dev
    label is also in train."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        groups[str(getattr(e, "lemma", ""))].append(i)
    rng = random.Random(seed)
    held: set[int] = set()
    for members in groups.values():
        counts = Counter(str(getattr(examples[i], "label", "")) for i in members)
        candidates = [i for i in members if counts[str(getattr(examples[i], "label", ""))] > 1]
        rng.shuffle(candidates)
        picked: list[int] = []
        left = dict(counts)
        for i in candidates:
            if len(picked) >= round(fraction * len(members)):
                break
            label = str(getattr(examples[i], "label", ""))
            if left[label] > 1:  # keep one of every label in train
                picked.append(i)
                left[label] -= 1
        held.update(picked)
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [e for i, e in enumerate(examples) if i in held]
