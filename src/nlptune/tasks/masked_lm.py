"""``masked_lm``: continued pre-training on unlabelled text (masked LM, optionally with BERT's
next-sentence prediction); the trained run's ``model/`` is a backbone for any other task.

Text comes from plain text files (one sentence or document a line, a blank line ends a
document; a folder of ``.txt``/``.gz``), or a text column of CSV/TSV/JSON Lines/``datasets``
(one document a row). Training text is packed into full-length blocks (or, with ``nsp``, into
BERT's sentence pairs); masks are drawn per item and epoch from a seeded generator at batch time
(dynamic, and exact on resume). Dev text is masked the same way with one fixed seed, so every
evaluation (and every run) scores the same positions: perplexity = exp(mean token loss).
Prediction fills masks (``[MASK]`` or ``<mask>`` in the input), as ``pipeline("fill-mask")``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from nlptune.backbones.base import Export
from nlptune.config import TaskConfig
from nlptune.data import pretraining as pt
from nlptune.data.features import Features, sequence_lengths
from nlptune.data.plain import TextLine, hold_out_documents, read_text
from nlptune.errors import ConfigError, DataError
from nlptune.heads import HeadSpec, MaskedLMHead, NextSentenceHead
from nlptune.registry import TASKS
from nlptune.tasks.fill_mask import fill_features, fill_predictions, fill_step

METRICS = ("perplexity", "loss", "nsp_accuracy")
DEV_SEED = 20_17  # dev masks: the same positions in every evaluation and every run
PAIR_SEED = 0  # next-sentence pairs are drawn once per data set


class MaskedLMConfig(TaskConfig):
    type: str = Field("masked_lm", description="task name (nlptune list tasks)")
    objectives: list[Literal["mlm", "nsp"]] = Field(
        ["mlm"],
        description="masked_lm: mlm, or [mlm, nsp] for BERT's next-sentence prediction too",
    )
    mask_rate: float = Field(
        0.15, gt=0, lt=1, description="masked_lm: share of tokens chosen for prediction"
    )
    mask_token_share: float = Field(
        0.8, ge=0, le=1, description="masked_lm: of the chosen tokens, the share set to [MASK]"
    )
    random_token_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="masked_lm: of the chosen tokens, the share set to a random token (the rest "
        "stay as they are)",
    )
    whole_word: bool = Field(
        False, description="masked_lm: mask every subword of a chosen word (whole-word masking)"
    )
    top_k: int = Field(5, ge=1, description="masked_lm: fillers predicted for each mask")

    @model_validator(mode="after")
    def _shares(self) -> MaskedLMConfig:
        if self.mask_token_share + self.random_token_share > 1 + 1e-9:
            raise ValueError(
                "task.mask_token_share + task.random_token_share must be at most 1 (BERT: 0.8 "
                "and 0.1)"
            )
        if "mlm" not in self.objectives:
            raise ValueError("task.objectives must include mlm, e.g. [mlm] or [mlm, nsp]")
        return self

    def check_run(self, run: Any, where: str) -> None:
        if run.strategy.type == "frozen":
            raise ConfigError(
                f"{where}: strategy.type=frozen makes no sense for masked_lm: pre-training "
                "trains the backbone itself; use full or last_k"
            )
        if self.metric is not None and self.metric not in METRICS:
            raise ConfigError(
                f"{where}: task.metric={self.metric} is not a masked_lm metric; choose one of "
                f"{', '.join(METRICS)}"
            )
        if self.metric == "nsp_accuracy" and "nsp" not in self.objectives:
            raise ConfigError(f"{where}: task.metric=nsp_accuracy needs task.objectives [mlm, nsp]")


@dataclass(frozen=True)
class Columns:
    text: str | int = "text"
    format: str = "auto"
    header: bool | None = None
    quoting: str = "auto"
    hf_subset: str | None = None


class MaskedLM:
    """Continued pre-training: masked LM (and next-sentence prediction) on unlabelled text."""

    Config: type[TaskConfig] = MaskedLMConfig
    DATA_ARGS: ClassVar[Mapping[str, str]] = {
        k: k for k in ("text", "format", "header", "quoting", "hf_subset")
    }
    cache_mode: ClassVar[str | None] = None  # refused with frozen: the backbone is what trains
    eval_by_length: ClassVar[bool] = True
    freeze_embeddings = False  # the word embeddings are also the output layer

    def __init__(
        self,
        *,
        max_length: int,
        objectives: Sequence[str] = ("mlm",),
        mask_rate: float = 0.15,
        mask_token_share: float = 0.8,
        random_token_share: float = 0.1,
        whole_word: bool = False,
        top_k: int = 5,
        metric: str | None = None,
        **columns: Any,
    ) -> None:
        self.max_length, self.metric, self.top_k = max_length, metric, top_k
        self.objectives = list(objectives)
        self.nsp = "nsp" in self.objectives
        self.rates = (mask_rate, mask_token_share, random_token_share, whole_word)
        self.data = Columns(**columns)
        self.text: Any = None
        self.masking: pt.Masking | None = None
        self.pool = np.zeros(0, dtype=np.int64)

    @property
    def main_metric(self) -> str:
        return self.metric or "perplexity"

    @property
    def greater_is_better(self) -> bool:
        return self.main_metric == "nsp_accuracy"

    def use_text(self, text: Any) -> None:
        """The text encoder's mask token and vocabulary (build.py calls this)."""
        if getattr(text, "mask_id", None) is None:
            raise ConfigError(
                "backbone.path: this tokenizer has no mask token; masked_lm needs a masked-LM "
                "tokenizer (BERT, RoBERTa, MPNet, DeBERTa, ...)"
            )
        rate, to_mask, to_random, whole_word = self.rates
        self.text = text
        self.masking = pt.Masking(
            text.mask_id, text.vocab_size, tuple(text.special_ids), rate, to_mask, to_random,
            whole_word,
        )  # fmt: skip
        self.pool = self.masking.random_pool()

    # -- data -----------------------------------------------------------------------------------
    def read(self, path: str, labelled: bool = True) -> list[TextLine]:
        d = self.data
        return read_text(path, d.text, d.format, d.header, d.quoting, d.hf_subset)

    def hold_out(
        self, examples: Sequence[TextLine], fraction: float, seed: int
    ) -> tuple[list[TextLine], list[TextLine]]:
        """Whole documents as held-out text (``data.dev_fraction``, ``trainer.eval_samples``),
        so next-sentence pairs stay true ones."""
        return hold_out_documents(examples, fraction, seed)

    def fit(self, train: Sequence[TextLine]) -> None:
        if self.nsp and sum(line.new_document for line in train) < 2:
            raise DataError(
                f"{train[0].where.rsplit(':', 1)[0]}: next-sentence prediction needs several "
                "documents; separate them with a blank line (or one document a row), or use "
                "task.objectives=[mlm]"
            )

    def encode_labels(self, examples: Sequence[TextLine]) -> None:
        return None

    def state(self) -> dict[str, Any]:
        return {"objectives": self.objectives}

    def load_state(self, state: dict[str, Any]) -> None:
        self.objectives = list(state.get("objectives", self.objectives))
        self.nsp = "nsp" in self.objectives

    def tune(self, dev_metrics: dict[str, float]) -> None:
        return None

    def cache_key(self) -> dict[str, Any]:
        return {"task": "masked_lm", "nsp": self.nsp, "seed": PAIR_SEED, **asdict(self.data)}

    def featurize(self, examples: Sequence[TextLine], text: Any, labelled: bool = True) -> Features:
        """Labelled (training, dev): packed blocks or sentence pairs, unmasked, with the
        ``word_starts`` column that masking reads. Unlabelled (prediction): one framed item per
        text, placeholders turned into the mask token."""
        if not labelled:
            return fill_features(
                [e.text for e in examples], [e.where for e in examples], text, self.max_length
            )
        ids, starts = [], []
        for i in range(0, len(examples), 4096):  # bounded tokenizer batches
            part = text.encode_plain([e.text for e in examples[i : i + 4096]])
            ids.extend(part[0])
            starts.extend(part[1])
        lines = [pt.Line(a, s) for a, s in zip(ids, starts, strict=True)]
        docs = pt.documents(lines, [e.new_document for e in examples])
        if not self.nsp:
            return self._blocks(docs, text)
        return self._pairs(docs, text, examples[0].where.rsplit(":", 1)[0] if examples else "")

    def _blocks(self, docs: list[list[pt.Line]], text: Any) -> Features:
        blocks, flags = pt.pack(docs, text.prefix, text.suffix, self.max_length)
        sequences = {"input_ids": blocks, "word_starts": [f.astype(np.int8) for f in flags]}
        return Features(sequences, lengths=sequence_lengths(blocks))

    def _pairs(self, docs: list[list[pt.Line]], text: Any, source: str) -> Features:
        if len(docs) < 2:
            raise DataError(
                f"{source}: next-sentence prediction needs several documents; separate them "
                "with a blank line (or one document a row), or use task.objectives=[mlm]"
            )
        empty = np.zeros(0, dtype=np.int64)
        room = self.max_length - len(text.frame_pair(empty, empty)[0])
        pairs = pt.sentence_pairs(docs, room, PAIR_SEED)
        columns: dict[str, list[np.ndarray]] = {"input_ids": [], "token_type_ids": []}
        columns["word_starts"] = []
        for a, a_starts, b, b_starts, _ in pairs:
            framed, types, content = text.frame_pair(a, b)
            flags = np.ones(len(framed), dtype=np.int8)  # special tokens count as word starts
            flags[content] = np.concatenate([a_starts, b_starts])
            columns["input_ids"].append(framed)
            columns["token_type_ids"].append(types)
            columns["word_starts"].append(flags)
        labels = np.asarray([p[4] for p in pairs], dtype=np.int64)
        return Features(
            columns,
            {"next_sentence_label": labels},
            lengths=sequence_lengths(columns["input_ids"]),
        )

    # -- model ----------------------------------------------------------------------------------
    def heads(self) -> dict[str, HeadSpec]:
        specs = {"mlm": HeadSpec(MaskedLMHead)}
        if self.nsp:
            specs["nsp"] = HeadSpec(NextSentenceHead)
        return specs

    def export(self) -> Export:
        return Export("masked_lm", settings={"nsp": self.nsp})

    def train_batch(self, batch: dict[str, torch.Tensor], seed: int, epoch: int) -> None:
        """Mask a training batch in place (new masks every epoch, the same on resume)."""
        masked, labels = self._mask(batch, lambda i: pt.item_rng(seed, epoch, i))
        batch["input_ids"], batch["labels"] = masked, labels

    @staticmethod
    def loss_terms(batch: dict[str, torch.Tensor]) -> int:
        """The masked tokens a training batch's loss averages (the loop weights shares by it)."""
        return int((batch["labels"] != pt.IGNORE).sum())

    def _mask(self, batch: dict[str, torch.Tensor], rng_of: Any) -> tuple[torch.Tensor, ...]:
        assert self.masking is not None, "use_text first"
        ids = batch["input_ids"].cpu().numpy()
        starts = batch.pop("word_starts").cpu().numpy()
        lengths = batch["attention_mask"].sum(dim=1).tolist()
        masked, labels = ids.copy(), np.full(ids.shape, pt.IGNORE, dtype=np.int64)
        for row, (index, n) in enumerate(zip(batch["index"].tolist(), lengths, strict=True)):
            masked[row, :n], labels[row, :n] = pt.mask(
                ids[row, :n], starts[row, :n], self.masking, rng_of(index), self.pool
            )
        return torch.from_numpy(masked), torch.from_numpy(labels)

    def predict_step(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Dev text (``word_starts`` present): per item the summed token loss, the number of
        scored tokens and the next-sentence logits (B, 2 or 4). Prediction input: the top-k
        filler ids and probabilities of each mask (B, M, 2k), -1 where an item has fewer masks."""
        if "word_starts" not in batch:
            return fill_step(model, batch, self.text.mask_id, self.top_k)
        device = batch["input_ids"].device
        masked, labels = self._mask(batch, lambda i: pt.item_rng(DEV_SEED, 0, i))
        where = labels != pt.IGNORE
        inputs = {**batch, "input_ids": masked.to(device), "mlm_positions": where.to(device)}
        out = model(**inputs)
        nll = torch.nn.functional.cross_entropy(
            out["logits"].float(), labels[where].to(device), reduction="none"
        )
        rows = torch.arange(len(masked)).unsqueeze(1).expand_as(where)[where].to(device)
        total = torch.zeros(len(masked), device=device).index_add_(0, rows, nll)
        count = where.sum(dim=1).to(device=device, dtype=torch.float32)
        parts = [total, count]
        if self.nsp:
            parts.extend(out["nsp.logits"].float().unbind(dim=1))
        return torch.stack(parts, dim=1)

    def evaluate(
        self, rows: Iterable[tuple[int, np.ndarray]], examples: Sequence[Any], features: Features
    ) -> dict[str, float]:
        total, count, correct = 0.0, 0, 0
        gold = features.values.get("next_sentence_label")
        for i, row in rows:
            total += float(row[0])
            count += int(row[1])
            if self.nsp and gold is not None:
                correct += int(int(np.argmax(row[2:4])) == int(gold[i]))
        if not count:
            source = examples[0].where.rsplit(":", 1)[0] if examples else "the dev text"
            raise DataError(f"{source}: no tokens to score (only special or unknown tokens)")
        loss = total / count
        metrics: dict[str, Any] = {
            "perplexity": math.exp(min(loss, 700.0)),
            "loss": loss,
            "masked_tokens": count,
        }
        if self.nsp and gold is not None:
            metrics["nsp_accuracy"] = correct / max(1, len(gold))
        return metrics

    def predictions(
        self, rows: Iterable[tuple[int, np.ndarray]], examples: Sequence[Any], features: Features
    ) -> list[dict[str, Any]]:
        """Fill-mask: per input the ``top_k`` fillers of each mask and the filled ``sequence``."""
        return fill_predictions(rows, features, self.text, self.top_k)

    def line_input(self, line: str) -> Any:
        return line

    def input_example(self, item: Any, where: str) -> TextLine:
        """A prediction input: a text with ``[MASK]``/``<mask>`` placeholders, or a dict with the
        text column."""
        if isinstance(item, TextLine):
            return item
        if isinstance(item, dict):
            keys = [k for k in (self.data.text, "text") if isinstance(k, str)]
            value = next((item[k] for k in keys if k in item), None)
            if not isinstance(value, str):
                raise DataError(f"{where}: no '{keys[0]}' text field in {sorted(item)}")
            item = value
        if not isinstance(item, str):
            raise DataError(f"{where}: expected a text, got {type(item).__name__}")
        return TextLine(item, where)


TASKS.register("masked_lm")(MaskedLM)
