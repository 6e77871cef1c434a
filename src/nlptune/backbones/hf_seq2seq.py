"""``hf_seq2seq``: transformers encoder-decoders (T5, mT5, BART, Marian, ...) and encoder-decoders
warm-started from encoder checkpoints ("bert2bert").

The family's :class:`Seq2SeqModule` wraps the whole sequence-to-sequence LM: its forward returns
the model's own LM logits over the target (B, T_target, V), which the text-to-text head turns into
a loss; ``generate`` decodes with the settings saved in ``generation_config.json``. A trained model
is saved as the standard class, so ``AutoModelForSeq2SeqLM.from_pretrained(run/model)`` and its
``generate`` reproduce ``nlptune predict``.

A path to an encoder (BERT, RoBERTa, MiniLM, ...) builds an ``EncoderDecoderModel``: the encoder
and a copy of it as decoder, with cross-attention added (newly initialised, trained like a head),
decoder start = [CLS], end = [SEP], pad = [PAD]. ``tie_decoder`` shares the decoder's
self-attention and feed-forward weights and the embeddings with the encoder (Rothe et al.'s
"BERTShare"); the saved model is untied, so standard tools load it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn

from nlptune.backbones import hf_adapter
from nlptune.backbones.base import Export, LayerGroup
from nlptune.backbones.hf_encoder import _layer_list, checkpoint_layers, num_layers
from nlptune.backbones.hf_paths import (
    check_tokenizer_files,
    load_saved,
    quiet_transformers,
    resolve_model_path,
)
from nlptune.backbones.hf_text import HFTextEncoder
from nlptune.compat import hf_dtype
from nlptune.config import BackboneConfig
from nlptune.errors import ModelError, first_line
from nlptune.registry import BACKBONES

logger = logging.getLogger("nlptune")

GENERATION_KEYS = ("num_beams", "max_new_tokens", "length_penalty", "no_repeat_ngram_size")


class Seq2SeqConfig(BackboneConfig):
    type: str = Field("hf_seq2seq", description="backbone family (nlptune list backbones)")
    decoder_path: str | None = Field(
        None,
        description="hf_seq2seq from an encoder: the checkpoint that starts the decoder "
        "(default: backbone.path)",
    )
    tie_decoder: bool = Field(
        False,
        description="hf_seq2seq from an encoder: share the decoder's self-attention, feed-forward "
        "and embedding weights with the encoder",
    )


class Seq2SeqText(HFTextEncoder):
    """The tokenizer of an encoder-decoder: sources as :class:`HFTextEncoder` (no token types),
    targets framed as the decoder's labels, and ids back to text."""

    def __init__(self, tokenizer: Any, decoder_start: int | None) -> None:
        super().__init__(tokenizer)
        self.decoder_start = decoder_start

    def encode(
        self, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int
    ) -> dict[str, list[np.ndarray]]:
        return {"input_ids": super().encode(texts, pairs, max_length)["input_ids"]}

    def encode_targets(self, texts: Sequence[str], max_length: int) -> list[np.ndarray]:
        """Label ids of each target: framed as the tokenizer frames targets, less a leading
        decoder-start token (the decoder is fed that itself)."""
        enc = self.tokenizer(text_target=list(texts), truncation=True, max_length=max_length + 1)
        out = []
        for ids in enc["input_ids"]:
            if len(ids) > 1 and self.decoder_start is not None and ids[0] == self.decoder_start:
                ids = ids[1:]
            out.append(np.asarray(ids[:max_length], dtype=np.int32))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        text: str = self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)
        return text.strip()


