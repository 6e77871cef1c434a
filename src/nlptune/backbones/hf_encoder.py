"""``hf_encoder``: any transformers encoder (BERT, RoBERTa, MPNet, DeBERTa, DistilBERT, ...).

The encoder is the family's base model (``AutoModel``) without its pooler; the pooler of BERT-style
checkpoints initialises the classification head instead. A trained model is saved as the standard
transformers class of its task (``AutoModelFor*``, real label names), with any head weights that
class has no place for (a CRF, a word-sense head) beside it as safetensors + JSON.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from nlptune.backbones.base import Export, LayerGroup
from nlptune.backbones.hf_export import (
    AUTO_CLASSES,
    LAYOUT,
    label_config,
    load_extra,
    split_head,
    standard_class,
)
from nlptune.backbones.hf_paths import first_line, quiet_transformers, resolve_model_path
from nlptune.backbones.hf_text import HFTextEncoder
from nlptune.config import BackboneConfig
from nlptune.errors import ModelError
from nlptune.registry import BACKBONES

logger = logging.getLogger("nlptune")

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class HFEncoderModule(nn.Module):
    """A transformers base model as an :class:`~nlptune.backbones.base.Encoder`."""

    def __init__(self, base: Any, pooler: dict[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        if getattr(base, "pooler", None) is not None:
            base.pooler = None  # the classification head has its own (initialised from this one)
        self.base = base
        self.config = base.config
        self.hidden_size = int(base.config.hidden_size)
        self.pretrained_pooler = pooler or {}
        self._accepts = set(inspect.signature(base.forward).parameters)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: batch[k] for k in _INPUTS if k in batch and k in self._accepts}
        return self.base(**inputs)[0]  # (B, T, H)

    def layer_groups(self) -> list[LayerGroup]:
        names = [n for n, _ in self.named_parameters()]
        layers = _layer_list(self.base, num_layers(self.config))
        groups: dict[str, list[str]] = {"embeddings": []}
        groups.update({f"layer.{i}": [] for i in range(len(layers[1]) if layers else 0)})
        groups["top"] = []
        for name in names:
            inner = name.removeprefix("base.")
            if layers and inner.startswith(layers[0] + "."):
                groups[f"layer.{inner[len(layers[0]) + 1 :].split('.')[0]}"].append(name)
            elif "embed" in inner:
                groups["embeddings"].append(name)
            else:
                groups["top"].append(name)
        return [LayerGroup(k, tuple(v)) for k, v in groups.items()]

    def embedding_parameters(self) -> list[str]:
        matrix = self.base.get_input_embeddings().weight
        return [n for n, p in self.named_parameters() if p is matrix]


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


def lm_parts(encoder: HFEncoderModule) -> list[tuple[str, nn.Module]]:
    """The architecture's masked-LM head for ``encoder`` (fresh weights, as transformers
    initialises them; the output layer tied to the encoder's input embeddings when the
    architecture ties them). Checked once against the architecture's own forward."""
    from transformers import AutoModelForMaskedLM

    config = encoder.config
    try:
        with quiet_transformers():
            model = AutoModelForMaskedLM.from_config(copy.deepcopy(config), dtype=torch.float32)
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
    with torch.no_grad():
        states = model.base_model(input_ids=probe)[0][0]
        mine = states
        for _, module in parts:
            mine = module(mine)
        if mine.shape != model(input_ids=probe).logits[0].shape or not torch.allclose(
            mine, model(input_ids=probe).logits[0], atol=1e-4
        ):
            raise ModelError(
                f"nlptune can't tell which modules of {type(model).__name__} make its masked-LM "
                "head; use a BERT-, RoBERTa-, DeBERTa-, MPNet- or DistilBERT-style model"
            )
    output = model.get_output_embeddings()
    if output is not None and output.weight is model.get_input_embeddings().weight:
        output.weight = encoder.base.get_input_embeddings().weight  # tie to our encoder's
    return parts


def tied_names(encoder: HFEncoderModule) -> set[str]:
    """transformers' names of masked-LM head weights tied to others (the output layer to the
    input embeddings, BERT's decoder bias to the head's bias): loaded through their partners."""
    if not getattr(encoder.config, "tie_word_embeddings", True):
        return set()
    return set(getattr(_masked_lm_class(encoder.config), "_tied_weights_keys", None) or ())


def _masked_lm_class(config: Any) -> Any:
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING

    return MODEL_FOR_MASKED_LM_MAPPING[type(config)]


