"""``word_sense``: the sense of a target word or expression in context (preposition
supersenses in STREUSLE, SemEval-2007 preposition senses, any lexical sample).

The target's subwords are mean-pooled into one vector and a linear head predicts the sense
(:class:`~nlptune.heads.TargetHead`). With ``task.candidates`` a prediction is restricted to the
senses seen for the target's lemma in training (lemmas never seen in training back off to every
sense). transformers has no head for this: the encoder is saved in its family's format and the
head as ``sense_head.safetensors`` + ``sense_head.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field

from nlptune.backbones.base import Export, TextEncoder
from nlptune.config import TaskConfig
from nlptune.data.features import Features, collect, sequence_lengths
from nlptune.data.wsd import SenseExample, read_semeval, read_streusle
from nlptune.errors import ConfigError, DataError
from nlptune.heads import HeadSpec, TargetHead
from nlptune.registry import TASKS
from nlptune.tasks import metrics

logger = logging.getLogger("nlptune")


class WordSenseConfig(TaskConfig):
    type: str = Field("word_sense", description="task name (nlptune list tasks)")
    candidates: bool = Field(
        True, description="word_sense: only senses seen with the target's lemma in training"
    )

    def check_run(self, run: Any, where: str) -> None:
        if self.metric not in (None, "accuracy", "macro_f1"):
            raise ConfigError(f"{where}: task.metric for word_sense is accuracy or macro_f1")


@TASKS.register("word_sense")
class WordSense:
    """Classify the sense of a target word/expression, pooling its subwords; candidate masking."""

    Config = WordSenseConfig
    DATA_ARGS: ClassVar[Mapping[str, str]] = {"format": "format"}
    cache_mode: ClassVar[str | None] = "all"  # frozen: every token's state is stored once
    eval_by_length: ClassVar[bool] = True

    def __init__(
        self,
        *,
        max_length: int,
        candidates: bool = True,
        metric: str | None = None,
        format: str = "auto",
    ) -> None:
        self.max_length, self.candidates, self.metric, self.format = (
            max_length,
            candidates,
            metric,
            format,
        )
        self.labels: list[str] = []
        self.lemma_senses: dict[str, list[int]] = {}
        self.degenerate: str | None = None  # set by evaluate(): why predictions are degenerate

    @property
    def main_metric(self) -> str:
        return self.metric or "accuracy"

    @property
    def greater_is_better(self) -> bool:
        return True

    # -- data -----------------------------------------------------------------------------------
    def read(self, path: str, labelled: bool = True) -> list[Any]:
        fmt = self.format
        suffix = Path(path).suffix.lower()
        if fmt == "auto":
            fmt = (
                "streusle"
                if suffix == ".conllulex"
                else ("semeval" if suffix == ".xml" or Path(path).is_dir() else "jsonl")
            )
        if fmt == "streusle":
            examples = read_streusle(path, lenient=not labelled)
        elif fmt == "semeval":
            examples = read_semeval(path, keep_empty=not labelled)
        elif fmt == "jsonl":
            examples = self._read_jsonl(path)
        else:
            raise ConfigError(f"word_sense reads .conllulex, SemEval .xml or .jsonl, not {fmt}")
        if not examples:
            raise DataError(f"{path}: no targets")
        if labelled:
            for e in examples:
                if e.label is None:
                    raise DataError(f"{e.where}: no sense label")
        return examples

    def _read_jsonl(self, path: str) -> list[SenseExample]:
        from nlptune.data.readers import read_table

        table = read_table(path, "jsonl")
        return [self.input_example(row, table.where(i)) for i, row in enumerate(table.rows)]

    def fit(self, train: Sequence[SenseExample]) -> None:
        self.labels = sorted({str(e.label) for e in train})
        index = {name: i for i, name in enumerate(self.labels)}
        senses: dict[str, set[int]] = {}
        for e in train:
            senses.setdefault(e.lemma, set()).add(index[str(e.label)])
        self.lemma_senses = {lemma: sorted(s) for lemma, s in sorted(senses.items())}

    def encode_labels(self, examples: Sequence[SenseExample]) -> np.ndarray:
        """Label ids; a sense never seen in training (sense inventories are open: STREUSLE's dev
        set has construals its training set lacks) becomes -1, is counted wrong, and is
        reported once."""
        index = {name: i for i, name in enumerate(self.labels)}
        unseen = [e for e in examples if e.label not in index]
        if unseen:
            logger.warning(
                "%d targets have senses never seen in training (first: %s '%s'); "
                "they count as errors",
                len(unseen),
                unseen[0].where,
                unseen[0].label,
            )
        return np.asarray([index.get(str(e.label), -1) for e in examples], dtype=np.int64)

    def state(self) -> dict[str, Any]:
        return {"labels": self.labels, "lemma_senses": self.lemma_senses}

    def load_state(self, state: dict[str, Any]) -> None:
        self.labels, self.lemma_senses = list(state["labels"]), dict(state["lemma_senses"])

    def tune(self, dev_metrics: dict[str, float]) -> None:
        return None

    def cache_key(self) -> dict[str, Any]:
        return {
            "task": "word_sense",
            "labels": self.labels,
            "format": self.format,
        }

    def featurize(
        self, examples: Sequence[SenseExample], text: TextEncoder, labelled: bool = True
    ) -> Features:
        """Tokens of the sentence (a window of words centred on the target when the sentence is
        too long: the target itself is never cut) and a mask over the target's subwords."""
        ids, masks = [], []
        frame = len(text.prefix) + len(text.suffix)
        for e in examples:
            pieces = text.encode_words(e.words)
            tokens = [t for p in pieces for t in p]
            target = set(e.target)
            mask = [int(w in target) for w, p in enumerate(pieces) for _ in p]
            if not e.target:  # SemEval's <head></head>
                raise DataError(f"{e.where}: no target word (an empty <head>)")
            if not any(mask):  # a target word with no subwords
                raise DataError(
                    f"{e.where}: the target {[e.words[i] for i in e.target]} has "
                    "no subwords with this tokenizer"
                )
            self._check_span(e, mask, self.max_length - frame)
            lo, hi = _window(mask, self.max_length - frame)
            ids.append(np.asarray([*text.prefix, *tokens[lo:hi], *text.suffix], dtype=np.int32))
            pad_l, pad_r = [0] * len(text.prefix), [0] * len(text.suffix)
            masks.append(np.asarray([*pad_l, *mask[lo:hi], *pad_r], dtype=np.int64))
        values = {"labels": self.encode_labels(examples)} if labelled else {}
        return Features(
            {"input_ids": ids, "target_mask": masks}, values, lengths=sequence_lengths(ids)
        )

    def _check_span(self, e: SenseExample, mask: list[int], budget: int) -> None:
        """The target's subwords, first to last, must fit in one window of ``budget`` tokens:
        a window cut inside the target would pool only part of it (or none of it)."""
        inside = [i for i, m in enumerate(mask) if m]
        span = inside[-1] - inside[0] + 1
        if span > budget:
            name = f" (sent_id {e.id})" if e.id and e.id not in e.where else ""
            raise DataError(
                f"{e.where}{name}: the target spans {span} subword tokens from its first word "
                f"to its last, more than fit in a window of backbone.max_length="
                f"{self.max_length}; raise backbone.max_length or shorten the target "
                "(its words and those between them)"
            )

    # -- model ----------------------------------------------------------------------------------
    def heads(self) -> dict[str, HeadSpec]:
        return {"sense": HeadSpec(TargetHead, {"num_labels": len(self.labels)})}

    def export(self) -> Export:
        return Export("encoder", self.labels, extra="sense_head")

    def predict_step(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sense logits (B, L)."""
        out: torch.Tensor = model(**batch)["logits"]
        return out

    # -- decoding -------------------------------------------------------------------------------
    def _restrict(self, logits: np.ndarray, examples: Sequence[SenseExample]) -> np.ndarray:
        if not self.candidates:
            return logits
        out = logits.copy()
        for row, e in zip(out, examples, strict=True):
            allowed = self.lemma_senses.get(e.lemma)
            if allowed:  # unseen lemma: back off to every sense
                keep = np.full(len(row), -np.inf, dtype=np.float32)
                keep[allowed] = 0.0
                row += keep
        return out

    def evaluate(
        self,
        rows: Iterable[tuple[int, np.ndarray]],
        examples: Sequence[SenseExample],
        features: Features,
    ) -> dict[str, float]:
        """Accuracy and macro-F1; for SNACS labels also role-only and function-only accuracy."""
        logits = self._restrict(collect(rows, len(features)), examples)
        gold, pred = features.values["labels"], logits.argmax(axis=1)
        scores = metrics.single_label(gold, pred, len(self.labels))
        self.degenerate = metrics.one_class(
            [self.labels[i] for i in pred], [str(e.label) for e in examples], "target"
        )
        out = {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}
        if all(name.startswith("p.") for name in self.labels):
            golds = [_role_function(str(e.label)) for e in examples]
            preds = [_role_function(self.labels[p]) for p in pred]
            for k, key in enumerate(("role_accuracy", "function_accuracy")):
                out[key] = float(np.mean([g[k] == p[k] for g, p in zip(golds, preds, strict=True)]))
        return out

    def predictions(
        self,
        rows: Iterable[tuple[int, np.ndarray]],
        examples: Sequence[SenseExample],
        features: Features,
    ) -> list[dict[str, Any]]:
        logits = self._restrict(collect(rows, len(features)), examples)
        probs = metrics.softmax(logits)
        return [{"label": self.labels[int(p.argmax())], "score": float(p.max())} for p in probs]

    # -- prediction input -----------------------------------------------------------------------
    def line_input(self, line: str) -> Any:
        return line

    def input_example(self, item: Any, where: str) -> SenseExample:
        """A dict ``{words, target: [indices], lemma?, label?}``, or a line with the target
        marked as ``<head>...</head>``."""
        if isinstance(item, SenseExample):
            return item
        if isinstance(item, str) and "<head>" in item and "</head>" in item:
            before, rest = item.split("<head>", 1)
            head, after = rest.split("</head>", 1)
            left = before.split()
            span = tuple(range(len(left), len(left) + len(head.split())))
            tokens = tuple(left + head.split() + after.split())
            return SenseExample(tokens, span, head.strip().lower(), None, where)
        if isinstance(item, dict) and isinstance(item.get("words"), list) and item.get("target"):
            words = tuple(str(w) for w in item["words"])
            raw = item["target"]
            if not isinstance(raw, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in raw
            ):
                raise DataError(f"{where}: target must be a list of word indices, got {raw!r}")
            target = tuple(raw)
            if not all(0 <= i < len(words) for i in target):
                raise DataError(f"{where}: target {list(target)} is outside the {len(words)} words")
            lemma = str(item.get("lemma") or " ".join(words[i] for i in target)).lower()
            label = item.get("label")
            return SenseExample(words, target, lemma, None if label is None else str(label), where)
        raise DataError(f"{where}: expected {{words, target}} or a sentence with <head>...</head>")


def _window(mask: list[int], budget: int) -> tuple[int, int]:
    """The token range of at most ``budget`` tokens, centred on the masked (target) tokens."""
    if len(mask) <= budget:
        return 0, len(mask)
    inside = [i for i, m in enumerate(mask) if m]
    first, last = inside[0], inside[-1] + 1
    lo = max(0, min(first - (budget - (last - first)) // 2, len(mask) - budget))
    return lo, lo + budget


def _role_function(label: str) -> tuple[str, str]:
    role, _, function = label.partition("|")
    return role, function or role
