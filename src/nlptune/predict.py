"""Predictor: a finished run -> predictions and metrics, on the same code path as training."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlptune import build
from nlptune.backbones.hf_paths import check_tokenizer_files, json_key
from nlptune.config import RunConfig
from nlptune.data.examples import BadRecord, located
from nlptune.errors import DataError, ModelError
from nlptune.inputs import Record, records
from nlptune.progress import Progress
from nlptune.tasks.base import Task
from nlptune.tasks.metrics import degenerate_warning
from nlptune.training.evaluate import stream_features
from nlptune.training.loop import eval_batch_size
from nlptune.training.runtime import autocast_for

logger = logging.getLogger("nlptune")
BUFFER = 4096  # records read, featurized and predicted at a time


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
        progress: bool = False,
    ) -> None:
        self.config, self.task, self.model, self.text = config, task, model, text
        self.device = device
        self.batch_size = batch_size or default_batch(config, device)
        self.autocast = autocast_for(config.trainer.precision, device)
        self.progress = progress  # show evaluate()'s progress on stderr

    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        device: str | None = None,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> Predictor:
        """Load a finished run (the same load path as ``nlptune evaluate``/``predict``).
        ``batch_size`` defaults to the run's evaluation batch (at most 32 on CPU);
        ``progress`` shows :meth:`evaluate`'s progress on stderr."""
        trained = build.load_trained(Path(path))
        check_trained(Path(path), trained)
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        trained.model.to(dev).eval()
        return cls(
            trained.config, trained.task, trained.model, trained.text, dev, batch_size, progress
        )

    def _stream(self, features: Any, what: str | None = None) -> Iterator[tuple[int, np.ndarray]]:
        shown = None
        if what is not None and self.progress:
            shown = Progress(what, len(features.lengths), "example", leave=False)
        return stream_features(
            lambda batch: self.task.predict_step(self.model, batch),
            features,
            self.text.pad_id,
            batch_size=self.batch_size,
            device=self.device,
            autocast=self.autocast,
            by_length=self.task.eval_by_length,
            progress=shown,
        )

    def _featurize(self, examples: Sequence[Any], labelled: bool) -> Any:
        return self.task.featurize(examples, self.text, labelled=labelled)

    def predict(self, inputs: Iterable[Any], errors: str = "raise") -> list[dict[str, Any]]:
        """Predictions for texts, ``(text, text_pair)`` tuples or dicts, in input order.

        ``errors="raise"`` raises DataError at the first input that can't be predicted;
        ``errors="record"`` puts ``{"error": ..., "input": N}`` in its place and goes on.
        """
        if errors not in ("raise", "record"):
            raise ValueError(f"errors={errors!r}: use 'raise' or 'record'")
        records = (Record(x, f"input {i + 1}", i + 1, _id_of(x)) for i, x in enumerate(inputs))
        return list(self.predict_records(records, strict=errors == "raise", line_key="input"))

    def evaluate(self, path: str) -> dict[str, Any]:
        """Metrics on a labelled file read with the run's data settings."""
        examples = self.task.read(path)
        features = self._featurize(examples, labelled=True)
        rows = self._stream(features, what=f"evaluating {Path(path).name}")
        scores: dict[str, Any] = self.task.evaluate(rows, examples, features)
        warning = degenerate_warning(self.task, path)
        if warning:
            logger.warning(warning)
        return build.rounded(scores)

    def predict_file(self, path: str, errors: str = "raise") -> list[dict[str, Any]]:
        """Predictions for a file (see :meth:`stream_file`), as a list."""
        return list(self.stream_file(path, strict=errors == "raise"))

    def stream_file(
        self,
        path: str,
        strict: bool = False,
        buffer: int | None = None,
        keep: Sequence[str] = (),
    ) -> Iterator[dict[str, Any]]:
        """Predictions for every record of a file, in input order and streamed: a ``.txt``
        file (one input a line; a TAB separates a pair), JSON Lines, or any format the task
        trains on (CSV/TSV, CoNLL/CoNLL-U, SemEval XML, STREUSLE, SQuAD JSON, parallel text),
        ids kept. A record that can't be predicted gives ``{"error", "line" or "where", "id"}``
        in its place (``strict``: a DataError instead).

        ``buffer`` records at a time are featurized, predicted in length-sorted batches and
        yielded in input order (default: 4,096 or 32 batches, whichever is more, so that the
        sorted batches stay tight). ``.txt`` and JSON Lines files are read lazily, so memory
        stays bounded by ``buffer`` whatever the file's size; the other formats are parsed
        whole by the task's reader (words and texts only) and featurized a buffer at a time.
        The predictions do not depend on ``buffer`` beyond the last digits of scores (which
        move with batch composition). ``keep``: fields of a JSON Lines or CSV/TSV input copied
        to each output (as ``input_<name>`` where the prediction has a field of that name)."""
        if buffer is None:  # batches are sorted within a buffer: a large batch needs a large one
            buffer = max(BUFFER, 32 * self.batch_size)
        if buffer < 1:
            raise ValueError(f"buffer={buffer}: at least 1 record")
        source = records(self.task, path, keep)
        return self.predict_records(source, strict=strict, buffer=buffer)

    def predict_records(
        self,
        source: Iterable[Record],
        strict: bool = False,
        buffer: int = BUFFER,
        line_key: str = "line",
    ) -> Iterator[dict[str, Any]]:
        """Predictions for records, ``buffer`` at a time (each buffer in length-sorted batches),
        yielded in input order."""
        chunk: list[Record] = []
        for record in source:
            chunk.append(record)
            if len(chunk) >= buffer:
                yield from self._chunk(chunk, strict, line_key)
                chunk = []
        if chunk:
            yield from self._chunk(chunk, strict, line_key)

    def _chunk(self, chunk: list[Record], strict: bool, line_key: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any] | None] = [None] * len(chunk)

        def fail(i: int, message: str) -> None:
            if strict:
                raise DataError(located(chunk[i].where, message))
            out[i] = _error(chunk[i], message, line_key)

        good: list[tuple[int, Any]] = []
        for i, r in enumerate(chunk):
            if isinstance(r.item, BadRecord):  # from a reader of unlabelled input
                r.error, r.id = r.item.error, r.id or r.item.id or None
            if r.error is not None:
                fail(i, r.error)
                continue
            try:
                good.append((i, self.task.input_example(r.item, r.where)))
            except Exception as err:  # noqa: BLE001 (any bad input is that record's error)
                fail(i, _message(err))
        failed: list[tuple[int, Exception]] = []
        rows = self._split_rows(good, failed, [False])
        for i, problem in failed:
            if strict and not isinstance(problem, DataError):
                raise problem
            fail(i, _message(problem))
        for (i, _), row in zip(good, rows, strict=True):
            if row is not None:
                kept = _fields(chunk[i])
                out[i] = {**{f"input_{k}" if k in row else k: v for k, v in kept.items()}, **row}
        return [row for row in out if row is not None]

    def _split_rows(
        self, good: list[tuple[int, Any]], failed: list[tuple[int, Exception]], any_ok: list[bool]
    ) -> list[Any]:
        """Rows for ``(record number, example)`` pairs; when they fail together, each half is
        tried alone, down to the single records that fail (None in their place, and their
        error in ``failed``). When the first 16 records tried alone all fail alike with an
        error that is not a DataError, and none has worked, the fault is not in the records:
        it is raised (a bug; exit 3)."""
        try:
            rows = self._rows([e for _, e in good])
            any_ok[0] = True
            return rows
        except Exception as err:  # noqa: BLE001 (find the records that fail, predict the others)
            if len(good) == 1:
                failed.append((good[0][0], err))
                alike = len({type(e) for _, e in failed}) == 1
                bug = not isinstance(err, DataError)
                if len(failed) >= 16 and not any_ok[0] and alike and bug:
                    raise
                return [None]
        half = len(good) // 2
        first = self._split_rows(good[:half], failed, any_ok)
        return first + self._split_rows(good[half:], failed, any_ok)

    def _rows(self, examples: list[Any]) -> list[Any]:
        """The task's predictions for ``examples`` (one row each)."""
        if not examples:
            return []
        features = self._featurize(examples, labelled=False)
        rows = self.task.predictions(self._stream(features), examples, features)
        if len(rows) != len(examples):
            raise RuntimeError(f"{len(rows)} predictions for {len(examples)} inputs")
        return list(rows)


