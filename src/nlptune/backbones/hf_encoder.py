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

from nlptune.backbones import hf_adapter
from nlptune.backbones.base import Export, LayerGroup
from nlptune.backbones.hf_export import (
    AUTO_CLASSES,
    LAYOUT,
    label_config,
    load_extra,
    split_head,
    standard_class,
)
from nlptune.backbones.hf_paths import (
    check_max_length,
    check_tokenizer_files,
    load_saved,
    quiet_transformers,
    resolve_model_path,
)
from nlptune.backbones.hf_pretraining import (
    NSP_TYPES,
    CheckpointHeads,
    check_heads,
    lm_parts,
    load_pretraining,
    save_pretraining,
)
from nlptune.backbones.hf_text import HFTextEncoder
from nlptune.compat import hf_dtype
from nlptune.config import BackboneConfig
from nlptune.errors import ModelError, first_line
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
        self.adapter: hf_adapter.Adapter | None = None  # LoRA adapters a strategy added

    @property
    def transformer(self) -> nn.Module:
        """The transformers model (what LoRA adapts)."""
        return self.base

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

    def enable_checkpointing(self) -> None:
        """Recompute each layer's activations in the backward pass
        (``trainer.gradient_checkpointing``)."""
        checkpoint_layers(self)


def checkpoint_layers(module: nn.Module) -> None:
    """Turn on transformers' gradient checkpointing in the model inside ``module`` (found under
    a LoRA wrapper too), non-reentrant: correct with frozen layers and inputs that need no
    gradient (strategies frozen, last_k, gradual, lora)."""
    from transformers import PreTrainedModel

    inner = next((m for m in module.modules() if isinstance(m, PreTrainedModel)), None)
    if inner is None or not getattr(inner, "supports_gradient_checkpointing", False):
        name = type(inner if inner is not None else module).__name__
        raise ModelError(
            f"{name} can't recompute its layers in the backward pass; set "
            "trainer.gradient_checkpointing=false"
        )
    kwargs = {"use_reentrant": False}
    enable = getattr(inner, "activation_checkpointing_enable", None)  # transformers >= 5.x
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


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
    gradient_checkpointing = True  # trainer.gradient_checkpointing: the encoder can recompute

    def __init__(self, path: str, max_length: int = 256, init: str = "pretrained") -> None:
        self.path, self.max_length, self.init = path, max_length, init
        self._heads = CheckpointHeads(path)  # the checkpoint's own pre-training heads

    def _config(self) -> Any:
        from transformers import AutoConfig

        hf_adapter.refuse_adapters(self.path, "backbone.path")
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
        check_max_length(self.path, config, self.max_length)

    def check_heads(self, kinds: set[str]) -> None:
        """Refuse pre-training heads the architecture has no transformers class for."""
        if kinds & {"masked_lm", "next_sentence"}:
            check_heads(self.path, self._config(), kinds, lambda: self.text_encoder().tokenizer)

    def num_layers(self) -> int:
        return num_layers(self._config())

    def linear_layers(self) -> tuple[str, list[str]]:
        """The architecture and the names of its linear layers (what LoRA can adapt), read
        without loading weights."""
        from transformers import AutoModel

        config = self._config()
        return config.model_type, hf_adapter.skeleton_linears(lambda: AutoModel.from_config(config))

    def load(self) -> tuple[HFEncoderModule, set[str]]:
        from transformers import AutoModel

        if self.init == "random":  # the same architecture, fresh weights (seeded by the run)
            with quiet_transformers():
                base = AutoModel.from_config(self._config(), **hf_dtype(torch.float32))
            encoder = HFEncoderModule(base)
            logger.info("backbone.init random: %s weights start from scratch", self.path)
            return encoder, set()  # a backbone to strategies (frozen: fixed random features)
        try:
            with quiet_transformers():
                # fp32 master weights whatever the checkpoint's dtype (transformers 5 loads
                # "auto"): mixed precision comes from autocast, never from half parameters.
                base, info = AutoModel.from_pretrained(
                    resolve_model_path(self.path),
                    output_loading_info=True,
                    **hf_dtype(torch.float32),
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
        if kind == "next_sentence":
            return self._heads.next_sentence()
        return self._heads.masked_lm(encoder.config)

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

        if model.encoder.adapter is not None:  # LoRA, not merged: adapters, heads, base's id
            hf_adapter.save(model, folder, [hf_adapter.identity("backbone.path", self.path)])
            text_encoder.save(folder)
            return
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
            with quiet_transformers():  # no "Writing model shards" bar
                base.save_pretrained(folder, safe_serialization=True)
        else:
            with quiet_transformers():
                standard = getattr(transformers, AUTO_CLASSES[kind]).from_config(config)
            prefix = standard.base_model_prefix
            state = {f"{prefix}.{k}": v for k, v in base.state_dict().items()} | mapped
            missing, unexpected = standard.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise RuntimeError(f"can't map the model onto {kind}: {missing} {unexpected}")
            with quiet_transformers():  # no "Writing model shards" bar
                standard.save_pretrained(folder, safe_serialization=True)
        if extra:
            stem = export.extra
            short = {k.removeprefix(f"{stem}."): v.contiguous() for k, v in extra.items()}
            save_file(short, str(folder / f"{stem}.safetensors"))
            info = {"labels": list(export.label_names), "keys": sorted(extra)}
            (folder / f"{stem}.json").write_text(json.dumps(info))
        text_encoder.save(folder)

    def _save_pretraining(self, model: Any, text_encoder: Any, folder: Path) -> None:
        """A masked-LM run as ``*ForMaskedLM`` / ``*ForPreTraining`` (hf_pretraining)."""
        own = {}  # a BERT checkpoint's own next-sentence head, kept when it did not train
        encoder = model.encoder
        bert = encoder.config.model_type in NSP_TYPES and encoder.pretrained_pooler
        if bert and "nsp" not in model.heads and self.init != "random":
            own = self._heads.next_sentence(quiet=True)
        save_pretraining(model, folder, own)
        text_encoder.save(folder)

    def _load_pretraining(
        self, folder: Path, make_model: Callable[[Any], Any]
    ) -> tuple[Any, HFTextEncoder]:
        base, pooler, tokenizer, restore = load_pretraining(folder)
        model = make_model(HFEncoderModule(base, pooler))
        restore(model)
        return model, HFTextEncoder(tokenizer)

    def load_trained(
        self, folder: Path, export: Export, make_model: Callable[[Any], Any]
    ) -> tuple[Any, HFTextEncoder]:
        import transformers

        # before transformers reads it: 4.x fails on a folder without its tokenizer files with a
        # TypeError, 5.x builds an empty vocabulary (the same check as predict.check_trained)
        check_tokenizer_files(folder, f"{folder.parent}: model/")
        if hf_adapter.is_adapter(folder):
            return self._load_adapter(folder, make_model)
        if export.kind == "masked_lm":
            return self._load_pretraining(folder, make_model)
        with quiet_transformers():
            config = transformers.AutoConfig.from_pretrained(folder)
            kind, names = standard_class(export, config.model_type)
            loaded = load_saved(getattr(transformers, AUTO_CLASSES[kind]), folder)
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

    def _load_adapter(
        self, folder: Path, make_model: Callable[[Any], Any]
    ) -> tuple[Any, HFTextEncoder]:
        """A LoRA run saved unmerged: the base model (checked to be the one it trained on),
        then its adapters and heads."""
        from transformers import AutoTokenizer

        base = hf_adapter.find_bases(folder)["backbone.path"]
        encoder, _ = HFEncoder(str(base), self.max_length).load()
        model = make_model(encoder)
        hf_adapter.restore(model, folder)
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(folder)
        return model, HFTextEncoder(tokenizer)
