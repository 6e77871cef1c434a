"""The dev-set figure of ``nlptune report``: the run predicts its dev set (or ``--data``) with
:class:`~nlptune.predict.Predictor`, and the task's own predictions are set against the gold
labels the task's reader gives.

- one label an item (text classification, sentence pairs, word senses, POS-style tags): a
  confusion matrix (``confusion.png``);
- entity tags (BIO): strict per-type F1 as seqeval scores it (``per_type_f1.png``);
- several labels an item: per-label F1 (``per_label_f1.png``);
- a score (regression): gold against predicted (``scatter.png``).

Extractive QA, text-to-text and masked-LM runs have none (:data:`NO_FIGURE` says why). More
than :data:`TOP` labels: the most frequent ones in the gold data.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nlptune.errors import NlptuneError

logger = logging.getLogger("nlptune")
TOP = 30
NO_FIGURE = {
    "extractive_qa": "Extractive QA is scored by exact match and F1 over answer spans (in the "
    "metrics table); there are no labels to confuse, so the report has curves and metrics only.",
    "text_to_text": "Text-to-text output is free text (scored by BLEU and chrF in the metrics "
    "table): curves and metrics only.",
    "masked_lm": "Masked-LM training has no labels (perplexity is in the metrics table): curves "
    "and metrics only.",
}


@dataclass
class DevFigure:
    """What to draw of the dev predictions; ``kind`` is ``confusion``, ``bars`` or
    ``scatter``, or empty when there is no figure (``note`` says why)."""

    kind: str = ""
    file: str = ""
    title: str = ""
    note: str = ""
    labels: list[str] = field(default_factory=list)
    matrix: Any = None  # (L, L) counts: gold rows, predicted columns
    values: list[float] = field(default_factory=list)  # bars: F1 per label
    support: list[int] = field(default_factory=list)  # bars: gold count per label
    gold: list[float] = field(default_factory=list)  # scatter
    pred: list[float] = field(default_factory=list)
    data: str = ""  # the file predicted
    examples: int = 0


def dev_figure(folder: Path, config: dict[str, Any], data: str | None) -> tuple[DevFigure, Any]:
    """The figure for the run in ``folder`` and the loaded task (None where no model loaded).

    ``data``: a labelled file given by the user (its errors are raised); None for the run's
    dev set, whose absence or failure becomes the figure's note (and a warning)."""
    kind = str((config.get("task") or {}).get("type", ""))
    if kind in NO_FIGURE:
        if data is not None:
            logger.warning("warning: --data is not used: a %s run has no dev-set figure", kind)
        return DevFigure(note=NO_FIGURE[kind]), None
    source = data if data is not None else _dev_file(config)
    if isinstance(source, DevFigure):
        return source, None
    from nlptune.predict import Predictor

    try:
        predictor = Predictor.from_dir(folder)
        examples = predictor.task.read(source)
        predictor.task.encode_labels(examples)  # the label checks `nlptune evaluate` makes
        predictions = predictor.predict(examples)
    except NlptuneError as err:
        if data is not None:
            raise
        logger.warning("warning: can't predict the dev set %s: %s", source, err)
        return DevFigure(note=f"The dev set {source} could not be predicted: {err}"), None
    figure = figure_of(predictor.task, examples, predictions)
    figure.data, figure.examples = source, len(examples)
    return figure, predictor.task


def _dev_file(config: dict[str, Any]) -> str | DevFigure:
    """The run's dev file, or the note that says why there is none here."""
    from nlptune.inputs import input_exists

    data = config.get("data") or {}
    dev = data.get("dev")
    hint = "; give labelled data with --data FILE for it"
    if not isinstance(dev, str) or not dev:
        split = " (the dev set was split off the training data)" if data.get("dev_fraction") else ""
        return DevFigure(note=f"The run has no dev file{split}, so no dev-set figure{hint}.")
    if not input_exists(Path(dev)) and data.get("format") != "hf":
        logger.warning("warning: the run's dev set %s is not here: no dev-set figure", dev)
        return DevFigure(note=f"The run's dev set {dev} is not here, so no dev-set figure{hint}.")
    return dev