CPU_BATCH = 32  # on CPU, length-sorted batches beyond 32 were slower (bench/inference.py)


def default_batch(config: RunConfig, device: torch.device) -> int:
    """The run's evaluation batch, at most 32 on CPU: with little padding left by length
    sorting, larger CPU batches only cost cache (CoNLL tagging on 2 cores: 140 sentences/s
    at 16, 115 at 32, 92 at 64; SST-2 flat from 32 to 64)."""
    size = eval_batch_size(config.trainer)
    return min(size, CPU_BATCH) if device.type == "cpu" else size


def check_trained(folder: Path, trained: build.Trained) -> None:
    """What loading alone does not catch in a run folder that was changed or damaged: missing
    tokenizer files (every word would read as unknown), labels.json naming the labels in
    another order than the saved model's ``id2label`` (every prediction would get another
    label's name), and weights that are nan or inf. ModelError, naming the file."""
    model = folder / "model"
    if trained.config.backbone.type in ("hf_encoder", "hf_seq2seq"):
        check_tokenizer_files(model, f"{folder}: model/")
    export = trained.task.export()
    saved, where = _saved_labels(model, export.kind)
    mine = [str(x) for x in export.label_names]
    if where.startswith("config.json"):
        mine = mine or ["score"]  # as transformers' id2label is written (hf_export)
    if saved is not None and saved != mine:
        raise ModelError(
            f"{folder}: labels.json names the labels {_few(mine)} but model/{where} "
            f"{_few(saved)}; the run folder was changed: restore labels.json or train it again"
        )
    bad = [n for n, w in trained.model.named_parameters() if not bool(torch.isfinite(w).all())]
    if bad:
        raise ModelError(
            f"{folder}: {len(bad)} saved weight tensors hold nan or inf ({', '.join(bad[:3])}); "
            "the run diverged or its files are damaged: train it again (a lower trainer.lr)"
        )


