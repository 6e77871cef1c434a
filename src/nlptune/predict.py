"""Predictor: a finished run -> predictions and metrics, on the same code path as training."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlptune import build
from nlptune.config import RunConfig
from nlptune.errors import DataError
from nlptune.tasks.base import Task
from nlptune.training.evaluate import stream_features
from nlptune.training.loop import eval_batch_size
from nlptune.training.runtime import autocast_for


class Predictor:
    """Load a run directory and predict or evaluate.

    Example:
        >>> p = Predictor.from_dir("runs/sst2-minilm")
        >>> p.predict(["a gripping, funny film"])
        [{'label': '1', 'score': 0.97}]
    """

    def __init__(
        self,
        config: RunConfig,
        task: Task,
        model: Any,
        text: Any,
        device: torch.device,
        batch_size: int | None = None,
    ) -> None:
        self.config, self.task, self.model, self.text = config, task, model, text
        self.device = device
        self.batch_size = batch_size or eval_batch_size(config.trainer)
        self.autocast = autocast_for(config.trainer.precision, device)

    @classmethod
    def from_dir(
        cls, path: str | Path, device: str | None = None, batch_size: int | None = None
    ) -> Predictor:
        """Load a finished run (the same load path as ``nlptune evaluate``/``predict``).
        ``batch_size`` defaults to the run's evaluation batch size."""
        trained = build.load_trained(Path(path))
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        trained.model.to(dev).eval()
        return cls(trained.config, trained.task, trained.model, trained.text, dev, batch_size)

    def _stream(self, features: Any) -> Iterator[tuple[int, np.ndarray]]:
        return stream_features(
            lambda batch: self.task.predict_step(self.model, batch),
            features,
            self.text.pad_id,
            batch_size=self.batch_size,
            device=self.device,
            autocast=self.autocast,
            by_length=self.task.eval_by_length,
        )

    def _featurize(self, examples: Sequence[Any], labelled: bool) -> Any:
        return self.task.featurize(examples, self.text, labelled=labelled)

    def predict(self, inputs: Iterable[Any]) -> list[dict[str, Any]]:
        """Predictions for texts, ``(text, text_pair)`` tuples or dicts, in input order."""
        examples = [self.task.input_example(x, f"input {i + 1}") for i, x in enumerate(inputs)]
        if not examples:
            return []
        features = self._featurize(examples, labelled=False)
        result: list[dict[str, Any]] = self.task.predictions(
            self._stream(features), examples, features
        )
        return result

    def evaluate(self, path: str) -> dict[str, Any]:
        """Metrics on a labelled file read with the run's data settings."""
        examples = self.task.read(path)
        features = self._featurize(examples, labelled=True)
        scores: dict[str, Any] = self.task.evaluate(self._stream(features), examples, features)
        return build.rounded(scores)

    def predict_file(self, path: str) -> list[dict[str, Any]]:
        """Predictions for a text file (one input per line; a tab separates a pair), a JSON Lines
        file of ``{"text": ..., "text_pair": ...}``, or a CSV/TSV/hf source read like the data."""
        source = Path(path)
        if source.suffix.lower() in (".txt", "") and source.is_file():
            lines = source.read_text(encoding="utf-8-sig").splitlines()
            return self.predict(self.task.line_input(line) for line in lines)
        if source.suffix.lower() in (".jsonl", ".json") and source.is_file():
            rows = []
            with open(source, encoding="utf-8-sig") as f:
                for number, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as err:
                            raise DataError(f"{path}:{number}: not valid JSON: {err.msg}") from None
            return self.predict(rows)
        return self.predict(self.task.read(path, labelled=False))