class Seq2SeqModule(nn.Module):
    """A transformers seq2seq LM as an :class:`~nlptune.backbones.base.Encoder` whose states are
    the LM logits over the target."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        encoder = model.get_encoder()
        self.unused: dict[str, torch.Tensor] = {}  # saved as loaded, never trained: a pooler
        if getattr(encoder, "pooler", None) is not None:  # bert2bert: the decoder reads states
            prefix = next(n for n, m in model.named_modules() if m is encoder)
            state = encoder.pooler.state_dict()
            self.unused = {f"{prefix}.pooler.{k}": v.detach().clone() for k, v in state.items()}
            encoder.pooler = None
        self.model = model
        self.config = model.config
        self.hidden_size = int(model.get_output_embeddings().weight.shape[0])  # the vocabulary
        self.adapter: hf_adapter.Adapter | None = None  # LoRA adapters a strategy added

    @property
    def transformer(self) -> nn.Module:
        """The transformers model (what LoRA adapts)."""
        return self.model

    def enable_checkpointing(self) -> None:
        """Recompute each layer's activations (encoder and decoder) in the backward pass
        (``trainer.gradient_checkpointing``)."""
        checkpoint_layers(self)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        labels = batch.get("labels")
        if labels is None:
            raise ValueError("a seq2seq forward pass needs the target (labels)")
        decoder_inputs = self.model.prepare_decoder_input_ids_from_labels(labels=labels)
        out = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            decoder_input_ids=decoder_inputs,
            use_cache=False,
        )
        logits: torch.Tensor = out.logits
        return logits

    def generate(
        self, batch: Mapping[str, torch.Tensor], settings: Mapping[str, Any]
    ) -> torch.Tensor:
        """Generated ids (B, L) (pad after the end) with the model's generation config updated
        by ``settings`` (the same update :meth:`HFSeq2Seq.save` writes to the saved model)."""
        self.set_generation(settings)
        out: torch.Tensor = self.model.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            generation_config=self.model.generation_config,
        )
        return out

    def set_generation(self, settings: Mapping[str, Any]) -> None:
        """Deterministic decoding: greedy or beam search as ``settings`` say."""
        config = self.model.generation_config
        for key in GENERATION_KEYS:
            if settings.get(key) is not None:
                setattr(config, key, settings[key])
        config.early_stopping = config.num_beams > 1
        config.do_sample = False
        config.max_length = None  # max_new_tokens governs

    def layer_groups(self) -> list[LayerGroup]:
        model = self.model
        encoder, decoder = model.get_encoder(), model.get_decoder()
        ids = {
            "encoder": _member_ids(encoder, self.config, "encoder"),
            "decoder": _member_ids(decoder, self.config, "decoder"),
        }
        shared = id(_weight(model.get_input_embeddings()))  # the encoder's input embeddings
        groups: dict[str, list[str]] = {"embeddings": []}
        for stack in ("encoder", "decoder"):
            pre = "" if stack == "encoder" else "decoder."
            if stack == "decoder":
                groups[f"{pre}embeddings"] = []
            groups.update({f"{pre}layer.{i}": [] for i in range(len(ids[stack][1]))})
            groups[f"{pre}top"] = []
        for name, param in self.named_parameters():
            pid = id(param)
            group = "decoder.top"  # the LM head (untied), a projection between the stacks
            for stack in ("encoder", "decoder"):
                members, layers = ids[stack]
                pre = "" if stack == "encoder" else "decoder."
                if pid in members:
                    index = next((i for i, s in enumerate(layers) if pid in s), None)
                    if index is not None:
                        group = f"{pre}layer.{index}"
                    elif "embed" in name.rsplit(".", 1)[0] or "shared" in name:
                        group = f"{pre}embeddings"
                    else:
                        group = f"{pre}top"
                    break
            if pid == shared:
                group = "embeddings"
            groups[group].append(name)
        return [LayerGroup(k, tuple(v)) for k, v in groups.items()]

    def embedding_parameters(self) -> list[str]:
        matrices = [
            _weight(self.model.get_input_embeddings()),
            _weight(self.model.get_decoder().get_input_embeddings()),
        ]
        keep = {id(m) for m in matrices if m is not None}
        return [n for n, p in self.named_parameters() if id(p) in keep]


def _weight(module: Any) -> Any:
    return getattr(module, "weight", None)


def _member_ids(stack: nn.Module, config: Any, side: str) -> tuple[set[int], list[set[int]]]:
    """ids of every parameter of ``stack`` and of each of its layers."""
    sub = getattr(config, side, None)  # EncoderDecoderConfig keeps one config per side
    n = num_layers(sub) if sub is not None else _stack_layers(config, side)
    found = _layer_list(stack, n)
    layers = [{id(p) for p in layer.parameters()} for layer in found[1]] if found else []
    return {id(p) for p in stack.parameters()}, layers


def _stack_layers(config: Any, side: str) -> int:
    for attr in (f"{side}_layers", f"num_{side}_layers"):
        if isinstance(getattr(config, attr, None), int) and getattr(config, attr):
            return int(getattr(config, attr))
    return num_layers(config)  # T5: num_layers (num_decoder_layers is found above)


@BACKBONES.register("hf_seq2seq")
class HFSeq2Seq:
    """A transformers encoder-decoder, or one warm-started from an encoder checkpoint."""

    Config = Seq2SeqConfig
    head_kinds = frozenset({"seq2seq_lm"})
    gradient_checkpointing = True  # trainer.gradient_checkpointing: the model can recompute
    freeze_embeddings = False  # the (tied) word embeddings are also the output layer

    def __init__(
        self,
        path: str,
        max_length: int = 256,
        decoder_path: str | None = None,
        tie_decoder: bool = False,
        init: str = "pretrained",
    ) -> None:
        self.path, self.max_length, self.init = path, max_length, init
        self.decoder_path, self.tie_decoder = decoder_path, tie_decoder

    def _config(self, path: str, key: str = "backbone.path") -> Any:
        from transformers import AutoConfig

        hf_adapter.refuse_adapters(path, key)
        try:
            return AutoConfig.from_pretrained(resolve_model_path(path))
        except (OSError, ValueError) as err:
            raise ModelError(f"{key} {path}: not a model folder: {first_line(err)}") from None

    def _warm_start(self) -> bool:
        """True when the path is an encoder to build an encoder-decoder from."""
        return not getattr(self._config(self.path), "is_encoder_decoder", False)

    def check(self) -> None:
        config = self._config(self.path)
        if getattr(config, "is_encoder_decoder", False):
            if self.decoder_path is not None or self.tie_decoder:
                raise ModelError(
                    f"backbone.path {self.path} is already an encoder-decoder "
                    f"({config.model_type}); backbone.decoder_path and backbone.tie_decoder are "
                    "for building one from an encoder: remove them"
                )
            return
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        decoder = (
            self._config(self.decoder_path, "backbone.decoder_path")
            if self.decoder_path
            else config
        )
        if decoder.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            raise ModelError(
                f"backbone.{'decoder_path' if self.decoder_path else 'path'}: a "
                f"{decoder.model_type} model can't be a decoder; give an encoder-decoder (T5, "
                "BART, Marian) or a BERT-style encoder"
            )
        if self.tie_decoder and self.decoder_path not in (None, self.path):
            raise ModelError(
                "backbone.tie_decoder shares the encoder's weights with the decoder: leave "
                "backbone.decoder_path unset"
            )

    def num_layers(self) -> int:
        config = self._config(self.path)
        return _stack_layers(config, "encoder") if config.is_encoder_decoder else num_layers(config)

    def linear_layers(self) -> tuple[str, list[str]]:
        """The architecture (an encoder-decoder built from encoders: its encoder's) and the
        names of its linear layers (what LoRA can adapt), read without loading weights."""
        import transformers

        config = self._config(self.path)
        if getattr(config, "is_encoder_decoder", False):
            seq2seq = transformers.AutoModelForSeq2SeqLM
            return config.model_type, hf_adapter.skeleton_linears(
                lambda: seq2seq.from_config(config)
            )
        given = self._config(self.decoder_path or self.path)  # as _bert2bert builds the decoder
        decoder = type(given).from_dict(
            given.to_dict() | {"is_decoder": True, "add_cross_attention": True}
        )
        names = hf_adapter.skeleton_linears(lambda: transformers.AutoModel.from_config(config))
        names += hf_adapter.skeleton_linears(
            lambda: transformers.AutoModelForCausalLM.from_config(decoder)
        )
        return config.model_type, names

    def load(self) -> tuple[Seq2SeqModule, set[str]]:
        from transformers import AutoModelForSeq2SeqLM

        path = resolve_model_path(self.path)
        try:
            with quiet_transformers():
                if self.init == "random" and not self._warm_start():
                    config = self._config(self.path)
                    model = AutoModelForSeq2SeqLM.from_config(config, **hf_dtype(torch.float32))
                    new = set()  # a backbone to strategies, as a pre-trained one
                elif not self._warm_start():
                    model, info = AutoModelForSeq2SeqLM.from_pretrained(
                        path, output_loading_info=True, **hf_dtype(torch.float32)
                    )
                    new = {_key(k) for k in info.get("missing_keys", ())}
                else:
                    model, new = self._bert2bert(path)
                if self.init == "random":
                    logger.info("backbone.init random: %s weights start from scratch", self.path)
        except (OSError, ValueError) as err:
            raise ModelError(
                f"backbone.path {self.path}: can't load the model: {first_line(err)}"
            ) from None
        module = Seq2SeqModule(model)
        kept = {n for n, _ in module.named_parameters()}
        return module, {f"model.{k}" for k in new} & kept

    def _bert2bert(self, path: str) -> tuple[Any, set[str]]:
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, EncoderDecoderModel

        decoder_path = resolve_model_path(self.decoder_path) if self.decoder_path else path
        config = AutoConfig.from_pretrained(decoder_path, is_decoder=True, add_cross_attention=True)
        encoder: Any
        decoder: Any
        info: Any
        if self.init == "random":  # the same architecture, fresh weights (seeded by the run)
            encoder = AutoModel.from_config(
                AutoConfig.from_pretrained(path), **hf_dtype(torch.float32)
            )
            decoder = AutoModelForCausalLM.from_config(config, **hf_dtype(torch.float32))
            info = {"missing_keys": []}  # a backbone to strategies, as a pre-trained one
        else:
            encoder = AutoModel.from_pretrained(path, **hf_dtype(torch.float32))
            decoder, info = AutoModelForCausalLM.from_pretrained(  # type: ignore[misc]
                decoder_path, config=config, output_loading_info=True, **hf_dtype(torch.float32)
            )
        model: Any = EncoderDecoderModel(encoder=encoder, decoder=decoder)
        tokenizer = self._tokenizer(path)
        start, end = _start(tokenizer), _end(tokenizer)
        if start is None or end is None or tokenizer.pad_token_id is None:
            raise ModelError(
                f"backbone.path {self.path}: the tokenizer lacks a start ([CLS]/<s>), end "
                "([SEP]/</s>) or pad token, which a decoder needs"
            )
        for target in (model.config, model.generation_config):
            target.decoder_start_token_id, target.bos_token_id = start, start
            target.eos_token_id, target.pad_token_id = end, tokenizer.pad_token_id
        model.config.vocab_size = model.config.decoder.vocab_size
        if self.tie_decoder:
            _tie(model)
        # transformers 4.x names a missing key of the base model without its prefix
        # (``encoder.layer.0.crossattention...`` for ``bert.encoder...``), 5.x in full
        names = {n for n, _ in model.decoder.named_parameters()}
        prefix = f"{model.decoder.base_model_prefix}."
        missing = [_key(k) for k in info.get("missing_keys", ())]
        new = {
            f"decoder.{k if k in names or prefix + k not in names else prefix + k}" for k in missing
        }
        return model, new

    def head_options(self, kind: str, encoder: Any) -> dict[str, Any]:
        return {}

    def head_init(self, kind: str, encoder: Any) -> dict[str, torch.Tensor]:
        return {}

    def _tokenizer(self, path: str) -> Any:
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(path)
        except (OSError, ValueError) as err:
            raise ModelError(
                f"backbone.path {self.path}: can't load a tokenizer: {first_line(err)}"
            ) from None

    def text_encoder(self) -> Seq2SeqText:
        path = resolve_model_path(self.path)
        tokenizer = self._tokenizer(path)
        config = self._config(self.path)
        if getattr(config, "is_encoder_decoder", False):
            start = getattr(config, "decoder_start_token_id", None)
        else:  # built from an encoder (as in _bert2bert)
            start = _start(tokenizer)
        return Seq2SeqText(tokenizer, start)

    def save(self, model: Any, text_encoder: Any, folder: Path, export: Export) -> None:
        module = model.encoder
        if module.adapter is not None:  # LoRA, not merged: adapters, heads, base models' ids
            bases = [hf_adapter.identity("backbone.path", self.path)]
            if self.decoder_path:
                bases.append(hf_adapter.identity("backbone.decoder_path", self.decoder_path))
            hf_adapter.save(model, folder, bases)
            self._save_text(text_encoder, folder)
            return
        seq2seq = module.model
        generation = export.settings.get("generation", {})
        module.set_generation(generation)
        prefix = export.settings.get("prefix", "")
        seq2seq.config.task_specific_params = {"text_to_text": {"prefix": prefix}}
        # every tensor its own copy (a tied decoder is saved untied), plus the unused pooler, so
        # that the folder is the standard model and loads without missing weights
        state = {k: v.detach().clone() for k, v in seq2seq.state_dict().items()} | module.unused
        with quiet_transformers():  # no "Writing model shards" bar
            seq2seq.save_pretrained(folder, state_dict=state, safe_serialization=True)
        _spell_out_generation(folder, seq2seq.generation_config, generation)
        self._save_text(text_encoder, folder)

    @staticmethod
    def _save_text(text_encoder: Any, folder: Path) -> None:
        text_encoder.save(folder)
        (folder / "nlptune_seq2seq.json").write_text(
            json.dumps({"decoder_start_token_id": text_encoder.decoder_start})
        )

    def load_trained(
        self, folder: Path, export: Export, make_model: Callable[[Any], Any]
    ) -> tuple[Any, Seq2SeqText]:
        import transformers

        # before transformers reads it: 4.x fails on a folder without its tokenizer files with a
        # TypeError, 5.x builds an empty vocabulary (the same check as predict.check_trained)
        check_tokenizer_files(folder, f"{folder.parent}: model/")
        if hf_adapter.is_adapter(folder):  # LoRA, not merged: the base it trained on, adapted
            bases = hf_adapter.find_bases(folder)
            decoder = bases.get("backbone.decoder_path")
            base = HFSeq2Seq(
                str(bases["backbone.path"]),
                self.max_length,
                str(decoder) if decoder else None,
                self.tie_decoder,
            )
            model = make_model(base.load()[0])
            hf_adapter.restore(model, folder)
        else:
            with quiet_transformers():
                model = make_model(
                    Seq2SeqModule(load_saved(transformers.AutoModelForSeq2SeqLM, folder))
                )
        with quiet_transformers():
            tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        info = json.loads((folder / "nlptune_seq2seq.json").read_text())
        return model, Seq2SeqText(tokenizer, info["decoder_start_token_id"])


def _spell_out_generation(folder: Path, config: Any, settings: Mapping[str, Any]) -> None:
    """Write every decoding setting the run chose into ``generation_config.json``, also one
    equal to transformers' default: 4.x saves only the values that differ from its defaults
    (``num_beams: 1`` would be left out), 5.x every value set. The folder reads the same
    either way; spelt out, it says what decoding the model was evaluated with."""
    path = folder / "generation_config.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    chosen = {k: getattr(config, k) for k in GENERATION_KEYS if settings.get(k) is not None}
    if any(saved.get(k) != v for k, v in chosen.items()):
        path.write_text(json.dumps({**saved, **chosen}, indent=2, sort_keys=True) + "\n", "utf-8")


def _start(tokenizer: Any) -> int | None:
    """The decoder start of a model built from an encoder: [CLS] (or <s>)."""
    cls = tokenizer.cls_token_id
    return int(cls) if cls is not None else tokenizer.bos_token_id


def _end(tokenizer: Any) -> int | None:
    sep = tokenizer.sep_token_id
    return int(sep) if sep is not None else tokenizer.eos_token_id


def _key(k: Any) -> str:
    return str(k if isinstance(k, str) else k[0])


_TIED_PARTS = ("attention", "intermediate", "output")


def _tie(model: Any) -> None:
    """Share the encoder's embedding and each layer's self-attention and feed-forward parameters
    with the decoder (cross-attention stays the decoder's own)."""
    encoder, decoder = model.encoder, model.decoder.base_model
    if type(encoder) is not type(decoder) or len(encoder.encoder.layer) != len(
        decoder.encoder.layer
    ):
        raise ModelError("backbone.tie_decoder needs the same architecture on both sides")
    pairs = [(decoder.embeddings, encoder.embeddings)]
    for mine, theirs in zip(decoder.encoder.layer, encoder.encoder.layer, strict=True):
        pairs += [(getattr(mine, part), getattr(theirs, part)) for part in _TIED_PARTS]
    for mine, theirs in pairs:  # parameters, not modules: the decoder's stay causal
        own = dict(mine.named_modules())
        for name, module in theirs.named_modules():
            for key, param in module._parameters.items():
                if param is not None:
                    own[name]._parameters[key] = param
    model.decoder.get_output_embeddings().weight = encoder.embeddings.word_embeddings.weight
