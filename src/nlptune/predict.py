"""Predictor: a finished run -> predictions and metrics, on the same code path as training."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlptune import artefact, build
from nlptune.config import RunConfig, validate
from nlptune.errors import DataError
from nlptune.training.evaluate import stream_features
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
        task: Any,
        model: Any,
        tokenizer: Any,
        device: torch.device,
        batch_size: int = 64,
    ) -> None:
        self.config, self.task, self.model, self.tokenizer = config, task, model, tokenizer
        self.device, self.batch_size = device, batch_size
        self.autocast = autocast_for(config.trainer.precision, device)

    @classmethod
    def from_dir(
        cls, path: str | Path, device: str | None = None, batch_size: int = 64
    ) -> Predictor:
        folder = Path(path)
        raw, labels = artefact.read_run(folder)
        config = validate({**raw, "output_dir": str(folder)}, str(folder / "config.yaml"))
        p = build.parts(config)
        p.task.load_state(labels)
        import transformers
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:
            if hasattr(p.task, "load_trained"):  # a head of our own (CRF, sense head)
                model = p.task.load_trained(folder / "model")
            else:
                model_class = getattr(transformers, p.task.model_auto_class)
                model = model_class.from_pretrained(folder / "model")
        finally:
            hf_logging.enable_progress_bar()
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder / "model")
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model.to(dev).eval()
        return cls(config, p.task, model, tokenizer, dev, batch_size)

    def _stream(self, features: Any) -> Iterator[tuple[int, np.ndarray]]:
        return stream_features(
            lambda batch: self.task.outputs(self.model(**batch)),
            features,
            self.tokenizer.pad_token_id or 0,
            batch_size=self.batch_size,
            device=self.device,
            autocast=self.autocast,
            by_length=self.task.eval_by_length,
        )

    def _featurize(self, examples: Sequence[Any], labelled: bool) -> Any:
        return self.task.featurize(
            examples, self.tokenizer, self.config.backbone.max_length, labelled=labelled
        )

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

    def evaluate(self, path: str) -> dict[str, float]:
        """Metrics on a labelled file read with the run's data settings."""
        examples = self.task.read(path)
        features = self._featurize(examples, labelled=True)
        scores: dict[str, float] = self.task.evaluate(self._stream(features), examples, features)
        return {k: round(v, 6) for k, v in scores.items()}

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