def _saved_labels(model: Path, kind: str) -> tuple[list[str] | None, str]:
    """The label names the saved model holds, in output order, and the file that says so:
    transformers' ``config.json`` (``id2label``) or the static-vectors network file; None
    where the model keeps none (QA, text-to-text, masked LM, an encoder with our own head)."""
    network = model / "static_vectors.json"
    if network.is_file():
        labels = json_key(network, "labels")
        return ([str(x) for x in labels] if isinstance(labels, list) else None), network.name
    if kind in ("encoder", "question_answering", "seq2seq_lm", "masked_lm"):
        return None, ""
    id2label = json_key(model / "config.json", "id2label")
    if not isinstance(id2label, dict):
        return None, ""
    return [str(id2label.get(str(i))) for i in range(len(id2label))], "config.json (id2label)"


def _few(names: list[str]) -> str:
    return ", ".join(names[:6]) + (f", ... ({len(names)})" if len(names) > 6 else "")


def _message(err: Exception) -> str:
    """A record's error as one line: a DataError's own message, else its type and text."""
    if isinstance(err, DataError):
        return str(err)
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")


def _id_of(item: Any) -> str | None:
    value = item.get("id") if isinstance(item, dict) else None
    return None if value is None else str(value)


def _fields(record: Record) -> dict[str, Any]:
    """What a record's output carries of its input: its id (and STREUSLE's token ids)."""
    out: dict[str, Any] = {}
    if record.id is not None:
        out["id"] = record.id
    out.update(record.extra or {})
    return out


def _error(record: Record, message: str, line_key: str) -> dict[str, Any]:
    out: dict[str, Any] = {"error": message}
    if record.line is not None:
        out[line_key] = record.line
    else:
        out["where"] = record.where
    return {**out, **_fields(record)}
