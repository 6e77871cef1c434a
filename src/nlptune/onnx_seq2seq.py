"""ONNX export and generation for encoder-decoders (``text_to_text`` runs).

The export writes two graphs: ``encoder.onnx`` (``input_ids``, ``attention_mask`` ->
``encoder_hidden_states``) and ``decoder.onnx`` (``decoder_input_ids``,
``encoder_hidden_states``, ``attention_mask`` -> ``logits`` of every decoder position; no key/value
cache, so each step runs the decoder over the tokens so far), plus ``generation_config.json``:
the model's decoding settings as the PyTorch run used them.

:class:`OnnxSeq2Seq` generates with them as ``model.generate`` does for the settings nlptune
uses: greedy search, or the beam search of transformers (``num_beams``, ``length_penalty``,
``early_stopping``) with the logits processors a checkpoint's generation config may set
(``no_repeat_ngram_size``, ``bad_words_ids``, ``min_length``, ``min_new_tokens``,
``forced_bos_token_id``, ``forced_eos_token_id``, ``suppress_tokens``,
``begin_suppress_tokens``), transformers' own processor classes. A config that asks for any
other processor is refused at export.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from nlptune.errors import NlptuneError

ENCODER, DECODER = "encoder.onnx", "decoder.onnx"
GENERATION_FILE = "generation_config.json"
# generation settings the runner does not implement: (key, the value that means "off")
UNSUPPORTED = (
    ("repetition_penalty", 1.0),
    ("encoder_repetition_penalty", 1.0),
    ("encoder_no_repeat_ngram_size", 0),
    ("sequence_bias", None),
    ("exponential_decay_length_penalty", None),
    ("forced_decoder_ids", None),
    ("diversity_penalty", 0.0),
    ("guidance_scale", 1.0),
)


def export_graphs(
    trained: Any,
    batch: Mapping[str, torch.Tensor],
    staging: Path,
    opset: int,
    tracing: Mapping[str, Any],
) -> None:
    """Write the encoder and decoder graphs and the generation config of the run ``trained``
    (a :class:`~nlptune.predict.Predictor`) into ``staging``; ``batch``: inputs to trace."""
    from transformers.modeling_outputs import BaseModelOutput

    module = trained.model.encoder  # Seq2SeqModule
    module.set_generation(trained.task.generation)
    model = module.model.eval()
    config = model.generation_config
    for key, off in UNSUPPORTED:
        value = getattr(config, key, None)
        if value is not None and value != off:
            raise NlptuneError(
                f"the model's generation config sets {key}={value!r}, which the ONNX runner "
                "does not implement; serve the run with `nlptune serve` instead"
            )
    encoder = model.get_encoder()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder  # a submodule: its weights are the graph's initialisers

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
            states: torch.Tensor = out.last_hidden_state
            return states

    class Decoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self, decoder_input_ids: torch.Tensor, states: torch.Tensor, mask: torch.Tensor
        ) -> torch.Tensor:
            out = self.model(
                encoder_outputs=BaseModelOutput(last_hidden_state=states),
                attention_mask=mask,
                decoder_input_ids=decoder_input_ids,
                use_cache=False,
                return_dict=True,
            )
            logits: torch.Tensor = out.logits
            return logits

    ids, mask = batch["input_ids"], batch["attention_mask"]
    start = start_token(model)
    steps = torch.full((len(ids), 3), start, dtype=torch.long)
    steps[:, 1:] = ids[:, 1:3]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing notes on transformers' shape checks
        states = Encoder()(ids, mask)
        torch.onnx.export(
            Encoder().eval(),
            (ids, mask),
            str(staging / ENCODER),
            input_names=["input_ids", "attention_mask"],
            output_names=["encoder_hidden_states"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "length"},
                "attention_mask": {0: "batch", 1: "length"},
                "encoder_hidden_states": {0: "batch", 1: "length"},
            },
            opset_version=opset,
            **tracing,
        )
        torch.onnx.export(
            Decoder().eval(),
            (steps, states, mask),
            str(staging / DECODER),
            input_names=["decoder_input_ids", "encoder_hidden_states", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={
                "decoder_input_ids": {0: "batch", 1: "steps"},
                "encoder_hidden_states": {0: "batch", 1: "length"},
                "attention_mask": {0: "batch", 1: "length"},
                "logits": {0: "batch", 1: "steps"},
            },
            opset_version=opset,
            **tracing,
        )
    settings = copy.deepcopy(config)
    settings.decoder_start_token_id = start
    settings.eos_token_id = eos_tokens(model)
    settings.pad_token_id = _first(config.pad_token_id, getattr(model.config, "pad_token_id", None))
    settings.save_pretrained(staging)


def start_token(model: Any) -> int:
    """The id a generated sequence starts with (as transformers picks it)."""
    config, gen = model.config, model.generation_config
    decoder = getattr(config, "decoder", None)
    start = _first(
        getattr(gen, "decoder_start_token_id", None),
        getattr(config, "decoder_start_token_id", None),
        getattr(gen, "bos_token_id", None),
        getattr(decoder, "bos_token_id", None),
        getattr(config, "bos_token_id", None),
    )
    if start is None:
        raise NlptuneError("the model names no decoder start token; it can't be exported")
    return int(start[0] if isinstance(start, list) else start)


def eos_tokens(model: Any) -> list[int] | None:
    value = _first(
        getattr(model.generation_config, "eos_token_id", None),
        getattr(model.config, "eos_token_id", None),
    )
    if value is None:
        return None
    return [int(v) for v in (value if isinstance(value, list) else [value])]


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


class OnnxSeq2Seq:
    """The two graphs as the runner's model: ``model.encoder.generate(batch, settings)``, as
    :meth:`nlptune.backbones.hf_seq2seq.Seq2SeqModule.generate` answers it."""

    def __init__(self, folder: Path, int8: bool, threads: int | None) -> None:
        from transformers import GenerationConfig

        from nlptune.onnx_session import OnnxModel

        suffix = ".int8.onnx" if int8 else ".onnx"
        self.encoder_graph = OnnxModel(folder / ENCODER.replace(".onnx", suffix), threads)
        self.decoder_graph = OnnxModel(folder / DECODER.replace(".onnx", suffix), threads)
        self.config = GenerationConfig.from_pretrained(folder)
        self.encoder = self  # the task calls model.encoder.generate

    def generate(
        self, batch: Mapping[str, torch.Tensor], settings: Mapping[str, Any]
    ) -> torch.Tensor:
        from nlptune.backbones.hf_seq2seq import GENERATION_KEYS

        config = copy.deepcopy(self.config)
        for key in GENERATION_KEYS:
            if settings.get(key) is not None:
                setattr(config, key, settings[key])
        config.early_stopping = config.num_beams > 1
        ids, mask = batch["input_ids"], batch["attention_mask"]
        states = self.encoder_graph(input_ids=ids, attention_mask=mask)["encoder_hidden_states"]
        search = _Search(self.decoder_graph, config, states, mask)
        return search.greedy() if config.num_beams == 1 else search.beam()


class _Search:
    """transformers' greedy and (vectorised) beam search over the decoder graph, for one batch."""

    def __init__(self, decoder: Any, config: Any, states: torch.Tensor, mask: torch.Tensor):
        self.decoder, self.config, self.states, self.mask = decoder, config, states, mask
        self.start = int(config.decoder_start_token_id)
        self.eos = torch.tensor(config.eos_token_id or [], dtype=torch.long)
        pad = config.pad_token_id
        self.pad = int(pad if pad is not None else (self.eos[0] if len(self.eos) else 0))
        self.max_length = 1 + int(config.max_new_tokens)  # the start token counts
        self.processors = _processors(config, self.max_length, self.eos)

    def _logits(self, seqs: torch.Tensor, states: torch.Tensor, mask: torch.Tensor) -> Any:
        out = self.decoder(
            decoder_input_ids=seqs, encoder_hidden_states=states, attention_mask=mask
        )
        return out["logits"][:, -1, :].float()

    def _process(self, seqs: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for processor in self.processors:
            scores = processor(seqs, scores)
        return scores

    def _hits_end(self, seqs: torch.Tensor) -> torch.Tensor:
        done = torch.full((len(seqs),), seqs.shape[1] >= self.max_length, dtype=torch.bool)
        if len(self.eos):
            done = done | torch.isin(seqs[:, -1], self.eos)
        return done

    def greedy(self) -> torch.Tensor:
        b = len(self.states)
        seqs = torch.full((b, 1), self.start, dtype=torch.long)
        unfinished = torch.ones(b, dtype=torch.long)
        while True:
            scores = self._process(seqs, self._logits(seqs, self.states, self.mask))
            nxt = scores.argmax(-1)
            if len(self.eos):
                nxt = nxt * unfinished + self.pad * (1 - unfinished)
            seqs = torch.cat([seqs, nxt[:, None]], dim=1)
            unfinished = unfinished & ~self._hits_end(seqs).long()
            if unfinished.max() == 0:
                return seqs

    def beam(self) -> torch.Tensor:
        """``GenerationMixin._beam_search`` (transformers 5), without sampling or caches."""
        n, b = int(self.config.num_beams), len(self.states)
        penalty, early = float(self.config.length_penalty), self.config.early_stopping
        states = self.states.repeat_interleave(n, dim=0)
        mask = self.mask.repeat_interleave(n, dim=0)
        keep = max(2, 1 + len(self.eos)) * n
        top_n = torch.cat(
            [torch.ones(n, dtype=torch.bool), torch.zeros(keep - n, dtype=torch.bool)]
        )
        # transformers' fill value, its `or` included (a pad id 0 gives the end token)
        fill = (self.pad or int(self.eos[0])) if len(self.eos) else -1
        running = torch.full((b, n, self.max_length), fill, dtype=torch.long)
        running[:, :, 0] = self.start
        sequences = running.clone()
        running_scores = torch.zeros(b, n)
        running_scores[:, 1:] = -1e9
        scores = torch.full((b, n), -1e9)
        finished = torch.zeros(b, n, dtype=torch.bool)
        improvable = torch.ones(b, 1, dtype=torch.bool)
        lengths = torch.zeros(b, n, dtype=torch.long)  # generated tokens of the kept hypotheses
        running_lengths = torch.zeros(b, n, dtype=torch.long)
        cur = 1
        while True:
            flat = running[:, :, :cur].reshape(b * n, cur)
            logp = torch.log_softmax(self._logits(flat, states, mask), dim=-1)
            logp = self._process(flat, logp)
            vocab = logp.shape[-1]
            logp = (logp.view(b, n, vocab) + running_scores[:, :, None]).view(b, n * vocab)
            top_scores, top_index = torch.topk(logp, k=keep)
            beam = top_index // vocab
            top_seqs = _gather(running, beam)
            top_seqs[:, :, cur] = top_index % vocab
            top_lengths = _gather(running_lengths, beam) + 1
            hits = self._hits_end(top_seqs[:, :, : cur + 1].reshape(b * keep, cur + 1))
            hits = hits.view(b, keep)
            # the best unfinished continuations run on
            alive = top_scores + hits.float() * -1e9
            order = torch.topk(alive, k=n)[1]
            running = _gather(top_seqs, order)
            running_scores = _gather(alive, order)
            running_lengths = _gather(top_lengths, order)
            # finished ones join the kept hypotheses when they score higher
            ended = hits & top_n[None, :]
            final = top_scores / ((cur + 1 - 1) ** penalty)
            full = finished.all(dim=-1, keepdim=True) & (early is True)
            final = final + full.float() * -1e9 + (~improvable).float() * -1e9
            final = final + (~ended).float() * -1e9
            merged = torch.topk(torch.cat([scores, final], dim=1), k=n)[1]
            sequences = _gather(torch.cat([sequences, top_seqs], dim=1), merged)
            scores = _gather(torch.cat([scores, final], dim=1), merged)
            lengths = _gather(torch.cat([lengths, top_lengths], dim=1), merged)
            finished = _gather(torch.cat([finished, ended], dim=1), merged)
            cur += 1
            longest = early == "never" and penalty > 0.0
            best_length = self.max_length - 1 if longest else cur - 1
            best_running = running_scores[:, :1] / (best_length**penalty)
            worst = torch.where(finished, torch.min(scores, dim=1, keepdim=True)[0], -1.0e9)
            improvable = improvable & torch.any(best_running > worst, dim=-1, keepdim=True)
            open_beam = not (bool(finished.all()) and early is True)
            if not (bool(improvable.any()) and open_beam and not bool(hits.all())):
                break
        width = 1 + int(lengths[:, 0].max())
        return sequences[:, 0, :width]


def _gather(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values`` (B, K, ...) at ``index`` (B, M) along the beam axis."""
    while index.dim() < values.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(values, index.expand(-1, -1, *values.shape[2:]), dim=1)


def _processors(config: Any, max_length: int, eos: torch.Tensor) -> list[Any]:
    """transformers' logits processors for the settings the config holds, in its order."""
    from transformers.generation import logits_process as lp

    ends = eos.tolist() or None
    out: list[Any] = []
    if config.no_repeat_ngram_size:
        out.append(lp.NoRepeatNGramLogitsProcessor(config.no_repeat_ngram_size))
    if config.bad_words_ids is not None:
        out.append(lp.NoBadWordsLogitsProcessor(config.bad_words_ids, ends))
    if config.min_length and ends is not None and config.min_length > 0:
        out.append(lp.MinLengthLogitsProcessor(config.min_length, ends))
    if config.min_new_tokens and ends is not None and config.min_new_tokens > 0:
        out.append(lp.MinNewTokensLengthLogitsProcessor(1, config.min_new_tokens, ends))
    if config.forced_bos_token_id is not None:
        out.append(lp.ForcedBOSTokenLogitsProcessor(config.forced_bos_token_id))
    if config.forced_eos_token_id is not None:
        out.append(lp.ForcedEOSTokenLogitsProcessor(max_length, config.forced_eos_token_id))
    if config.suppress_tokens is not None:
        out.append(lp.SuppressTokensLogitsProcessor(config.suppress_tokens))
    if config.begin_suppress_tokens is not None:
        begin = 1 if config.forced_bos_token_id is None else 2
        out.append(lp.SuppressTokensAtBeginLogitsProcessor(config.begin_suppress_tokens, begin))
    return out
