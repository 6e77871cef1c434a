"""The pre-training heads of transformers encoders: masked LM and BERT's next-sentence head.

``lm_parts`` builds the architecture's own masked-LM head (the modules of its ``*ForMaskedLM``
class, output layer tied to our encoder's input embeddings); ``CheckpointHeads`` reads the
head weights a checkpoint has (and says in the log which it lacks); ``save_pretraining`` and
``load_pretraining`` write and read a masked-LM run as ``*ForMaskedLM``, or ``*ForPreTraining``
for BERT-style models (it holds the pooler, which a later classification head starts from).
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nlptune.backbones.hf_paths import (
    load_saved,
    quiet_transformers,
    resolve_model_path,
)
from nlptune.compat import hf_dtype
from nlptune.errors import ModelError, first_line

logger = logging.getLogger("nlptune")

# our next-sentence head -> BertForPreTraining ({p}: base_model_prefix)
NSP_NAMES = {
    "pooler.weight": "{p}.pooler.dense.weight",
    "pooler.bias": "{p}.pooler.dense.bias",
    "out.weight": "cls.seq_relationship.weight",
    "out.bias": "cls.seq_relationship.bias",
}
# architectures whose *ForPreTraining class is BERT's: a pooler and a next-sentence head
NSP_TYPES = frozenset({"bert", "megatron-bert", "ernie", "nezha"})
# model_type -> the modules of its *ForMaskedLM head, in the order its forward applies them,
# where that is not simply the order they are registered in
LM_ORDER = {"distilbert": ("vocab_transform", "activation", "vocab_layer_norm", "vocab_projector")}
STYLES = "use a BERT-, RoBERTa-, DeBERTa-, MPNet- or DistilBERT-style model"


def masked_lm_class(config: Any) -> Any:
    """transformers' ``*ForMaskedLM`` class for ``config``, or None."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING

    return MODEL_FOR_MASKED_LM_MAPPING.get(type(config), None)


def check_heads(path: str, config: Any, kinds: set[str], tokenizer: Any) -> None:
    """Refuse pre-training heads the architecture (or its tokenizer) cannot have."""
    if "masked_lm" in kinds and masked_lm_class(config) is None:
        raise ModelError(
            f"backbone.path {path}: {config.model_type} has no masked-LM class in "
            f"transformers; {STYLES}"
        )
    if "next_sentence" in kinds and config.model_type not in NSP_TYPES:
        raise ModelError(
            f"backbone.path {path}: {config.model_type} models have no next-sentence head "
            f"(BERT-style models do: {', '.join(sorted(NSP_TYPES))}); use task.objectives=[mlm]"
        )
    # the tokenizer last: what the config alone tells is said first (and needs no tokenizer)
    if "masked_lm" in kinds and getattr(tokenizer(), "mask_token_id", None) is None:
        raise ModelError(f"backbone.path {path}: its tokenizer has no mask token; {STYLES}")


def lm_parts(encoder: Any) -> list[tuple[str, nn.Module]]:
    """The architecture's masked-LM head for ``encoder`` (fresh weights, as transformers
    initialises them; the output layer tied to the encoder's input embeddings when the
    architecture ties them). Checked once against the architecture's own forward."""
    from transformers import AutoModelForMaskedLM

    config = encoder.config
    try:
        with quiet_transformers():
            model = AutoModelForMaskedLM.from_config(
                copy.deepcopy(config), **hf_dtype(torch.float32)
            )
    except ValueError as err:
        raise ModelError(
            f"{config.model_type} has no masked-LM class in transformers: {first_line(err)}"
        ) from None
    prefix = model.base_model_prefix
    names = LM_ORDER.get(config.model_type) or tuple(
        n for n, m in model.named_children() if n != prefix and any(True for _ in m.parameters())
    )
    parts = [(n, getattr(model, n)) for n in names]
    model.eval()
    probe = torch.tensor([[min(5, config.vocab_size - 1)] * 4])
    try:
        with torch.no_grad():
            mine = model.base_model(input_ids=probe)[0][0]
            for _, module in parts:
                mine = module(mine)
            theirs = model(input_ids=probe).logits[0]
            same = mine.shape == theirs.shape and torch.allclose(mine, theirs, atol=1e-4)
    except (TypeError, RuntimeError, ValueError):  # a head whose forward needs more inputs
        same = False
    if not same:
        raise ModelError(
            f"nlptune can't tell which modules of {type(model).__name__} make its masked-LM "
            f"head; {STYLES}"
        )
    output = model.get_output_embeddings()
    if output is not None and output.weight is model.get_input_embeddings().weight:
        output.weight = encoder.base.get_input_embeddings().weight  # tie to our encoder's
    return parts


def tied_names(config: Any) -> set[str]:
    """transformers' names of masked-LM head weights tied to others (the output layer to the
    input embeddings, BERT's decoder bias to the head's bias): loaded through their partners."""
    cls = masked_lm_class(config)
    if cls is None or not getattr(config, "tie_word_embeddings", True):
        return set()
    return set(getattr(cls, "_tied_weights_keys", None) or ())


