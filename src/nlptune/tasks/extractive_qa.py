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

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from nlptune.backbones.base import Export, TextEncoder
from nlptune.config import TaskConfig
from nlptune.data.features import Features, sequence_lengths
from nlptune.data.squad import QAExample, read_squad
from nlptune.errors import ConfigError, DataError
from nlptune.heads import HeadSpec, SpanHead
from nlptune.registry import TASKS
from nlptune.tasks import squad_metrics

FEATURIZE_CHUNK = 1000  # examples tokenized at a time (bounds the tokenizer's Python output)


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

    def check_run(self, run: Any, where: str) -> None:
        if self.doc_stride >= run.backbone.max_length // 2:
            raise ConfigError(
                f"{where}: task.doc_stride={self.doc_stride} must be well below "
                f"backbone.max_length={run.backbone.max_length} (e.g. 128 for 384)"
            )
        if self.metric not in (None, "f1", "exact"):
            raise ConfigError(f"{where}: task.metric for extractive_qa is f1 or exact")


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
    DATA_ARGS: ClassVar[Mapping[str, str]] = {"format": "format"}
    # frozen: every token's states, stored once on disk (bf16, memory-mapped: windows of 384
    # tokens are too many to keep in memory)
    cache_mode: ClassVar[str | None] = "disk"
    eval_by_length: ClassVar[bool] = False  # windows of one example arrive together

    def __init__(
        self,
        *,
        max_length: int,
        version: str = "auto",
        doc_stride: int = 128,
        max_answer_length: int = 30,
        n_best: int = 20,
        nearest_answer: bool = False,
        metric: str | None = None,
        format: str = "auto",
    ) -> None:
        self.max_length, self.version, self.doc_stride = max_length, version, doc_stride
        self.max_answer_length, self.n_best = max_answer_length, n_best
        self.nearest_answer, self.metric, self.format = nearest_answer, metric, format
        self.null_threshold = 0.0
        self._dev_diffs: list[float] = []

    @property
    def main_metric(self) -> str:
        return self.metric or "f1"

    @property
    def greater_is_better(self) -> bool:
        return True

    # -- data -----------------------------------------------------------------------------------
    def read(self, path: str, labelled: bool = True) -> list[QAExample]:
        examples = read_squad(path, self.format, nearest=self.nearest_answer, labelled=labelled)
        if not examples:
            raise DataError(f"{path}: no questions")
        if labelled:
            seen: dict[str, str] = {}
            for e in examples:
                if not e.answers and not e.is_impossible:  # (unlabelled: BadRecords stay)
                    raise DataError(f"{e.where}: no answers and not marked is_impossible")
                if e.id in seen:  # scores are kept per id: a second one would replace the first
                    raise DataError(
                        f"{e.where}: question id {e.id!r} is also used by {seen[e.id]}; "
                        "give every question its own id"
                    )
                seen[e.id] = e.where
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
            "stride": self.doc_stride,
            "nearest": self.nearest_answer,
        }

    def featurize(
        self, examples: Sequence[QAExample], text: TextEncoder, labelled: bool = True
    ) -> Features:
        """Windows over each context; ``meta`` keeps the example index and character offsets
        (-1 outside the context) of every token.

        Examples are tokenized :data:`FEATURIZE_CHUNK` at a time: the tokenizer's output for a
        chunk (Python lists of ids and offset pairs, several times the size of the arrays kept)
        is dropped before the next, so featurizing a large set does not set the run's peak
        memory. The features are the same as from one call."""
        self._check_questions(examples, text)
        ids: list[np.ndarray] = []
        types: list[np.ndarray] | None = []
        offs_s: list[np.ndarray] = []
        offs_e: list[np.ndarray] = []
        owners: list[int] = []
        starts: list[int] = []
        ends: list[int] = []
        for first in range(0, len(examples), FEATURIZE_CHUNK):
            chunk = examples[first : first + FEATURIZE_CHUNK]
            win = text.windows(
                [e.question for e in chunk],
                [e.context for e in chunk],
                self.max_length,
                self.doc_stride,
            )
            for owner, s, t in zip(win.owner, win.offset_start, win.offset_end, strict=True):
                start, end = _label(chunk[owner], s, t) if labelled else (0, 0)
                starts.append(start)
                ends.append(end)
                owners.append(first + int(owner))
            ids.extend(win.input_ids)
            if win.token_type_ids is None:
                types = None
            elif types is not None:
                types.extend(win.token_type_ids)
            offs_s.extend(win.offset_start)
            offs_e.extend(win.offset_end)
            del win
        sequences = {"input_ids": ids}
        if types:
            sequences["token_type_ids"] = types
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
            "offset_start": offs_s,
            "offset_end": offs_e,
        }
        return Features(sequences, values, meta, sequence_lengths(ids))

    def _check_questions(self, examples: Sequence[QAExample], text: TextEncoder) -> None:
        encoded = text.encode([e.question for e in examples], None, 10 * self.max_length)
        for e, ids in zip(examples, encoded["input_ids"], strict=True):
            if len(ids) > self.max_length // 2:
                raise DataError(
                    f"{e.where}: the question is {len(ids)} tokens, too long for windows of "
                    f"backbone.max_length={self.max_length}; raise max_length or shorten it"
                )

    # -- model ----------------------------------------------------------------------------------
    def heads(self) -> dict[str, HeadSpec]:
        return {"span": HeadSpec(SpanHead)}

    def export(self) -> Export:
        return Export("question_answering")

    def predict_step(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Start and end logits stacked: (B, T, 2)."""
        out = model(**batch)
        return torch.stack([out["start_logits"], out["end_logits"]], dim=-1)

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
        k = self.n_best
        for s in np.argsort(-start_l)[:k]:
            if offs_s[s] < 0:
                continue
            for e in np.argsort(-end_l)[:k]:
                if offs_e[e] < 0 or e < s or e - s + 1 > self.max_answer_length:
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
        qid = where if item.get("id") is None else item["id"]
        if not isinstance(qid, str | int) or isinstance(qid, bool):
            raise DataError(f"{where}: 'id' must be a string or an integer, got {qid!r}")
        for key in ("question", "context"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise DataError(f"{where}: no {key} (record id {qid})")
        return QAExample(str(qid), item["question"].strip(), item["context"], where=where)


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
