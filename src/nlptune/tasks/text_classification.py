"""``text_classification``: one label, several labels (sigmoid + threshold) or a score per text.

The model is transformers' sequence-classification class for the backbone, so a saved run loads
with ``AutoModelForSequenceClassification`` and ``pipeline("text-classification")``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from nlptune.backbones.base import Export, TextEncoder
from nlptune.config import TaskConfig
from nlptune.data.examples import BadRecord, TextExample, guarded
from nlptune.data.features import Features, collect, sequence_lengths
from nlptune.data.readers import Table, read_table
from nlptune.errors import ConfigError, DataError
from nlptune.heads import ClassificationHead, HeadSpec
from nlptune.registry import TASKS
from nlptune.tasks import metrics

Problem = Literal["auto", "single_label", "multi_label", "regression"]
_MAIN_METRIC = {"single_label": "accuracy", "multi_label": "micro_f1", "regression": "pearson"}
_HF_PROBLEM = {
    "single_label": "single_label_classification",
    "multi_label": "multi_label_classification",
    "regression": "regression",
}


class TextClassificationConfig(TaskConfig):
    type: str = Field("text_classification", description="task name (nlptune list tasks)")
    problem: Problem = Field(
        "auto",
        description="single_label | multi_label | regression; auto = multi_label for a list of "
        "label columns or list-valued labels, regression for non-integer numbers",
    )
    threshold: float = Field(0.5, gt=0, lt=1, description="multi-label: sigmoid cut-off")
    labels: list[str] | None = Field(
        None, description="label names in a fixed order (default: sorted labels seen in training)"
    )

    def check_run(self, run: Any, where: str) -> None:
        data, pair = run.data, self.type != "text_classification"
        if pair and data.text_pair is None:
            raise ConfigError(
                f"{where}: task {self.type} needs data.text_pair (the second text's column)"
            )
        if not pair and data.text_pair is not None:
            raise ConfigError(
                f"{where}: data.text_pair is set but task text_classification reads one text; "
                "use task.type=sentence_pair for pairs"
            )
        problem = _columns_problem(data.label, data.label_sep)
        if problem is not None:
            raise ConfigError(f"{where}: {problem}")
        if isinstance(data.label, list) and self.problem not in ("auto", "multi_label"):
            raise ConfigError(
                f"{where}: a list of label columns means multi-label, not {self.problem}"
            )
        names = TextClassification.metric_names
        if self.metric is not None and self.problem != "auto":
            if self.metric not in names(self.problem):
                raise ConfigError(
                    f"{where}: task.metric={self.metric} is not a {self.problem} metric; choose "
                    f"one of {', '.join(names(self.problem))}"
                )
        elif self.metric is not None:  # auto: a metric of some problem (checked again in fit)
            every = sorted({m for kind in _MAIN_METRIC for m in names(kind)})
            if self.metric not in every:
                raise ConfigError(
                    f"{where}: task.metric={self.metric} is not a metric of {self.type}; choose "
                    f"one of {', '.join(every)}"
                )


@dataclass(frozen=True)
class Columns:
    """Where a table keeps text, second text and labels (the data section's reading keys)."""

    text: str | int = "text"
    text_pair: str | int | None = None
    label: str | int | list[str | int] = "label"
    label_sep: str | None = None
    format: str = "auto"
    header: bool | None = None
    quoting: str = "auto"
    hf_subset: str | None = None


def _columns_problem(label: Any, label_sep: str | None) -> str | None:
    """What is wrong with the label keys of the data section (before any training), or None."""
    if isinstance(label, list) and not label:
        return (
            "data.label is an empty list; name the label column (data.label=label), or list the "
            "0/1 columns of a multi-label task (data.label=[toxic,obscene])"
        )
    if label_sep == "":
        return (
            "data.label_sep is empty; set it to the text between the labels of a cell (e.g. "
            "data.label_sep='|'), or leave it unset (null) for one label a cell"
        )
    return None


def _read_examples(path: str, data: Columns, pair: bool, labelled: bool) -> list[Any]:
    problem = _columns_problem(data.label, data.label_sep)
    if problem is not None:
        raise ConfigError(problem)
    columns: list[str | int] = [data.text]
    if pair:
        if data.text_pair is None:
            raise ConfigError("data.text_pair is not set: name the column with the second text")
        columns.append(data.text_pair)
    label_cols = data.label if isinstance(data.label, list) else [data.label]
    table = read_table(
        path,
        data.format,
        columns=columns + label_cols,
        header=data.header,
        quoting=data.quoting,
        hf_subset=data.hf_subset,
        lenient=not labelled,
    )
    if not table.rows:
        raise DataError(f"{path}: no examples")
    if not labelled:  # prediction: a row that can't be read is a BadRecord in its place
        firsts, other = table.column(data.text), data.text_pair
        seconds = table.column(other) if pair and other is not None else None

        def row(i: int) -> TextExample:
            if table.error(i):
                raise DataError(str(table.error(i)))
            second = _text(seconds[i], table, i, other) if seconds and other is not None else None
            first = _text(firsts[i], table, i, data.text)
            return TextExample(first, second, None, table.where(i), fields=table.rows[i])

        return [guarded(True, table.where(i), partial(row, i)) for i in range(len(firsts))]
    texts = [_text(v, table, i, data.text) for i, v in enumerate(table.column(data.text))]
    pairs: list[str | None] = (
        [_text(v, table, i, data.text_pair) for i, v in enumerate(table.column(data.text_pair))]
        if pair and data.text_pair is not None
        else [None] * len(texts)
    )
    labels = _labels(table, data) if labelled else [None] * len(texts)
    wheres = [table.where(i) for i in range(len(texts))]
    return [TextExample(*row) for row in zip(texts, pairs, labels, wheres, strict=True)]


def _text(value: Any, table: Table, i: int, column: str | int) -> str:
    if value is None:
        raise DataError(f"{table.where(i)}: column '{column}' is empty")
    if not isinstance(value, str):
        raise DataError(
            f"{table.where(i)}: column '{column}' holds {_kind(value)}, not text; write the "
            f"text as a string"
        )
    return value


def _kind(value: Any) -> str:
    """A JSON value's kind, for messages: ``a list``, ``an object (dict)``, ``the number 3``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object (dict)"
    return f"a {type(value).__name__}"


def _labels(table: Table, data: Columns) -> list[Any]:
    if isinstance(data.label, list):  # one 0/1 column per label
        return _label_columns(table, data.label)
    column, sep = data.label, data.label_sep
    out: list[Any] = []
    for i, value in enumerate(table.column(column)):
        label = _label(value, table, i, column)
        if sep is not None and isinstance(label, str):
            label = tuple(v.strip() for v in label.split(sep) if v.strip())
        if out and isinstance(label, tuple) != isinstance(out[0], tuple):  # the first row decides
            raise DataError(_mixed(table.where(i), label, table.where(0)))
        out.append(label)
    _no_missing_numbers(out, table, column)
    return out


def _label_columns(table: Table, columns: list[str | int]) -> list[Any]:
    keys = [table.key(c) for c in columns]
    out: list[Any] = []
    for i, row in enumerate(table.rows):
        on = []
        for key in keys:
            cell = str(row.get(key, "")).strip().lower()
            if cell not in ("0", "1", "true", "false", "0.0", "1.0"):
                raise DataError(f"{table.where(i)}: label column '{key}' must be 0/1, got {cell!r}")
            if cell in ("1", "true", "1.0"):
                on.append(key)
        out.append(tuple(on))
    return out


def _label(value: Any, table: Table, i: int, column: str | int) -> str | tuple[str, ...]:
    """One label cell: a class name (a JSON number as its shortest name: 1.0 is ``1``), or a
    tuple of them for a list; a missing, non-finite or nested value is a DataError."""
    where = table.where(i)
    if isinstance(value, list):
        return tuple(
            _one_label(v, f"{where}: a label in the list in column '{column}'") for v in value
        )
    return _one_label(value, f"{where}: the label in column '{column}'")


def _one_label(value: Any, what: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{what} is missing; every example needs a label")
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(
            f"{what} is {value}, not a label; a missing label is an error, not a number: give "
            "the example its label or remove it"
        )
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 1.0 and 1 are one class
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise DataError(
            f"{what} is {_kind(value)}; a label is a string or a number (multi-label: a list of "
            "them)"
        )
    return value.strip()


def _mixed(where: str, label: Any, first: str) -> str:
    kind, other = ("a list", "one label") if isinstance(label, tuple) else ("one label", "a list")
    return (
        f"{where}: the label is {kind} but at {first} it is {other}; write every label as a list "
        '(multi-label, e.g. ["sports"]) or every label as one value'
    )


_MISSING = frozenset({"na", "n/a", "nan", "null", "none"})


def _no_missing_numbers(labels: list[Any], table: Table, column: str | int) -> None:
    """Among numeric labels, ``nan``/``inf``/``NA``/``null`` marks a missing value, not a class
    (nor a score): a DataError naming the first one, before it makes the task regression."""
    if not any(isinstance(x, str) and _number(x) is not None and not _missing(x) for x in labels):
        return
    for i, label in enumerate(labels):
        if _missing(label):
            raise DataError(
                f"{table.where(i)}: the label in column '{column}' is {label!r}, a missing "
                "value among numeric labels; every example needs a label: give it one or "
                "remove the example"
            )


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _missing(label: Any) -> bool:
    """``nan``, ``inf``, ``NA``, ``null``, ``None``: how tables mark a missing number."""
    if not isinstance(label, str):
        return False
    number = _number(label)
    return label.lower() in _MISSING if number is None else not math.isfinite(number)


def infer_problem(examples: Sequence[TextExample]) -> str:
    """multi_label for tuple labels, regression for numbers that are not all integers. Tuple
    labels in some examples and single labels in others, or a number that is not finite, is a
    DataError naming the first such example."""
    lists = [isinstance(e.label, tuple) for e in examples]
    if any(lists):
        if not all(lists):
            odd = examples[lists.index(not lists[0])]
            raise DataError(_mixed(odd.where, odd.label, examples[0].where))
        return "multi_label"
    try:
        numbers = [float(e.label) for e in examples]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "single_label"
    for e, n in zip(examples, numbers, strict=True):
        if not math.isfinite(n):
            raise DataError(f"{e.where}: label {e.label!r} is not a finite number")
    return "regression" if any(not n.is_integer() for n in numbers) else "single_label"


class TextClassification:
    """Classify or score a text; :class:`SentencePair` is the same with a second text."""

    Config: type[TaskConfig] = TextClassificationConfig
    DATA_ARGS: ClassVar[Mapping[str, str]] = {
        k: k
        for k in (
            "text",
            "text_pair",
            "label",
            "label_sep",
            "format",
            "header",
            "quoting",
            "hf_subset",
        )
    }
    cache_mode: ClassVar[str | None] = "first"  # frozen: one vector per example, stored once
    eval_by_length: ClassVar[bool] = True
    pair = False

    def __init__(
        self,
        *,
        max_length: int,
        problem: str = "auto",
        threshold: float = 0.5,
        labels: list[str] | None = None,
        metric: str | None = None,
        **columns: Any,
    ) -> None:
        self.max_length, self.threshold, self.metric = max_length, threshold, metric
        self.data = Columns(**columns)
        self.problem: str = problem
        self.degenerate: str | None = None  # set by evaluate(): why predictions are degenerate
        self.labels: list[str] = list(labels or [])

    @staticmethod
    def metric_names(problem: str) -> list[str]:
        return {
            "single_label": ["accuracy", "macro_f1", "mcc", "f1"],
            "multi_label": ["micro_f1", "macro_f1", "subset_accuracy"],
            "regression": ["pearson", "spearman", "mse"],
        }[problem]

    @property
    def main_metric(self) -> str:
        return self.metric or _MAIN_METRIC[self.problem]

    @property
    def greater_is_better(self) -> bool:
        return self.main_metric != "mse"

    # -- data -----------------------------------------------------------------------------------
    def read(self, path: str, labelled: bool = True) -> list[Any]:
        return _read_examples(path, self.data, self.pair, labelled)

    def fit(self, train: Sequence[TextExample]) -> None:
        """Fix the problem type and the label set from the training examples."""
        if self.problem == "auto":
            self.problem = infer_problem(train)
            if self.metric is not None and self.metric not in self.metric_names(self.problem):
                raise ConfigError(
                    f"task.metric={self.metric} is not a metric of {self.problem}, which the "
                    f"training labels make this task; choose one of "
                    f"{', '.join(self.metric_names(self.problem))} or set task.problem"
                )
        if self.problem == "regression":
            self.labels = []
            for e in train:
                self._score(self._scalar(e))
            return
        if self.problem == "single_label":
            for e in train:
                self._scalar(e)
        if not self.labels:
            seen: set[str] = set()
            for e in train:
                seen.update(e.label if isinstance(e.label, tuple) else [str(e.label)])
            self.labels = sorted(seen, key=_natural)
        if len(self.labels) < 2 and self.problem == "single_label":
            raise DataError(
                f"training data has a single label ({self.labels[0]}); need at least two classes"
            )

    def state(self) -> dict[str, Any]:
        """What a saved run keeps of the task (``labels.json``)."""
        return {"problem": self.problem, "labels": self.labels}

    def load_state(self, state: dict[str, Any]) -> None:
        """Set the state :meth:`fit` found (when loading a saved run)."""
        self.problem, self.labels = state["problem"], list(state["labels"])

    def tune(self, dev_metrics: dict[str, float]) -> None:
        """Settings fitted on the dev set after training (none for classification)."""

    @staticmethod
    def _score(e: TextExample) -> float:
        try:
            score = float(e.label)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise DataError(f"{e.where}: regression label {e.label!r} is not a number") from None
        if not math.isfinite(score):
            raise DataError(f"{e.where}: regression label {e.label!r} is not a finite number")
        return score

    def _scalar(self, e: TextExample) -> TextExample:
        """``e``, whose label must be one label (single-label, regression), not a list."""
        if isinstance(e.label, tuple):
            raise DataError(
                f"{e.where}: the label is a list, but this task is {self.problem} (one label an "
                "example); write one label, or set task.problem=multi_label"
            )
        return e

    def encode_labels(self, examples: Sequence[TextExample]) -> np.ndarray:
        if self.problem == "regression":
            return np.array([self._score(self._scalar(e)) for e in examples], dtype=np.float32)
        index = {name: i for i, name in enumerate(self.labels)}
        if self.problem == "multi_label":
            out = np.zeros((len(examples), len(self.labels)), dtype=np.float32)
            for row, e in enumerate(examples):
                names = e.label if isinstance(e.label, tuple) else (str(e.label),)
                for name in names:
                    out[row, self._index(index, name, e)] = 1.0
            return out
        return np.array(
            [self._index(index, str(self._scalar(e).label), e) for e in examples], dtype=np.int64
        )

    def _index(self, index: dict[str, int], name: str, e: TextExample) -> int:
        if name not in index:
            raise DataError(
                f"{e.where}: label '{name}' never occurs in the training data "
                f"(known labels: {', '.join(self.labels)})"
            )
        return index[name]

    def featurize(
        self, examples: Sequence[TextExample], text: TextEncoder, labelled: bool = True
    ) -> Features:
        pairs = [e.text_pair or "" for e in examples] if self.pair else None
        sequences = text.encode([e.text for e in examples], pairs, self.max_length)
        values = {"labels": self.encode_labels(examples)} if labelled else {}
        return Features(sequences, values, lengths=sequence_lengths(sequences["input_ids"]))

    def cache_key(self) -> dict[str, Any]:
        return {
            "task": type(self).__name__,
            "problem": self.problem,
            "labels": self.labels,
            "data": asdict(self.data),
        }

    # -- model ----------------------------------------------------------------------------------
    def heads(self) -> dict[str, HeadSpec]:
        n = 1 if self.problem == "regression" else len(self.labels)
        args = {"num_labels": n, "problem": self.problem}
        return {"classifier": HeadSpec(ClassificationHead, args)}

    def export(self) -> Export:
        return Export(
            "sequence_classification",
            self.labels or ["score"],
            {"problem_type": _HF_PROBLEM[self.problem]},
        )

    def predict_step(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The logits (B, L)."""
        out: torch.Tensor = model(**batch)["logits"]
        return out

    def evaluate(
        self,
        rows: Iterable[tuple[int, np.ndarray]],
        examples: Sequence[TextExample],
        features: Features,
    ) -> dict[str, float]:
        """Metrics from streamed ``(index, logits)`` rows."""
        return self.score(collect(rows, len(features)), features.values["labels"])

    def line_input(self, line: str) -> Any:
        """One line of a ``.txt`` input file: a text, or two texts split by one TAB (another
        number of TABs is that line's error, not a silent guess at where the pair splits)."""
        if self.pair:
            tabs = line.count("\t")
            if tabs != 1:
                return BadRecord("", f"expected two texts separated by one TAB, found {tabs} TABs")
            text, _, pair = line.partition("\t")
            return (text, pair)
        return line

    def input_example(self, item: Any, where: str) -> TextExample:
        """A prediction input (a text, a ``(text, text_pair)`` tuple or a dict) as an example."""
        if isinstance(item, TextExample):
            return item
        if isinstance(item, str):
            if self.pair:
                raise DataError(f"{where}: this model reads text pairs; give (text, text_pair)")
            return TextExample(item, where=where)
        if isinstance(item, tuple):
            if len(item) != 2 or not all(isinstance(x, str) for x in item):
                raise DataError(f"{where}: a pair is two texts, got {item!r:.80}")
            return TextExample(item[0], item[1], where=where)
        if not isinstance(item, dict):
            raise DataError(
                f"{where}: expected a string, a pair or a dict, got {type(item).__name__}"
            )
        text = self._field(item, self.data.text, "text", where)
        pair = self._field(item, self.data.text_pair, "text_pair", where) if self.pair else None
        return TextExample(text, pair, where=where)

    @staticmethod
    def _field(item: dict[str, Any], column: Any, default: str, where: str) -> str:
        keys = [k for k in (column, default) if isinstance(k, str)]
        key = next((k for k in keys if k in item), None)
        if key is None:
            raise DataError(f"{where}: no '{keys[0]}' field in {sorted(item)}")
        value = item[key]
        if not isinstance(value, str):
            raise DataError(f"{where}: field '{key}' holds {_kind(value)}, not text")
        return value

    def predictions(
        self,
        rows: Iterable[tuple[int, np.ndarray]],
        examples: Sequence[TextExample],
        features: Features,
    ) -> list[dict[str, Any]]:
        return self.decode(collect(rows, len(features)))

    def decode(self, logits: np.ndarray) -> list[dict[str, Any]]:
        """Predictions for logits (N, L): ``label``+``score``, ``labels`` or ``score``."""
        if self.problem == "regression":
            return [{"score": float(x)} for x in logits[:, 0]]
        if self.problem == "multi_label":
            probs = 1.0 / (1.0 + np.exp(-logits))
            return [
                {
                    "labels": [self.labels[j] for j in np.flatnonzero(p >= self.threshold)],
                    "scores": {name: float(v) for name, v in zip(self.labels, p, strict=True)},
                }
                for p in probs
            ]
        probs = metrics.softmax(logits)
        best = probs.argmax(axis=1)
        return [
            {"label": self.labels[j], "score": float(p[j])}
            for j, p in zip(best, probs, strict=True)
        ]

    def score(self, logits: np.ndarray, gold: np.ndarray) -> dict[str, float]:
        """Metrics of logits (N, L) against encoded gold labels."""
        if self.problem == "regression":
            return metrics.regression(gold.astype(np.float64), logits[:, 0].astype(np.float64))
        if self.problem == "multi_label":
            probs = 1.0 / (1.0 + np.exp(-logits))
            return metrics.multi_label(gold.astype(int), (probs >= self.threshold).astype(int))
        pred = logits.argmax(axis=1)
        self.degenerate = metrics.one_class(
            [self.labels[i] for i in pred], [self.labels[i] for i in gold]
        )
        return metrics.single_label(gold, pred, len(self.labels))


def _natural(name: str) -> tuple[int, float | str]:
    try:
        return (0, float(name))
    except ValueError:
        return (1, name)


TASKS.register("text_classification")(TextClassification)
