"""``sequence_labelling``: a tag per word (NER with BIO/BIOES tags, POS).

Works on words: each word's label sits on its first subword and predictions are made per
original word. A sentence longer than the model's window is cut into overlapping windows of whole
words; every word is predicted by the window in which it sits farthest from an edge, and
evaluation checks that every gold word was scored. Nothing is truncated. The softmax head is
transformers' token-classification class (``AutoModelForTokenClassification``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from nlptune.backbones.base import Export, TextEncoder
from nlptune.config import TaskConfig
from nlptune.data.conll import from_bioes, read_conll, read_conllu, to_bioes
from nlptune.data.examples import TokenExample
from nlptune.data.features import Features, sequence_lengths
from nlptune.data.words import split_words
from nlptune.errors import ConfigError, DataError
from nlptune.heads import HeadSpec, TokenHead
from nlptune.registry import TASKS
from nlptune.tasks import metrics

logger = logging.getLogger("nlptune")

_BIO = re.compile(r"^(O|[BIES]-.+)$")


class SequenceLabellingConfig(TaskConfig):
    type: str = Field("sequence_labelling", description="task name (nlptune list tasks)")
    scheme: Literal["iob2", "bioes"] = Field(
        "iob2", description="tagging: the scheme the model is trained in (scored as IOB2)"
    )
    labels: list[str] | None = Field(
        None, description="tag names in a fixed order (default: sorted tags seen in training)"
    )
    crf: bool = Field(False, description="tagging: a CRF head (transitions, Viterbi) on softmax")
    subword_pooling: Literal["first", "mean"] = Field(
        "first", description="tagging: a word's scores from its first subword or their mean"
    )
    word_split: Literal["ptb", "whitespace"] = Field(
        "ptb",
        description="tagging: how raw text to predict on is cut into words; ptb splits "
        "punctuation and clitics off as CoNLL/OntoNotes/UD data does, whitespace only at spaces",
    )

    def check_run(self, run: Any, where: str) -> None:
        if self.metric not in (None, "f1", "precision", "recall", "accuracy"):
            raise ConfigError(
                f"{where}: task.metric for sequence_labelling is f1, precision, recall or accuracy"
            )


@TASKS.register("sequence_labelling")
class SequenceLabelling:
    """Tag every word of a sentence (NER, POS); softmax head, scored per word."""

    Config = SequenceLabellingConfig
    DATA_ARGS: ClassVar[Mapping[str, str]] = {
        "format": "format",
        "token_column": "token_column",
        "tag_column": "tag_column",
        "scheme": "file_scheme",
        "conllu_column": "conllu_column",
    }
    cache_mode: ClassVar[str | None] = "all"  # frozen: every token's state is stored once
    eval_by_length: ClassVar[bool] = False  # windows of one sentence arrive together

    def __init__(
        self,
        *,
        max_length: int,
        scheme: str = "iob2",
        labels: list[str] | None = None,
        crf: bool = False,
        subword_pooling: str = "first",
        word_split: str = "ptb",
        metric: str | None = None,
        format: str = "auto",
        token_column: int = 0,
        tag_column: int = -1,
        file_scheme: str = "iob2",
        conllu_column: str = "upos",
    ) -> None:
        self.max_length, self.scheme, self.crf, self.pooling = (
            max_length,
            scheme,
            crf,
            subword_pooling,
        )
        self.metric, self.format = metric, format
        self.token_column, self.tag_column = token_column, tag_column
        self.degenerate: str | None = None  # set by evaluate(): why predictions are degenerate
        self.word_split = word_split
        self.file_scheme, self.conllu_column = file_scheme, conllu_column
        self.labels: list[str] = list(labels or [])
        self.is_bio = True

    @property
    def main_metric(self) -> str:
        return self.metric or ("f1" if self.is_bio else "accuracy")

    @property
    def greater_is_better(self) -> bool:
        return True

    # -- data -----------------------------------------------------------------------------------
    def file_format(self, path: str) -> str:
        """``conll`` or ``conllu``: how :meth:`read` reads ``path``."""
        if self.format != "auto":
            return self.format
        return "conllu" if Path(path).suffix.lower() == ".conllu" else "conll"

    def read(self, path: str, labelled: bool = True) -> list[Any]:
        fmt = self.file_format(path)
        if fmt == "conllu":
            examples = read_conllu(path, self.conllu_column, labelled)
        elif fmt == "conll":
            examples = read_conll(
                path, self.token_column, self.tag_column, self.file_scheme, labelled
            )
        else:
            raise ConfigError(f"sequence_labelling reads conll or conllu files, not {fmt}")
        if not examples:
            raise DataError(f"{path}: no sentences")
        return examples

    def fit(self, train: Sequence[TokenExample]) -> None:
        tags = {t for e in train for t in (e.tags or ())}
        self.is_bio = all(_BIO.match(t) for t in tags)
        if not self.is_bio:  # POS-style tags: plain per-word labels, no entities
            plain = sorted(t for t in tags if not _BIO.match(t))
            if self.metric in ("f1", "precision", "recall"):
                raise ConfigError(
                    f"task.metric={self.metric} scores entities (BIO tags), but the training "
                    f"tags are plain labels (e.g. {plain[0]!r}): use task.metric: accuracy"
                )
            logger.info(
                "the tags are not BIO entity tags (e.g. %r): each word's tag is a plain label, "
                "scored by accuracy",
                plain[0],
            )
        if not self.labels:
            run_tags = {t for e in train for t in self._run_tags(e.tags or ())}
            if self.is_bio:  # grouped by entity type, O last
                self.labels = sorted(run_tags, key=lambda t: (t == "O", t[2:], t))
            else:
                self.labels = sorted(run_tags)

    def _run_tags(self, tags: Sequence[str]) -> list[str]:
        return to_bioes(tags) if self.is_bio and self.scheme == "bioes" else list(tags)

    def encode_labels(self, examples: Sequence[TokenExample]) -> None:
        known = set(self.labels)
        for e in examples:
            for tag in self._run_tags(e.tags or ()):
                if tag not in known:
                    raise DataError(
                        f"{e.where}: tag '{tag}' never occurs in the training data "
                        f"(known: {', '.join(self.labels)})"
                    )

    def state(self) -> dict[str, Any]:
        return {"labels": self.labels, "is_bio": self.is_bio}

    def load_state(self, state: dict[str, Any]) -> None:
        self.labels, self.is_bio = list(state["labels"]), bool(state["is_bio"])

    def tune(self, dev_metrics: dict[str, float]) -> None:
        return None

    def cache_key(self) -> dict[str, Any]:
        return {
            "task": "sequence_labelling",
            "labels": self.labels,
            "scheme": self.scheme,
            "crf": self.crf,
            "pooling": self.pooling,
            "data": [
                self.format,
                self.token_column,
                self.tag_column,
                self.file_scheme,
                self.conllu_column,
            ],
        }

    # -- features -------------------------------------------------------------------------------
    def featurize(
        self, examples: Sequence[TokenExample], text: TextEncoder, labelled: bool = True
    ) -> Features:
        """One feature per window; ``meta`` keeps the sentence, the word of every first subword
        (-1 elsewhere) and the words the window owns (``[lo, hi)``)."""
        index = {t: i for i, t in enumerate(self.labels)}
        seqs: dict[str, list[np.ndarray]] = {"input_ids": [], "labels": []}
        meta: dict[str, list[np.ndarray]] = {"example": [], "word": [], "owned": []}
        budget = self.max_length - len(text.prefix) - len(text.suffix)
        for n, e in enumerate(examples):
            pieces = [(p or [text.unk_id])[:budget] for p in text.encode_words(e.words)]
            tags = [index[t] for t in self._run_tags(e.tags)] if labelled and e.tags else None
            for lo, hi, own_lo, own_hi in _windows([len(p) for p in pieces], budget):
                ids = list(text.prefix)
                word = [-1] * len(ids)
                lab = [-100] * len(ids)
                for w in range(lo, hi):
                    ids.extend(pieces[w])
                    word.extend([w] + [-1] * (len(pieces[w]) - 1))
                    lab.extend([tags[w] if tags else -100] + [-100] * (len(pieces[w]) - 1))
                ids.extend(text.suffix)
                word.extend([-1] * len(text.suffix))
                lab.extend([-100] * len(text.suffix))
                seqs["input_ids"].append(np.asarray(ids, dtype=np.int32))
                seqs["labels"].append(np.asarray(lab, dtype=np.int64))
                meta["example"].append(np.array([n], dtype=np.int32))
                meta["word"].append(np.asarray(word, dtype=np.int32))
                meta["owned"].append(np.array([own_lo, own_hi], dtype=np.int32))
        if not labelled:
            del seqs["labels"]
        if self.crf:
            seqs["word_mask"] = [(w >= 0).astype(np.int64) for w in meta["word"]]
        if self.pooling == "mean":  # 1-based word of every subword, 0 = none
            seqs["word_ids"] = [_spread(w) for w in meta["word"]]
        return Features(seqs, {}, meta, sequence_lengths(seqs["input_ids"]))

    # -- model ----------------------------------------------------------------------------------
    def heads(self) -> dict[str, HeadSpec]:
        args: dict[str, Any] = {"num_labels": len(self.labels), "pooling": self.pooling}
        if self.crf:
            args["crf_labels"] = self.labels
        return {"tagger": HeadSpec(TokenHead, args)}

    def export(self) -> Export:
        return Export("token_classification", self.labels, extra="crf")

    def loss_terms(self, batch: dict[str, torch.Tensor]) -> int | None:
        """The scored words a softmax loss averages (the loop weights shares by it); None for
        a CRF, whose loss is a mean over sentences (shares by items)."""
        return None if self.crf else int((batch["labels"] != -100).sum())

    def predict_step(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Tag scores (B, T, L); one-hot Viterbi tags with a CRF."""
        out: torch.Tensor = model(**batch)["logits"]
        return out

    # -- decoding -------------------------------------------------------------------------------
    def decode(
        self,
        rows: Iterable[tuple[int, np.ndarray]],
        examples: Sequence[TokenExample],
        features: Features,
    ) -> Iterator[tuple[int, list[str]]]:
        """Yield ``(sentence index, IOB2/POS tag per word)`` once all its windows are in."""
        for n, tags, _ in self.decode_scored(rows, examples, features):
            yield n, tags

    def decode_scored(
        self,
        rows: Iterable[tuple[int, np.ndarray]],
        examples: Sequence[TokenExample],
        features: Features,
    ) -> Iterator[tuple[int, list[str], list[float]]]:
        """As :meth:`decode`, with each word's tag probability (softmax over the tag scores;
        with a CRF, of the Viterbi tag under the emission scores)."""
        owner = [int(m[0]) for m in features.meta["example"]]
        left = np.bincount(owner, minlength=len(examples))
        partial: dict[int, tuple[list[int], list[float]]] = {}
        for i, logits in rows:
            n = owner[i]
            size = len(examples[n].words)
            tags, probs = partial.setdefault(n, ([-1] * size, [0.0] * size))
            lo, hi = features.meta["owned"][i]
            for t, w in enumerate(features.meta["word"][i]):
                if lo <= w < hi:
                    scores = logits[t]
                    tags[w] = int(scores.argmax())
                    probs[w] = float(scores.max() if self.crf else _top_probability(scores))
            left[n] -= 1
            if left[n] == 0:
                done, chances = partial.pop(n)
                if min(done, default=0) < 0:
                    raise RuntimeError(f"{examples[n].where}: a word was not scored")
                yield n, self._to_scored([self.labels[j] for j in done]), chances

    def _to_scored(self, tags: list[str]) -> list[str]:
        return from_bioes(tags) if self.is_bio and self.scheme == "bioes" else tags

    def evaluate(
        self,
        rows: Iterable[tuple[int, np.ndarray]],
        examples: Sequence[TokenExample],
        features: Features,
    ) -> dict[str, float]:
        """Strict IOB2 entity P/R/F1 overall and per type (seqeval) and token accuracy; every
        gold word must have been scored."""
        pred: list[list[str]] = [[] for _ in examples]
        for n, tags in self.decode(rows, examples, features):
            pred[n] = tags
        gold = [list(e.tags or ()) for e in examples]
        if any(len(p) != len(g) for p, g in zip(pred, gold, strict=True)):
            raise RuntimeError("evaluation did not score every gold word")
        words = sum(len(g) for g in gold)
        out = {
            "accuracy": sum(
                p == g
                for ps, gs in zip(pred, gold, strict=True)
                for p, g in zip(ps, gs, strict=True)
            )
            / max(words, 1),
            "words_scored": words,
        }
        if self.is_bio:
            out.update(_entity_scores(gold, pred))
        self.degenerate = _degenerate(pred, gold, self.is_bio)
        return out

    def predictions(
        self,
        rows: Iterable[tuple[int, np.ndarray]],
        examples: Sequence[TokenExample],
        features: Features,
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{} for _ in examples]
        for n, tags, probs in self.decode_scored(rows, examples, features):
            example = examples[n]
            words = list(example.words)
            row: dict[str, Any] = {"words": words, "tags": tags}
            if example.offsets is not None:
                row["offsets"] = [list(span) for span in example.offsets]
            if self.is_bio:
                row["entities"] = _spans(words, tags, probs, example.text, example.offsets)
            out[n] = row
        return out

    # -- prediction input -----------------------------------------------------------------------
    def line_input(self, line: str) -> Any:
        return line

    def input_example(self, item: Any, where: str) -> TokenExample:
        if isinstance(item, TokenExample):
            return item
        if isinstance(item, str):
            return self._from_text(item, where)
        if isinstance(item, (list, tuple)) and all(isinstance(w, str) for w in item):
            return TokenExample(tuple(item), None, where)
        if isinstance(item, dict) and isinstance(item.get("words"), list):
            return TokenExample(tuple(str(w) for w in item["words"]), None, where)
        if isinstance(item, dict) and isinstance(item.get("text"), str):
            return self._from_text(item["text"], where)
        raise DataError(f"{where}: expected a sentence, a list of words, or {{words}} / {{text}}")

    def _from_text(self, text: str, where: str) -> TokenExample:
        """Raw text cut into words (``task.word_split``), each with its character offsets."""
        if self.word_split == "whitespace":
            found = [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", text)]
        else:
            found = split_words(text)
        if not found:
            raise DataError(f"{where}: no words to tag")
        words = tuple(w for w, _, _ in found)
        return TokenExample(
            words, None, where, text=text, offsets=tuple((a, b) for _, a, b in found)
        )


def _spread(first: np.ndarray) -> np.ndarray:
    """From first-subword word indices (-1 elsewhere) to the 1-based word of every subword."""
    out = np.zeros(len(first), dtype=np.int64)
    current = 0
    for t, w in enumerate(first):
        if w >= 0:
            current = int(w) + 1
        out[t] = current
    out[0] = out[-1] = 0  # [CLS], [SEP]
    return out


def _windows(sizes: list[int], budget: int) -> list[tuple[int, int, int, int]]:
    """Word windows ``(lo, hi, own_lo, own_hi)`` of at most ``budget`` subwords, overlapping by
    about half a window; each word is owned by the window where it is farthest from an edge."""
    n = len(sizes)
    if sum(sizes) <= budget:
        return [(0, n, 0, n)]
    spans, lo = [], 0
    while True:
        hi, used = lo, 0
        while hi < n and used + sizes[hi] <= budget:
            used += sizes[hi]
            hi += 1
        hi = max(hi, lo + 1)  # a single word longer than the window still gets one
        spans.append((lo, hi))
        if hi >= n:
            break
        lo = max(lo + 1, (lo + hi) // 2)
    owned = []
    for k, (lo, hi) in enumerate(spans):
        own_lo = lo if k == 0 else (spans[k - 1][1] + lo + 1) // 2
        own_hi = hi if k == len(spans) - 1 else (hi + spans[k + 1][0] + 1) // 2
        owned.append((lo, hi, own_lo, own_hi))
    return owned


def _entity_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    report = classification_report(
        gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
    )
    micro = report["micro avg"]
    out = {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
    }
    for name, row in report.items():
        if not name.endswith("avg"):
            out[f"f1_{name}"] = float(row["f1-score"])
    return out


def _top_probability(scores: np.ndarray) -> float:
    shifted = np.exp(scores - scores.max())
    return float(1.0 / shifted.sum())  # the largest entry's softmax probability


def _spans(
    words: list[str],
    tags: list[str],
    probs: list[float] | None = None,
    text: str | None = None,
    offsets: tuple[tuple[int, int], ...] | None = None,
) -> list[dict[str, Any]]:
    """Entities with character offsets: in ``text`` where the words came from raw text (its
    exact characters), else in the words joined by single spaces; ``score`` is the mean
    probability of the entity's word tags."""
    if offsets is None:
        starts, pos = [], 0
        for w in words:
            starts.append(pos)
            pos += len(w) + 1
        ends = [a + len(w) for a, w in zip(starts, words, strict=True)]
    else:
        starts, ends = [a for a, _ in offsets], [b for _, b in offsets]
    out: list[dict[str, Any]] = []
    for i, tag in enumerate(tags):
        if tag.startswith("B-") or (
            tag.startswith("I-")
            and (not out or out[-1]["end_word"] != i or out[-1]["type"] != tag[2:])
        ):
            out.append({"type": tag[2:], "start_word": i, "end_word": i + 1})
        elif tag.startswith("I-"):
            out[-1]["end_word"] = i + 1
    for ent in out:
        a, b = ent["start_word"], ent["end_word"]
        start, end = starts[a], ends[b - 1]
        shown = (
            text[start:end] if text is not None and offsets is not None else " ".join(words[a:b])
        )
        ent.update(text=shown, start=start, end=end)
        if probs is not None:
            ent["score"] = round(sum(probs[a:b]) / (b - a), 4)
    return out


def _degenerate(pred: list[list[str]], gold: list[list[str]], bio: bool) -> str | None:
    """Entity tagging that finds no entity though the gold data has some (every tag 'O'), or
    POS-style tagging with one tag for every word."""
    if bio:
        inside = sum(t != "O" for tags in gold for t in tags)
        if inside and all(t == "O" for tags in pred for t in tags):
            return (
                f"the model tags every word 'O' (no entity) in all {len(pred)} sentences "
                f"although {inside} gold words are in entities: it has not learnt the task"
            )
        return None
    flat = [t for tags in pred for t in tags]
    return metrics.one_class(flat, [t for tags in gold for t in tags], "word")
