"""The contract every task meets (a Protocol: tasks compose helpers, they do not inherit).

A task turns files into examples, fixes its label space from training data, featurizes examples
through a :class:`~nlptune.backbones.base.TextEncoder`, asks for the heads it needs, says how the
trained model is saved, runs its prediction step, and turns a stream of ``(item index, output
row)`` into metrics or predictions. The loop, the evaluator and the Predictor use only what is
declared here; build.py constructs a task from flat arguments: its own config keys and the data
keys named in ``DATA_ARGS``. A task that turns generated ids back into text also defines
``use_text(text_encoder)``, which build.py calls wherever it makes the text encoder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from nlptune.backbones.base import Export, TextEncoder
from nlptune.config import TaskConfig
from nlptune.data.features import Features
from nlptune.heads.model import HeadSpec


class Task(Protocol):
    Config: ClassVar[type[TaskConfig]]
    DATA_ARGS: ClassVar[Mapping[str, str]]  # data.<key> -> constructor argument
    # frozen backbone: None when its states must not be stored (too many: QA windows); else
    # "first"/"all" as its heads read (the cache stores what the heads declare they read)
    cache_mode: ClassVar[str | None]
    eval_by_length: ClassVar[bool]  # False: the items of one example must arrive together

    @property
    def main_metric(self) -> str: ...
    @property
    def greater_is_better(self) -> bool: ...

    def read(self, path: str, labelled: bool = True) -> list[Any]: ...
    def fit(self, train: Sequence[Any]) -> None:
        """Fix the label space (and other data-dependent settings) from training examples."""
        ...

    def encode_labels(self, examples: Sequence[Any]) -> Any:
        """Check (and encode) labels; a label never seen in training is a DataError."""
        ...

    def state(self) -> dict[str, Any]:
        """What a saved run keeps of the task (``labels.json``)."""
        ...

    def load_state(self, state: dict[str, Any]) -> None: ...
    def tune(self, dev_metrics: dict[str, float]) -> None:
        """Settings fitted on the dev set after training (the SQuAD v2 no-answer threshold)."""
        ...

    def cache_key(self) -> dict[str, Any]:
        """Everything besides data, text encoder and max length that changes the features."""
        ...

    def featurize(
        self, examples: Sequence[Any], text: TextEncoder, labelled: bool = True
    ) -> Features:
        """Features of ``examples``; ``Features.lengths`` is each item's length for batching."""
        ...

    def heads(self) -> dict[str, HeadSpec]:
        """The named heads the model needs (the first is the main one)."""
        ...

    def export(self) -> Export:
        """How the trained model is saved (the standard class, label names)."""
        ...

    def predict_step(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One batch's outputs for decoding, one row per item (B, ...): a forward pass or
        ``generate``."""
        ...

    def evaluate(
        self, rows: Iterable[tuple[int, np.ndarray]], examples: Sequence[Any], features: Features
    ) -> dict[str, float]: ...
    def predictions(
        self, rows: Iterable[tuple[int, np.ndarray]], examples: Sequence[Any], features: Features
    ) -> list[dict[str, Any]]: ...
    def line_input(self, line: str) -> Any:
        """One line of a ``.txt`` prediction input."""
        ...

    def input_example(self, item: Any, where: str) -> Any:
        """A prediction input (text, tuple, dict, or an example) as an example."""
        ...