def num_layers(config: Any) -> int:
    for attr in ("num_hidden_layers", "n_layers", "num_layers", "n_layer"):
        if isinstance(getattr(config, attr, None), int):
            return int(getattr(config, attr))
    return 0


def _layer_list(base: nn.Module, n: int) -> tuple[str, nn.ModuleList] | None:
    for name, module in base.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n and n:
            return name, module
    return None


@BACKBONES.register("hf_encoder")
class HFEncoder:
    """A transformers encoder (BERT, RoBERTa, MPNet, DeBERTa, ...) from a folder, hub or package."""

    Config = BackboneConfig
    head_kinds = frozenset(
        {"classification", "token", "span", "target", "masked_lm", "next_sentence"}
    )
    freeze_embeddings = True  # strategy.freeze_embeddings when the config leaves it null

    def __init__(self, path: str, max_length: int = 256, init: str = "pretrained") -> None:
        self.path, self.max_length, self.init = path, max_length, init
        self._pretraining: dict[str, Any] = {}  # the checkpoint's own pre-training heads, read once

    def _config(self) -> Any:
        from transformers import AutoConfig

        try:
            return AutoConfig.from_pretrained(resolve_model_path(self.path))
        except (OSError, ValueError) as err:
            raise ModelError(
                f"backbone.path {self.path}: not a model folder: {first_line(err)}"
            ) from None

    def check(self) -> None:
        config = self._config()
        if getattr(config, "is_encoder_decoder", False):
            raise ModelError(
                f"backbone.path {self.path} is an encoder-decoder ({config.model_type}); this "
                "task needs an encoder such as BERT"
            )

    def check_heads(self, kinds: set[str]) -> None:
        """Refuse pre-training heads the architecture has no transformers class for."""
        if not kinds & {"masked_lm", "next_sentence"}:
            return
        config = self._config()
        from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING

        if "masked_lm" in kinds and type(config) not in MODEL_FOR_MASKED_LM_MAPPING:
            raise ModelError(
                f"backbone.path {self.path}: {config.model_type} has no masked-LM class in "
                "transformers; use a BERT-, RoBERTa-, DeBERTa-, MPNet- or DistilBERT-style model"
            )
        if "next_sentence" in kinds and config.model_type not in NSP_TYPES:
            raise ModelError(
                f"backbone.path {self.path}: {config.model_type} models have no next-sentence "
                f"head (BERT-style models do: {', '.join(sorted(NSP_TYPES))}); use "
                "task.objectives=[mlm]"
            )

    def num_layers(self) -> int:
        return num_layers(self._config())

    def load(self) -> tuple[HFEncoderModule, set[str]]:
        from transformers import AutoModel

        if self.init == "random":  # the same architecture, fresh weights (seeded by the run)
            with quiet_transformers():
                base = AutoModel.from_config(self._config(), dtype=torch.float32)
            encoder = HFEncoderModule(base)
            logger.info("backbone.init random: %s weights start from scratch", self.path)
            return encoder, set()  # a backbone to strategies (frozen: fixed random features)
        try:
            with quiet_transformers():
                # fp32 master weights whatever the checkpoint's dtype (transformers 5 loads
                # "auto"): mixed precision comes from autocast, never from half parameters.
                base, info = AutoModel.from_pretrained(
                    resolve_model_path(self.path), output_loading_info=True, dtype=torch.float32
                )
        except (OSError, ValueError) as err:
            raise ModelError(
                f"backbone.path {self.path}: can't load the model: {first_line(err)}"
            ) from None
        prefix = f"{base.base_model_prefix}."
        new = {str(k if isinstance(k, str) else k[0]) for k in info.get("missing_keys", ())}
        new = {k.removeprefix(prefix) for k in new}
        pooler = getattr(base, "pooler", None)
        dense = getattr(pooler, "dense", None)
        weights = {}
        if isinstance(dense, nn.Linear) and not any(k.startswith("pooler.") for k in new):
            weights = {"weight": dense.weight.detach().clone(), "bias": dense.bias.detach().clone()}
        encoder = HFEncoderModule(base, weights)
        kept = {n for n, _ in encoder.named_parameters()}
        return encoder, {f"base.{k}" for k in new} & kept

    def head_options(self, kind: str, encoder: Any) -> dict[str, Any]:
        config = encoder.config
        dropout: Any = getattr(config, "classifier_dropout", None)
        if dropout is None:
            dropout = getattr(config, "hidden_dropout_prob", 0.1)
        options: dict[str, Any] = {}
        if kind == "masked_lm":
            return {"parts": lm_parts(encoder), "vocab_size": int(encoder.config.vocab_size)}
        # as transformers initialises its heads
        if kind in ("classification", "token", "span", "next_sentence"):
            options["init_std"] = float(getattr(config, "initializer_range", 0.02))
        if kind in ("classification", "token", "target"):
            options["dropout"] = float(dropout)
        if kind == "classification":
            layout = LAYOUT.get(config.model_type, "bert")
            if layout == "distilbert":
                options.update(pooler="relu", dropout=float(config.seq_classif_dropout))
            elif layout == "deberta":
                options.update(pooler=config.pooler_hidden_act, dropout_before_pooler=True)
            else:
                act = "gelu" if layout == "electra" else "tanh"
                options.update(pooler=act, dropout_before_pooler=layout != "bert")
        return options

    def head_init(self, kind: str, encoder: Any) -> dict[str, torch.Tensor]:
        if kind in ("masked_lm", "next_sentence"):
            return self._pretraining_head(kind, encoder)
        if kind != "classification" or LAYOUT.get(encoder.config.model_type, "bert") != "bert":
            return {}
        return {f"pooler.{k}": v for k, v in encoder.pretrained_pooler.items()}

    def _pretraining_head(self, kind: str, encoder: Any) -> dict[str, torch.Tensor]:
        """The checkpoint's masked-LM (or next-sentence) head weights under our head's names;
        empty, and said in the log, when the checkpoint has none (sentence-embedding models)."""
        if self.init == "random":
            return {}
        import transformers

        auto = "AutoModelForPreTraining" if kind == "next_sentence" else "AutoModelForMaskedLM"
        if auto not in self._pretraining:
            with quiet_transformers():
                model, info = getattr(transformers, auto).from_pretrained(
                    resolve_model_path(self.path), output_loading_info=True, dtype=torch.float32
                )
            missing = {str(k if isinstance(k, str) else k[0]) for k in info["missing_keys"]}
            self._pretraining[auto] = (model.state_dict(), missing, model.base_model_prefix)
        state, missing, prefix = self._pretraining[auto]
        if kind == "next_sentence":
            names = {ours: theirs.format(p=prefix) for ours, theirs in NSP_NAMES.items()}
            have = {o: t for o, t in names.items() if t in state and t not in missing}
            if "out.weight" not in have:
                logger.info(
                    "next-sentence head: %s has none; initialised%s",
                    self.path,
                    " (its pooler from the checkpoint)" if "pooler.weight" in have else "",
                )
            return {ours: state[theirs] for ours, theirs in have.items()}
        tied = tied_names(encoder)
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
                encoder.config.model_type,
            )
        return {f"lm.{k}": v for k, v in head.items() if k not in missing}

    def text_encoder(self) -> HFTextEncoder:
        from transformers import AutoTokenizer

        try:
            return HFTextEncoder(AutoTokenizer.from_pretrained(resolve_model_path(self.path)))
        except (OSError, ValueError) as err:
            raise ModelError(
                f"backbone.path {self.path}: can't load a tokenizer: {first_line(err)}"
            ) from None

    def save(self, model: Any, text_encoder: Any, folder: Path, export: Export) -> None:
        import transformers

        if export.kind == "masked_lm":
            self._save_pretraining(model, text_encoder, folder)
            return
        base = model.encoder.base
        kind, names = standard_class(export, base.config.model_type)
        config = copy.deepcopy(base.config)
        label_config(config, export)
        first, *rest = model.heads.items()
        mapped, extra = split_head(first[1].state_dict(), names, base.base_model_prefix)
        for name, head in rest:
            extra.update({f"{name}.{k}": v for k, v in head.state_dict().items()})
        if kind == "encoder":
            base.save_pretrained(folder, safe_serialization=True)
        else:
            with quiet_transformers():
                standard = getattr(transformers, AUTO_CLASSES[kind]).from_config(config)
            prefix = standard.base_model_prefix
            state = {f"{prefix}.{k}": v for k, v in base.state_dict().items()} | mapped
            missing, unexpected = standard.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise RuntimeError(f"can't map the model onto {kind}: {missing} {unexpected}")
            standard.save_pretrained(folder, safe_serialization=True)
        if extra:
            stem = export.extra
            short = {k.removeprefix(f"{stem}."): v.contiguous() for k, v in extra.items()}
            save_file(short, str(folder / f"{stem}.safetensors"))
            info = {"labels": list(export.label_names), "keys": sorted(extra)}
            (folder / f"{stem}.json").write_text(json.dumps(info))
        text_encoder.save(folder)

    def _save_pretraining(self, model: Any, text_encoder: Any, folder: Path) -> None:
        """A masked-LM run as ``*ForMaskedLM`` (``*ForPreTraining`` with next-sentence
        prediction): fill-mask pipelines load it, and so does any task as its backbone."""
        import transformers

        base, nsp = model.encoder.base, "nsp" in model.heads
        # BERT-style checkpoints keep their pooler (a later classification head starts from it):
        # *ForPreTraining holds it, with the next-sentence head (fresh when it did not train)
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
        if nsp:
            state |= {
                theirs.format(p=prefix): model.heads["nsp"].state_dict()[ours]
                for ours, theirs in NSP_NAMES.items()
            }
        elif pretraining:
            state |= {f"{prefix}.pooler.dense.{k}": v for k, v in pooler.items()}
            fresh = standard.state_dict()
            state |= {k: fresh[k] for k in fresh if k.startswith("cls.seq_relationship.")}
        missing, unexpected = standard.load_state_dict(state, strict=False)
        missing = [k for k in missing if k not in tied_names(model.encoder)]
        if missing or unexpected:
            raise RuntimeError(f"can't map the model onto {auto}: {missing} {unexpected}")
        standard.save_pretrained(folder, safe_serialization=True)
        text_encoder.save(folder)

    def _load_pretraining(
        self, folder: Path, export: Export, make_model: Callable[[Any], Any]
    ) -> tuple[Any, HFTextEncoder]:
        import transformers

        nsp = bool(export.settings.get("nsp"))
        saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        pretraining = any(a.endswith("ForPreTraining") for a in saved.get("architectures") or ())
        auto = "AutoModelForPreTraining" if pretraining else "AutoModelForMaskedLM"
        with quiet_transformers():
            loaded = getattr(transformers, auto).from_pretrained(folder, dtype=torch.float32)
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        state, base = loaded.state_dict(), loaded.base_model
        prefix = base.base_model_prefix
        pooler = {
            leaf: state[f"{prefix}.pooler.dense.{leaf}"].clone()
            for leaf in ("weight", "bias")
            if f"{prefix}.pooler.dense.{leaf}" in state
        }
        model = make_model(HFEncoderModule(base, pooler))
        mlm = model.heads["mlm"]
        mlm.load_state_dict({k: state[k.removeprefix("lm.")] for k in mlm.state_dict()})
        if nsp:
            model.heads["nsp"].load_state_dict(
                {ours: state[theirs.format(p=prefix)] for ours, theirs in NSP_NAMES.items()}
            )
        return model, HFTextEncoder(tokenizer)

    def load_trained(
        self, folder: Path, export: Export, make_model: Callable[[Any], Any]
    ) -> tuple[Any, HFTextEncoder]:
        import transformers

        if export.kind == "masked_lm":
            return self._load_pretraining(folder, export, make_model)
        with quiet_transformers():
            config = transformers.AutoConfig.from_pretrained(folder)
            kind, names = standard_class(export, config.model_type)
            loaded = getattr(transformers, AUTO_CLASSES[kind]).from_pretrained(
                folder, dtype=torch.float32
            )
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        base = loaded.base_model
        state = loaded.state_dict()
        prefix = base.base_model_prefix
        pooler = {
            k: state[f"{prefix}.pooler.dense.{k}"]
            for k in ("weight", "bias")
            if f"{prefix}.pooler.dense.{k}" in state
        }
        model = make_model(HFEncoderModule(base, pooler))
        first, *rest = model.heads.items()
        head_state: dict[str, torch.Tensor] = {}
        for ours, theirs in names.items():
            for leaf in ("weight", "bias"):
                head_state[f"{ours}.{leaf}"] = state[f"{theirs.format(p=prefix)}.{leaf}"]
        own = set(first[1].state_dict())
        extra = load_extra(folder, export.extra, own)
        first[1].load_state_dict(head_state | {k: v for k, v in extra.items() if k in own})
        for name, head in rest:
            part = {k[len(name) + 1 :]: v for k, v in extra.items() if k.startswith(f"{name}.")}
            head.load_state_dict(part)
        return model, HFTextEncoder(tokenizer)
