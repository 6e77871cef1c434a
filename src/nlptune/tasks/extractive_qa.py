"""``extractive_qa``: answer a question with a span of the context (SQuAD v1.1 and v2.0).

Long contexts become several windows (``backbone.max_length`` tokens, ``task.doc_stride``
overlap) with offsets back to context characters. Decoding keeps, per example, the n-best
start/end pairs over all its windows; v2.0 compares the no-answer score (the smallest over the
windows of start[CLS] + end[CLS]) with the best span, predicting "" when the difference exceeds
the threshold tuned on the dev set (saved in ``labels.json``). Evaluation streams: a window's
logits are reduced to candidates as soon as they arrive, and an example is decoded and dropped
once all its windows are in. The model is transformers' question-answering class.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from nlptune.config import DataConfig, TaskConfig
from nlptune.data.features import Features
from nlptune.data.squad import QAExample, read_squad
from nlptune.errors import ConfigError, DataError
from nlptune.registry import TASKS
from nlptune.tasks import squad_metrics


class ExtractiveQAConfig(TaskConfig):
    type: str = Field("extractive_qa", description="task name (nlptune list tasks)")
    version: Literal["auto", "v1", "v2"] = Field(
        "auto", description="qa: v2 allows unanswerable questions; auto = v2 if training has any"
    )
    doc_stride: int = Field(128, ge=1, description="qa: tokens shared by consecutive windows")
    max_answer_length: int = Field(30, ge=1, description="qa: longest answer in tokens")
    n_best: int = Field(20, ge=1, description="qa: start and end candidates kept per window")
    nearest_answer: bool = Field(
        False, description="qa: use the nearest occurrence of an answer whose answer_start is off"
    )


@dataclass
class _Pending:
    """Decoding state of one example while its windows arrive."""

    left: int
    spans: list[tuple[float, int, int]] = field(default_factory=list)
    null: float = float("inf")


@TASKS.register("extractive_qa")
class ExtractiveQA:
    """Extract the answer span to a question from its context (SQuAD v1.1/v2.0)."""

    Config = ExtractiveQAConfig
    model_auto_class = "AutoModelForQuestionAnswering"
    pipeline_task = "question-answering"
    cache_mode = (
        None  # frozen: the backbone runs each step (windows of 384 tokens are too many to store)
    )
    eval_by_length = False  # windows of one example arrive together, so decoding can stream
    pair = True

    def __init__(self, config: ExtractiveQAConfig, data: DataConfig) -> None:
        self.config, self.data = config, data
        self.version: str = config.version
        self.null_threshold = 0.0
        self._dev_diffs: list[float] = []

    @classmethod
    def check_config(cls, run: Any, name: str) -> None:
        if run.task.doc_stride >= run.backbone.max_length // 2:
            raise ConfigError(
                f"{name}: task.doc_stride={run.task.doc_stride} must be well below "
                f"backbone.max_length={run.backbone.max_length} (e.g. 128 for 384)"
            )
        if run.task.metric not in (None, "f1", "exact"):
            raise ConfigError(f"{name}: task.metric for extractive_qa is f1 or exact")

    greater_is_better = True

    @property
    def main_metric(self) -> str:
        return self.config.metric or "f1"

    # -- data -----------------------------------------------------------------------------------
    def read(self, path: str, labelled: bool = True) -> list[QAExample]:
        examples = read_squad(path, self.data.format, nearest=self.config.nearest_answer)
        if not examples:
            raise DataError(f"{path}: no questions")
        if labelled:
            for e in examples:
                if not e.answers and not e.is_impossible:
                    raise DataError(f"{e.where}: no answers and not marked is_impossible")
        return examples

    def fit(self, train: Sequence[QAExample]) -> None:
        if self.version == "auto":
            self.version = "v2" if any(e.is_impossible for e in train) else "v1"

    def encode_labels(self, examples: Sequence[QAExample]) -> None:
        if self.version == "v1":
            for e in examples:
                if e.is_impossible:
                    raise DataError(f"{e.where}: unanswerable question in a v1 (task.version) run")

    def state(self) -> dict[str, Any]:
        return {"version": self.version, "null_threshold": self.null_threshold}

    def load_state(self, state: dict[str, Any]) -> None:
        self.version, self.null_threshold = state["version"], float(state["null_threshold"])

    def tune(self, dev_metrics: dict[str, float]) -> None:
        """Keep the no-answer threshold that maximised dev F1. The official sweep returns one
        question's own score difference; the midpoint to the next larger difference gives the
        same dev F1 without sitting on a knife edge that float noise can flip."""
        if self.version != "v2" or "best_f1_thresh" not in dev_metrics:
            return
        # the metrics are rounded for reporting: take the exact difference they name (the sweep
        # reports 0.0 when answering nothing beats answering anything: keep that as it is)
        target = float(dev_metrics["best_f1_thresh"])
        near = [d for d in self._dev_diffs if abs(d - target) <= 1e-5]
        if not near:
            self.null_threshold = target
            return
        best = min(near, key=lambda d: abs(d - target))
        above = [d for d in self._dev_diffs if d > best]
        self.null_threshold = (best + min(above)) / 2 if above else best + 1.0

    def cache_key(self) -> dict[str, Any]:
        return {
            "task": "extractive_qa",
            "version": self.version,
            "stride": self.config.doc_stride,
            "nearest": self.config.nearest_answer,
        }

    def featurize(
        self, examples: Sequence[QAExample], tokenizer: Any, max_length: int, labelled: bool = True
    ) -> Features:
        """Windows over each context; ``meta`` keeps the example index and character offsets
        (-1 outside the context) of every token."""
        self._check_questions(examples, tokenizer, max_length)
        enc = tokenizer(
            [e.question for e in examples],
            [e.context for e in examples],
            truncation="only_second",
            max_length=max_length,
            stride=self.config.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        owners = enc["overflow_to_sample_mapping"]
        starts, ends, offsets_s, offsets_e = [], [], [], []
        for i, owner in enumerate(owners):
            seq_ids = enc.sequence_ids(i)
            offs = enc["offset_mapping"][i]
            s = np.array([o[0] if sid == 1 else -1 for o, sid in zip(offs, seq_ids, strict=True)])
            t = np.array([o[1] if sid == 1 else -1 for o, sid in zip(offs, seq_ids, strict=True)])
            offsets_s.append(s.astype(np.int32))
            offsets_e.append(t.astype(np.int32))
            start, end = _label(examples[owner], s, t) if labelled else (0, 0)
            starts.append(start)
            ends.append(end)
        sequences = {
            name: [np.asarray(x, dtype=np.int32) for x in enc[name]]
            for name in ("input_ids", "token_type_ids")
            if name in enc
        }
        values = (
            {
                "start_positions": np.array(starts, dtype=np.int64),
                "end_positions": np.array(ends, dtype=np.int64),
            }
            if labelled
            else {}
        )
        meta = {
            "example": [np.array([o], dtype=np.int32) for o in owners],
            "offset_start": offsets_s,
            "offset_end": offsets_e,
        }
        return Features(sequences, values, meta)

    @staticmethod
    def _check_questions(examples: Sequence[QAExample], tokenizer: Any, max_length: int) -> None:
        lengths = [len(x) for x in tokenizer([e.question for e in examples])["input_ids"]]
        for e, n in zip(examples, lengths, strict=True):
            if n > max_length // 2:
                raise DataError(
                    f"{e.where}: the question is {n} tokens, too long for windows of "
                    f"backbone.max_length={max_length}; raise max_length or shorten it"
                )

    # -- model ----------------------------------------------------------------------------------
    def model_kwargs(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def outputs(model_output: Any) -> torch.Tensor:
        """Start and end logits stacked: (B, T, 2)."""
        return torch.stack([model_output["start_logits"], model_output["end_logits"]], dim=-1)

    # -- decoding -------------------------------------------------------------------------------
    def decode(
        self,
        rows: Iterable[tuple[int, np.ndarray]],
        examples: Sequence[QAExample],
        features: Features,
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(example index, prediction)`` as soon as all windows of an example are in.

        The prediction holds ``answer``, ``start``/``end`` (characters), ``score`` and, for
        v2.0, ``null_diff`` (no-answer score minus the best span's) and ``span`` (best answer)."""
        owner = [int(m[0]) for m in features.meta["example"]]
        pending: dict[int, _Pending] = {}
        counts = np.bincount(owner, minlength=len(examples))
        for i, row in rows:
            ex = owner[i]
            state = pending.setdefault(ex, _Pending(left=int(counts[ex])))
            self._window(row[: len(features.sequences["input_ids"][i])], features, i, state)
            state.left -= 1
            if state.left == 0:
                yield ex, self._finish(examples[ex], pending.pop(ex))

    def _window(self, logits: np.ndarray, features: Features, i: int, state: _Pending) -> None:
        start_l, end_l = logits[:, 0], logits[:, 1]  # (T,)
        state.null = min(state.null, float(start_l[0] + end_l[0]))
        offs_s, offs_e = features.meta["offset_start"][i], features.meta["offset_end"][i]
        k = self.config.n_best
        for s in np.argsort(-start_l)[:k]:
            if offs_s[s] < 0:
                continue
            for e in np.argsort(-end_l)[:k]:
                if offs_e[e] < 0 or e < s or e - s + 1 > self.config.max_answer_length:
                    continue
                state.spans.append((float(start_l[s] + end_l[e]), int(offs_s[s]), int(offs_e[e])))
        state.spans = sorted(state.spans, reverse=True)[:k]

    def _finish(self, example: QAExample, state: _Pending) -> dict[str, Any]:
        if state.spans:
            score, start, end = state.spans[0]
        else:
            score, start, end = float("-inf"), 0, 0
        span = example.context[start:end]
        out: dict[str, Any] = {"answer": span, "start": start, "end": end, "score": score}
        if self.version == "v2":
            diff = state.null - score
            out["null_diff"], out["span"] = diff, span
            if diff > self.null_threshold:
                out.update(answer="", start=-1, end=-1, score=state.null)
        return out

    def evaluate(
        self,
        rows: Iterable[tuple[int, np.ndarray]],
        examples: Sequence[QAExample],
        features: Features,
    ) -> dict[str, float]:
        """Official SQuAD metrics (v2.0: also HasAns/NoAns and the best no-answer threshold)."""
        spans: dict[str, str] = {}
        diffs: dict[str, float] = {}
        for ex, pred in self.decode(rows, examples, features):
            qid = examples[ex].id
            spans[qid] = pred.get("span", pred["answer"])
            if "null_diff" in pred:
                diffs[qid] = pred["null_diff"]
        golds = {e.id: [a for a, _ in e.answers] for e in examples}
        v2 = self.version == "v2"
        self._dev_diffs = list(diffs.values())
        return squad_metrics.score(golds, spans, diffs if v2 else None, self.null_threshold)

    def predictions(
        self,
        rows: Iterable[tuple[int, np.ndarray]],
        examples: Sequence[QAExample],
        features: Features,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{} for _ in examples]
        for ex, pred in self.decode(rows, examples, features):
            out[ex] = {k: pred[k] for k in ("answer", "start", "end", "score")}
        return out

    # -- prediction input -----------------------------------------------------------------------
    def line_input(self, line: str) -> Any:
        raise DataError("extractive_qa reads JSON Lines of {question, context}, not plain text")

    def input_example(self, item: Any, where: str) -> QAExample:
        if isinstance(item, QAExample):
            return item
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected {{question, context}}, got {type(item).__name__}")
        for key in ("question", "context"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise DataError(f"{where}: no {key} (record id {item.get('id', '?')})")
        return QAExample(
            str(item.get("id", where)), item["question"].strip(), item["context"], where=where
        )


def _label(example: QAExample, offs_s: np.ndarray, offs_e: np.ndarray) -> tuple[int, int]:
    """Token positions of the first gold answer if this window holds it whole, else CLS (0)."""
    if not example.answers:
        return 0, 0
    text, char_start = example.answers[0]
    char_end = char_start + len(text)
    inside = np.flatnonzero(offs_s >= 0)
    if offs_s[inside[0]] > char_start or offs_e[inside[-1]] < char_end:
        return 0, 0
    start = int(inside[np.searchsorted(offs_e[inside], char_start, side="right")])
    end = int(inside[np.searchsorted(offs_s[inside], char_end, side="left") - 1])
    return start, end