def figure_of(task: Any, examples: Sequence[Any], predictions: list[dict[str, Any]]) -> DevFigure:
    """The figure for ``predictions`` (the task's own output) against ``examples``' labels."""
    first = predictions[0] if predictions else {}
    order = [str(x) for x in getattr(task, "labels", None) or []]
    if "tags" in first and all(getattr(e, "tags", None) is not None for e in examples):
        gold = [list(e.tags) for e in examples]
        pred = [list(p["tags"]) for p in predictions]
        if getattr(task, "is_bio", False):
            return entity_bars(gold, pred)
        flat_gold = [t for tags in gold for t in tags]
        flat_pred = [t for tags in pred for t in tags]
        return confusion(flat_gold, flat_pred, order, "word")
    labels: list[Any] = [getattr(e, "label", None) for e in examples]
    if any(x is None for x in labels):
        return DevFigure(note="The data has no gold labels, so no dev-set figure.")
    if "label" in first:
        items = "target" if hasattr(examples[0], "lemma") else "example"
        return confusion([str(x) for x in labels], [p["label"] for p in predictions], order, items)
    if "labels" in first:
        gold_sets = [set(x) if isinstance(x, tuple) else {str(x)} for x in labels]
        return label_bars(gold_sets, [set(p["labels"]) for p in predictions], order)
    if "score" in first:
        return DevFigure(
            kind="scatter",
            file="scatter.png",
            title="Gold against predicted score",
            gold=[float(x) for x in labels],
            pred=[float(p["score"]) for p in predictions],
        )
    return DevFigure(note="This task's predictions have no label to compare: no dev-set figure.")


def confusion(gold: list[str], pred: list[str], order: list[str], item: str) -> DevFigure:
    """A confusion matrix (gold rows, predicted columns) over ``order`` (the model's labels;
    any other name seen is added); above :data:`TOP` names, the most frequent in ``gold``."""
    names = order + sorted((set(gold) | set(pred)) - set(order))
    counts, guessed = Counter(gold), Counter(pred)
    note = ""
    if len(names) > TOP:
        rank = {n: i for i, n in enumerate(names)}
        total = len(names)
        names = sorted(names, key=lambda n: (-counts[n], -guessed[n], rank[n]))[:TOP]
        names.sort(key=rank.__getitem__)
        note = (
            f"The {TOP} most frequent of {total} labels (by gold count); {item}s whose gold or "
            "predicted label is another one are left out of the matrix."
        )
    index = {n: i for i, n in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    for g, p in zip(gold, pred, strict=True):
        if g in index and p in index:
            matrix[index[g], index[p]] += 1
    right = sum(g == p for g, p in zip(gold, pred, strict=True))
    title = f"Confusion matrix: {len(gold)} {item}s, accuracy {right / max(len(gold), 1):.3f}"
    return DevFigure(
        kind="confusion", file="confusion.png", title=title, note=note, labels=names, matrix=matrix
    )


def entity_bars(gold: list[list[str]], pred: list[list[str]]) -> DevFigure:
    """Strict IOB2 F1 per entity type (seqeval, as the task scores), by gold count."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    report = classification_report(
        gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
    )
    rows = [(name, r) for name, r in report.items() if not name.endswith("avg")]
    if not rows:
        return DevFigure(note="The data has no entities, so no per-type F1.")
    micro = report.get("micro avg", {}).get("f1-score", 0.0)
    figure = _bars(
        [(str(n), float(r["f1-score"]), int(r["support"])) for n, r in rows],
        "per_type_f1.png",
        f"F1 per entity type (strict, overall {micro:.3f})",
        "entity types",
    )
    return figure


def label_bars(gold: list[set[str]], pred: list[set[str]], order: list[str]) -> DevFigure:
    """F1 per label of a multi-label task (each label a yes/no decision per example)."""
    names = order + sorted(set().union(*gold, *pred) - set(order))
    rows = []
    for name in names:
        tp = sum(name in g and name in p for g, p in zip(gold, pred, strict=True))
        fp = sum(name not in g and name in p for g, p in zip(gold, pred, strict=True))
        fn = sum(name in g and name not in p for g, p in zip(gold, pred, strict=True))
        rows.append((name, 2 * tp / max(2 * tp + fp + fn, 1), tp + fn))
    return _bars(rows, "per_label_f1.png", f"F1 per label ({len(gold)} examples)", "labels")


def _bars(rows: list[tuple[str, float, int]], file: str, title: str, what: str) -> DevFigure:
    note = ""
    if len(rows) > TOP:
        note = f"The {TOP} most frequent of {len(rows)} {what} (by gold count)."
        rows = sorted(rows, key=lambda r: -r[2])[:TOP]
    return DevFigure(
        kind="bars",
        file=file,
        title=title,
        note=note,
        labels=[r[0] for r in rows],
        values=[r[1] for r in rows],
        support=[r[2] for r in rows],
    )
