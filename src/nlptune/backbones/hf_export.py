"""How a TaskModel on a transformers encoder maps onto transformers' standard task classes.

Our heads' modules and the modules of ``AutoModelFor*`` differ by name per architecture
(``classifier.dense`` + ``classifier.out_proj`` in RoBERTa, ``bert.pooler.dense`` + ``classifier``
in BERT, ...). These tables name them; weights a class has no place for (a CRF) go to a file of
our own beside the standard model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from nlptune.backbones.base import Export

logger = logging.getLogger("nlptune")

AUTO_CLASSES = {
    "sequence_classification": "AutoModelForSequenceClassification",
    "token_classification": "AutoModelForTokenClassification",
    "question_answering": "AutoModelForQuestionAnswering",
    "encoder": "AutoModel",
}
# model_type -> layout of transformers' sequence-classification head
LAYOUT = {
    "bert": "bert",
    "roberta": "roberta",
    "xlm-roberta": "roberta",
    "camembert": "roberta",
    "mpnet": "roberta",
    "electra": "electra",
    "deberta": "deberta",
    "deberta-v2": "deberta",
    "distilbert": "distilbert",
}
# (kind, layout) -> our head's module -> the transformers module ({p}: base_model_prefix)
HEAD_NAMES: dict[tuple[str, str], dict[str, str]] = {
    ("sequence_classification", "bert"): {"pooler": "{p}.pooler.dense", "out": "classifier"},
    ("sequence_classification", "roberta"): {
        "pooler": "classifier.dense",
        "out": "classifier.out_proj",
    },
    ("sequence_classification", "deberta"): {"pooler": "pooler.dense", "out": "classifier"},
    ("sequence_classification", "distilbert"): {"pooler": "pre_classifier", "out": "classifier"},
    **{("token_classification", lay): {"classifier": "classifier"} for lay in set(LAYOUT.values())},
    **{("question_answering", lay): {"qa_outputs": "qa_outputs"} for lay in set(LAYOUT.values())},
}
HEAD_NAMES[("sequence_classification", "electra")] = HEAD_NAMES[
    ("sequence_classification", "roberta")
]


def standard_class(export: Export, model_type: str) -> tuple[str, dict[str, str]]:
    """The transformers class to save as, and the head-module name map; an architecture whose
    head layout nlptune does not know is saved as a base model plus our own head file."""
    if export.kind == "encoder":
        return "encoder", {}
    names = HEAD_NAMES.get((export.kind, LAYOUT.get(model_type, "")))
    if names is None:
        logger.warning(
            "%s: nlptune does not know where %s keeps its %s head; model/ holds the encoder in "
            "transformers format and the head as %s.safetensors",
            model_type,
            model_type,
            export.kind,
            export.extra,
        )
        return "encoder", {}
    return export.kind, names


def label_config(config: Any, export: Export) -> None:
    if export.kind == "encoder":
        return
    names = list(export.label_names) or ["score"]
    config.num_labels = len(names) if export.kind != "question_answering" else 2
    if export.kind != "question_answering":
        config.id2label = dict(enumerate(names))
        config.label2id = {n: i for i, n in enumerate(names)}
    for key, value in export.settings.items():
        setattr(config, key, value)


def split_head(
    state: dict[str, torch.Tensor], names: dict[str, str], prefix: str
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Head weights under transformers' names, and the rest (kept in our own file)."""
    mapped, extra = {}, {}
    for key, value in state.items():
        module, _, leaf = key.rpartition(".")
        if module in names:
            mapped[f"{names[module].format(p=prefix)}.{leaf}"] = value
        else:
            extra[key] = value
    return mapped, extra


def load_extra(folder: Path, stem: str, own: set[str]) -> dict[str, torch.Tensor]:
    """Our own head weights, under their names in the model (``stem.`` was left out on save)."""
    path = folder / f"{stem}.safetensors"
    if not path.is_file():
        return {}
    tensors = load_file(str(path))
    keys = json.loads((folder / f"{stem}.json").read_text()).get("keys")
    if keys is None:  # saved before nlptune listed the keys: names relative to the head
        keys = [k if k in own else f"{stem}.{k}" for k in tensors]
    by_short = {k.removeprefix(f"{stem}."): k for k in keys}
    return {by_short.get(k, k): v for k, v in tensors.items()}
