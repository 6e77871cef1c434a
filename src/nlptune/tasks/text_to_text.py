"""``text_to_text``: any text -> text with an encoder-decoder (translation, generative QA).

Sources are the text (after an optional T5-style ``prefix``), targets the decoder's labels
(padded with -100). Evaluation and prediction generate (greedy or beam search, settings saved in
the model's ``generation_config.json``) in length-sorted batches and score detokenized text with
sacreBLEU (corpus BLEU and chrF, each with its signature) and, for SQuAD data, the official
EM/F1. Readers: parallel text files (``data.source_lang``/``target_lang``), CSV/TSV/JSON Lines or
``datasets`` with source (``data.text``) and target (``data.target``) columns, and SQuAD JSON
(question + context -> answer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from nlptune.backbones.base import Export
from nlptune.config import TaskConfig
from nlptune.data.examples import BadRecord, guarded
from nlptune.data.features import Features, sequence_lengths
from nlptune.data.parallel import read_parallel
from nlptune.data.readers import read_table
from nlptune.data.squad import read_squad
from nlptune.errors import ConfigError, DataError
from nlptune.heads import HeadSpec, Seq2SeqLMHead
from nlptune.registry import TASKS
from nlptune.tasks import squad_metrics

METRICS = ("bleu", "chrf", "exact", "f1")
Tokenize = Literal["13a", "intl", "zh", "char", "none"]


class TextToTextConfig(TaskConfig):
    type: str = Field("text_to_text", description="task name (nlptune list tasks)")
    prefix: str = Field(
        "",
        description="text_to_text: put before every source, e.g. 'translate English to German: '",
    )
    max_target_length: int = Field(
        128, ge=1, description="text_to_text: longest target in tokens; longer ones are truncated"
    )
    num_beams: int = Field(1, ge=1, description="text_to_text: beam size (1: greedy)")
    max_new_tokens: int | None = Field(
        None, ge=1, description="text_to_text: longest generation (default: max_target_length)"
    )
    length_penalty: float = Field(
        1.0, description="text_to_text: beam search length penalty (>1 favours longer output)"
    )
    no_repeat_ngram_size: int = Field(
        0, ge=0, description="text_to_text: never repeat an n-gram of this size (0: off)"
    )
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="text_to_text: label smoothing of the token cross-entropy"
    )
    bleu_tokenize: Tokenize = Field(
        "13a", description="text_to_text: sacreBLEU tokenizer (13a is WMT's standard)"
    )
    lowercase: bool = Field(
        False, description="text_to_text: case-insensitive BLEU/chrF (named in the signature)"
    )

    def check_run(self, run: Any, where: str) -> None:
        if self.metric is not None and self.metric not in METRICS:
            raise ConfigError(
                f"{where}: task.metric={self.metric} is not a text_to_text metric; choose one of "
                f"{', '.join(METRICS)} (exact/f1 need SQuAD data)"
            )
        data = run.data
        if (data.source_lang is None) != (data.target_lang is None):
            raise ConfigError(
                f"{where}: set both data.source_lang and data.target_lang for parallel text "
                "files, or neither"
            )


@dataclass(frozen=True)
class Seq2SeqExample:
    """A source text and its target (None for unlabelled input); ``answers`` holds every gold
    answer of a SQuAD question (for EM/F1)."""

    source: str
    target: str | None = None
    where: str = ""
    answers: tuple[str, ...] = ()
    id: str = ""


@dataclass(frozen=True)
class Columns:
    text: str | int = "text"
    target: str | int = "target"
    source_lang: str | None = None
    target_lang: str | None = None
    format: str = "auto"
    header: bool | None = None
    quoting: str = "auto"
    hf_subset: str | None = None


def qa_source(question: str, context: str) -> str:
    """A SQuAD question as one source text (the T5 layout)."""
    return f"question: {question.strip()} context: {context.strip()}"


def _is_squad(path: str, fmt: str) -> bool:
    if fmt == "squad":
        return True
    p = Path(path)
    if fmt != "auto" or p.suffix.lower() != ".json" or not p.is_file():
        return False
    with open(p, encoding="utf-8-sig", errors="replace") as f:
        head = f.read(4096)
    return head.lstrip().startswith("{") and '"data"' in head


class TextToText:
    """Generate a target text from a source text."""

    Config: type[TaskConfig] = TextToTextConfig
    DATA_ARGS: ClassVar[Mapping[str, str]] = {
        k: k
        for k in (
            "text",
            "target",
            "source_lang",
            "target_lang",
            "format",
            "header",
            "quoting",
            "hf_subset",
        )
    }
    cache_mode: ClassVar[str | None] = None  # the decoder runs every step
    eval_by_length: ClassVar[bool] = True

    def __init__(
        self,
        *,
        max_length: int,
        prefix: str = "",
        max_target_length: int = 128,
        num_beams: int = 1,
        max_new_tokens: int | None = None,
        length_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        label_smoothing: float = 0.0,
        bleu_tokenize: str = "13a",
        lowercase: bool = False,
        metric: str | None = None,
        **columns: Any,
    ) -> None:
        self.max_length, self.prefix, self.metric = max_length, prefix, metric
        self.max_target_length, self.label_smoothing = max_target_length, label_smoothing
        self.generation = {
            "num_beams": num_beams,
            "max_new_tokens": max_new_tokens or max_target_length,
            "length_penalty": length_penalty,
            "no_repeat_ngram_size": no_repeat_ngram_size,
        }
        self.bleu_tokenize, self.lowercase = bleu_tokenize, lowercase
        self.data = Columns(**columns)
        self.text: Any = None

    @property
    def main_metric(self) -> str:
        return self.metric or "bleu"

    @property
    def greater_is_better(self) -> bool:
        return True

    def use_text(self, text: Any) -> None:
        """The text encoder that turns generated ids back into text."""
        self.text = text

    # -- data -----------------------------------------------------------------------------------
    def read(self, path: str, labelled: bool = True) -> list[Any]:
        d = self.data
        if d.source_lang is not None:
            rows = read_parallel(path, d.source_lang, d.target_lang if labelled else None)
            return [r if isinstance(r, BadRecord) else Seq2SeqExample(*r) for r in rows]
        if _is_squad(path, d.format):
            return [
                q
                if isinstance(q, BadRecord)
                else Seq2SeqExample(
                    qa_source(q.question, q.context),
                    q.answers[0][0] if q.answers else "",
                    q.where,
                    tuple(a for a, _ in q.answers),
                    q.id,
                )
                for q in read_squad(path, "auto", nearest=True, labelled=labelled)
            ]
        columns = [d.text, d.target] if labelled else [d.text]
        table = read_table(
            path,
            d.format,
            columns=columns,
            header=d.header,
            quoting=d.quoting,
            hf_subset=d.hf_subset,
            lenient=not labelled,
        )
        if not table.rows:
            raise DataError(f"{path}: no examples")
        sources = table.column(d.text)
        targets = table.column(d.target) if labelled else [None] * len(sources)
        out = []
        for i, (s, t) in enumerate(zip(sources, targets, strict=True)):
            make = partial(self._row, s, t, table.where(i), labelled, table.error(i))
            out.append(guarded(not labelled, table.where(i), make))
        return out

    def _row(
        self, s: Any, t: Any, where: str, labelled: bool, error: str | None = None
    ) -> Seq2SeqExample:
        if error:
            raise DataError(error)
        d = self.data
        for column, value in ((d.text, s), (d.target, t)):
            if isinstance(value, (list, dict)):
                raise DataError(
                    f"{where}: column '{column}' holds a {type(value).__name__}, not a text"
                )
        if s is None or not str(s).strip():
            raise DataError(f"{where}: column '{d.text}' is empty")
        if labelled and (t is None or not str(t).strip()):
            raise DataError(f"{where}: no target in column '{d.target}'")
        return Seq2SeqExample(str(s), None if t is None else str(t), where)

    def fit(self, train: Sequence[Seq2SeqExample]) -> None:
        """Nothing to fit: the vocabulary is the model's."""

    def encode_labels(self, examples: Sequence[Seq2SeqExample]) -> None:
        for e in examples:
            if e.target is None:
                raise DataError(f"{e.where}: no target text")

    def state(self) -> dict[str, Any]:
        return {"problem": "text_to_text"}

    def load_state(self, state: dict[str, Any]) -> None:
        return None

    def tune(self, dev_metrics: dict[str, float]) -> None:
        return None

    def cache_key(self) -> dict[str, Any]:
        return {
            "task": "text_to_text",
            "prefix": self.prefix,
            "max_target_length": self.max_target_length,
            "data": self.data.__dict__,
        }

    def featurize(
        self, examples: Sequence[Seq2SeqExample], text: Any, labelled: bool = True
    ) -> Features:
        sources = text.encode([self.prefix + e.source for e in examples], None, self.max_length)
        sequences = {"input_ids": sources["input_ids"]}
        if labelled:
            targets = [e.target or "" for e in examples]
            sequences["labels"] = text.encode_targets(targets, self.max_target_length)
        return Features(sequences, lengths=sequence_lengths(sequences["input_ids"]))

    # -- model ----------------------------------------------------------------------------------
    def heads(self) -> dict[str, HeadSpec]:
        return {"lm": HeadSpec(Seq2SeqLMHead, {"label_smoothing": self.label_smoothing})}

    def export(self) -> Export:
        return Export("seq2seq_lm", settings={"generation": self.generation, "prefix": self.prefix})

    @staticmethod
    def loss_terms(batch: dict[str, torch.Tensor]) -> int:
        """The target tokens a training batch's loss averages (the loop weights shares by it,
        so N processes equal one)."""
        return int((batch["labels"] != -100).sum())

    def predict_step(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Generated ids (B, L), padded."""
        out: torch.Tensor = model.encoder.generate(batch, self.generation)
        return out

    def _texts(self, rows: Iterable[tuple[int, np.ndarray]], n: int) -> list[str]:
        if self.text is None:
            raise RuntimeError("text_to_text: use_text() was not called before decoding")
        out: list[str | None] = [None] * n
        for i, ids in rows:
            out[i] = self.text.decode(ids.astype(np.int64).tolist())
        missing = [i for i, t in enumerate(out) if t is None]
        if missing:
            raise RuntimeError(f"text_to_text: no output for {len(missing)} items")
        return [t or "" for t in out]

    def evaluate(
        self,
        rows: Iterable[tuple[int, np.ndarray]],
        examples: Sequence[Seq2SeqExample],
        features: Features,
    ) -> dict[str, Any]:
        hyps = self._texts(rows, len(features))
        return self.score(hyps, examples)

    def score(self, hyps: Sequence[str], examples: Sequence[Seq2SeqExample]) -> dict[str, Any]:
        """sacreBLEU corpus BLEU and chrF (with signatures); EM/F1 where examples carry SQuAD
        answers."""
        from sacrebleu.metrics import BLEU, CHRF

        refs = [[e.target or "" for e in examples]]
        bleu = BLEU(tokenize=self.bleu_tokenize, lowercase=self.lowercase)
        chrf = CHRF(lowercase=self.lowercase)
        b, c = bleu.corpus_score(list(hyps), refs), chrf.corpus_score(list(hyps), refs)
        out: dict[str, Any] = {
            "bleu": float(b.score),
            "chrf": float(c.score),
            "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature()),
        }
        if any(e.answers or e.id for e in examples):
            golds = {e.id or str(i): list(e.answers) for i, e in enumerate(examples)}
            preds = {e.id or str(i): h for i, (e, h) in enumerate(zip(examples, hyps, strict=True))}
            qa = squad_metrics.score(golds, preds)
            out.update({k: v for k, v in qa.items() if k != "total"})
        return out

    def predictions(
        self,
        rows: Iterable[tuple[int, np.ndarray]],
        examples: Sequence[Seq2SeqExample],
        features: Features,
    ) -> list[dict[str, Any]]:
        return [{"generated_text": t} for t in self._texts(rows, len(features))]

    def line_input(self, line: str) -> Any:
        """One line of a ``.txt`` input: the source text."""
        return line

    def input_example(self, item: Any, where: str) -> Seq2SeqExample:
        """A source text, a ``{"text": ...}`` dict (or the data's source column), or a SQuAD-style
        ``{"question", "context"}`` dict."""
        if isinstance(item, Seq2SeqExample):
            return item
        if isinstance(item, str):
            if not item.strip():
                raise DataError(f"{where}: empty text")
            return Seq2SeqExample(item, where=where)
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected a string or a dict, got {type(item).__name__}")
        if "question" in item and "context" in item:
            return Seq2SeqExample(
                qa_source(str(item["question"]), str(item["context"])), where=where
            )
        keys = [k for k in (self.data.text, "text", "source") if isinstance(k, str)]
        value = next((item[k] for k in keys if k in item), None)
        if value is None or not str(value).strip():
            raise DataError(f"{where}: no '{keys[0]}' field in {sorted(item)}")
        return Seq2SeqExample(str(value), where=where)


TASKS.register("text_to_text")(TextToText)
