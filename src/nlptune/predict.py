"""Predictor: a finished run -> predictions and metrics, on the same code path as training."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlptune import artefact, build
from nlptune.config import RunConfig, validate
from nlptune.data.batching import collate
from nlptune.data.examples import TextExample
from nlptune.errors import DataError
from nlptune.training.evaluate import infer
from nlptune.training.runtime import autocast_for

Input = str | tuple[str, str] | dict[str, Any] | TextExample


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
        p.task.restore(labels["problem"], labels["labels"])
        import transformers

        model_class = getattr(transformers, p.task.model_auto_class)
        model = model_class.from_pretrained(folder / "model")
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder / "model")
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model.to(dev).eval()
        return cls(config, p.task, model, tokenizer, dev, batch_size)

    def logits(self, examples: Sequence[TextExample]) -> np.ndarray:
        """Model outputs (N, L) for ``examples`` in order."""
        features = self.task.featurize(
            examples, self.tokenizer, self.config.backbone.max_length, labelled=False
        )
        pad = self.tokenizer.pad_token_id or 0
        return infer(
            lambda batch: self.model(**batch)["logits"],
            features.lengths,
            lambda idx: collate(features, idx, pad),
            batch_size=self.batch_size,
            device=self.device,
            autocast=self.autocast,
        )

    def predict(self, inputs: Iterable[Input]) -> list[dict[str, Any]]:
        """Predictions for texts, ``(text, text_pair)`` tuples or dicts, in input order."""
        examples = [self._example(x, i) for i, x in enumerate(inputs)]
        if not examples:
            return []
        result: list[dict[str, Any]] = self.task.decode(self.logits(examples))
        return result

    def evaluate(self, path: str) -> dict[str, float]:
        """Metrics on a labelled file read with the run's data settings."""
        examples = self.task.read(path)
        gold = self.task.encode_labels(examples)
        scores: dict[str, float] = self.task.score(self.logits(examples), gold)
        return {k: round(v, 6) for k, v in scores.items()}

    def predict_file(self, path: str) -> list[dict[str, Any]]:
        """Predictions for a text file (one input per line; a tab separates a pair), a JSON Lines
        file of ``{"text": ..., "text_pair": ...}``, or a CSV/TSV/hf source read like the data."""
        source = Path(path)
        if source.suffix.lower() in (".txt", "") and source.is_file():
            lines = source.read_text(encoding="utf-8-sig").splitlines()
            return self.predict(self._line(line) for line in lines)
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

    def _line(self, line: str) -> Input:
        if self.task.pair:
            text, tab, pair = line.partition("\t")
            return (text, pair)
        return line

    def _example(self, item: Input, i: int) -> TextExample:
        if isinstance(item, TextExample):
            return item
        if isinstance(item, str):
            if self.task.pair:
                raise DataError(
                    f"input {i + 1}: this model reads text pairs; give (text, text_pair)"
                )
            return TextExample(item, where=f"input {i + 1}")
        if isinstance(item, tuple):
            return TextExample(item[0], item[1], where=f"input {i + 1}")
        if isinstance(item, dict):
            data = self.config.data
            keys = [k for k in (data.text, "text") if isinstance(k, str)]
            text = next((item[k] for k in keys if k in item), None)
            if text is None:
                raise DataError(f"input {i + 1}: no '{keys[0]}' field in {sorted(item)}")
            pair = None
            if self.task.pair:
                pair_keys = [k for k in (data.text_pair, "text_pair") if isinstance(k, str)]
                pair = next((item[k] for k in pair_keys if k in item), None)
                if pair is None:
                    raise DataError(f"input {i + 1}: no '{pair_keys[0]}' field in {sorted(item)}")
            return TextExample(
                str(text), None if pair is None else str(pair), where=f"input {i + 1}"
            )
        raise DataError(
            f"input {i + 1}: expected a string, a pair or a dict, got {type(item).__name__}"
        )