class CheckpointHeads:
    """The pre-training head weights a checkpoint holds, read once (the head tensors only)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._read: dict[str, tuple[dict[str, torch.Tensor], set[str], str]] = {}

    def _load(self, auto: str) -> tuple[dict[str, torch.Tensor], set[str], str]:
        import transformers

        if auto not in self._read:
            with quiet_transformers():
                model, info = getattr(transformers, auto).from_pretrained(
                    resolve_model_path(self.path),
                    output_loading_info=True,
                    **hf_dtype(torch.float32),
                )
            prefix = model.base_model_prefix
            missing = {str(k if isinstance(k, str) else k[0]) for k in info["missing_keys"]}
            keep = (f"{prefix}.pooler.",)
            state = {
                k: v.detach().clone()
                for k, v in model.state_dict().items()
                if not k.startswith(f"{prefix}.") or k.startswith(keep)
            }
            self._read[auto] = (state, missing, prefix)
        return self._read[auto]

    def next_sentence(self, quiet: bool = False) -> dict[str, torch.Tensor]:
        """Our next-sentence head's weights that the checkpoint has."""
        state, missing, prefix = self._load("AutoModelForPreTraining")
        names = {ours: theirs.format(p=prefix) for ours, theirs in NSP_NAMES.items()}
        have = {o: t for o, t in names.items() if t in state and t not in missing}
        if "out.weight" not in have and not quiet:
            logger.info(
                "next-sentence head: %s has none; initialised%s",
                self.path,
                " (its pooler from the checkpoint)" if "pooler.weight" in have else "",
            )
        return {ours: state[theirs] for ours, theirs in have.items()}

    def masked_lm(self, config: Any) -> dict[str, torch.Tensor]:
        """Our masked-LM head's weights that the checkpoint has (``lm.`` + transformers' names);
        the log names what it lacks."""
        state, missing, prefix = self._load("AutoModelForMaskedLM")
        tied = tied_names(config)
        head = {
            k: v
            for k, v in state.items()
            if not k.startswith(f"{prefix}.") and k not in tied and k.split(".")[0] != "lm_loss"
        }
        new = sorted(k for k in head if k in missing)
        if new:
            logger.info(
                "masked-LM head: %s has no %s; initialised as %s does, the output layer tied to "
                "the input embeddings",
                self.path,
                "head" if len(new) == len(head) else ", ".join(new),
                config.model_type,
            )
        return {f"lm.{k}": v for k, v in head.items() if k not in missing}


def save_pretraining(
    model: Any, folder: Path, next_sentence: Mapping[str, torch.Tensor] | None = None
) -> None:
    """A masked-LM run as ``*ForMaskedLM``; BERT-style models as ``*ForPreTraining`` with the
    pooler and the next-sentence head (trained, else ``next_sentence``: the checkpoint's own,
    else fresh), so fill-mask pipelines and every task's backbone load it."""
    import transformers

    base, nsp = model.encoder.base, "nsp" in model.heads
    pooler = dict(model.encoder.pretrained_pooler)
    pretraining = nsp or (bool(pooler) and base.config.model_type in NSP_TYPES)
    auto = "AutoModelForPreTraining" if pretraining else "AutoModelForMaskedLM"
    config = copy.deepcopy(base.config)
    config.architectures = None
    with quiet_transformers():
        standard = getattr(transformers, auto).from_config(config)
    prefix = standard.base_model_prefix
    state = {f"{prefix}.{k}": v for k, v in base.state_dict().items()}
    state |= {k.removeprefix("lm."): v for k, v in model.heads["mlm"].state_dict().items()}
    if pretraining:
        theirs = standard.state_dict()  # fresh weights where nothing else is known
        ours = {k: theirs[v.format(p=prefix)] for k, v in NSP_NAMES.items()}
        ours |= {f"pooler.{k}": v for k, v in pooler.items()}
        ours |= dict(next_sentence or {})
        if nsp:
            ours |= model.heads["nsp"].state_dict()
        state |= {NSP_NAMES[k].format(p=prefix): v for k, v in ours.items()}
    missing, unexpected = standard.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in tied_names(base.config)]
    if missing or unexpected:
        raise RuntimeError(f"can't map the model onto {auto}: {missing} {unexpected}")
    with quiet_transformers():  # no "Writing model shards" bar
        standard.save_pretrained(folder, safe_serialization=True)


def load_pretraining(folder: Path) -> tuple[Any, dict[str, torch.Tensor], Any, Any]:
    """What :func:`save_pretraining` wrote (the class from the saved ``architectures``):
    ``(base model, its pooler weights, tokenizer, restore)``, where ``restore(model)`` loads
    the saved head weights into a TaskModel's heads."""
    import transformers

    saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    pretraining = any(a.endswith("ForPreTraining") for a in saved.get("architectures") or ())
    auto = "AutoModelForPreTraining" if pretraining else "AutoModelForMaskedLM"
    with quiet_transformers():
        loaded = load_saved(getattr(transformers, auto), folder)
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    state, prefix = dict(loaded.state_dict()), loaded.base_model_prefix  # before any change
    pooler = {
        leaf: state[f"{prefix}.pooler.dense.{leaf}"].clone()
        for leaf in ("weight", "bias")
        if f"{prefix}.pooler.dense.{leaf}" in state
    }

    def restore(model: Any) -> None:
        mlm = model.heads["mlm"]
        mlm.load_state_dict({k: state[k.removeprefix("lm.")] for k in mlm.state_dict()})
        if "nsp" in model.heads:
            model.heads["nsp"].load_state_dict(
                {ours: state[theirs.format(p=prefix)] for ours, theirs in NSP_NAMES.items()}
            )

    return loaded.base_model, pooler, tokenizer, restore
