"""``static_vectors``: pre-trained word vectors (GloVe, word2vec, fastText, spaCy) under a BiLSTM
or CNN network, with optional character features and an auxiliary language-model loss.

The vocabulary is fitted to the training data (training words that the vectors hold, with case
fallback, plus frequent training words they lack, randomly initialised): only those rows are
read from the vectors file, kept in the model and saved, so a trained run needs nothing else.
The network (characters, BiLSTM/CNN) is newly initialised, so it trains under every strategy:
``frozen`` keeps the vectors fixed, ``full`` fine-tunes them too (at ``trainer.lr``, the network
and heads at ``trainer.head_lr``). Position 0 of the states holds the pooled sentence (max or
mean over the words), where classification heads read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from safetensors.torch import load_file, save_file
from torch import nn

from nlptune.backbones.base import Export, LayerGroup
from nlptune.backbones.packaged import vectors_path
from nlptune.backbones.word_text import SPECIALS, WordCounter, WordTextEncoder
from nlptune.config import BackboneConfig
from nlptune.data.vectors import VectorsError, detect, read_vectors
from nlptune.errors import ConfigError, ModelError
from nlptune.heads.model import HeadSpec
from nlptune.heads.word_lm import WordLMHead, compact, word_positions
from nlptune.registry import BACKBONES

logger = logging.getLogger("nlptune")

NETWORK_FILE = "static_vectors.json"
WEIGHTS_FILE = "model.safetensors"


class StaticVectorsConfig(BackboneConfig):
    type: str = Field("static_vectors", description="backbone family (nlptune list backbones)")
    path: str | None = Field(  # type: ignore[assignment]
        None,
        description="word vectors (GloVe/word2vec .txt .gz .bin, fastText .vec "
        ".bin, a .npy + word list folder, a spaCy vocab, or glove-6b-50d / en_core_web_md); "
        "null = random initialisation of dim-sized vectors",
    )
    max_length: int = Field(
        1024, ge=8, description="longest input in pieces (a word, plus its characters)"
    )
    dim: int = Field(100, ge=1, description="vector size when path is null")
    lowercase: bool = Field(
        False, description="lower-case every word (else case fallback Word->word)"
    )
    min_count: int = Field(
        2,
        ge=1,
        description="a training word the vectors lack gets its own random row "
        "when seen this often, else it reads <unk>",
    )
    keep_vectors: int = Field(
        0,
        ge=0,
        description="also keep the first N words of the vectors (the most frequent in GloVe, "
        "word2vec, fastText files), so words unseen in training keep their vectors at "
        "prediction time; N x dim more floats in the model",
    )
    max_vocab: int | None = Field(
        None, ge=1, description="keep at most this many words (most frequent)"
    )
    word_dropout: float = Field(
        0.0, ge=0, lt=1, description="in training, read a word as <unk> this often"
    )
    encoder: Literal["bilstm", "cnn"] = Field(
        "bilstm", description="the task network over the vectors"
    )
    layers: int = Field(1, ge=1, le=8, description="BiLSTM / CNN layers")
    hidden: int = Field(200, ge=1, description="BiLSTM units per direction, or CNN channels")
    kernel: int = Field(3, ge=1, description="CNN kernel width (odd)")
    dropout: float = Field(0.5, ge=0, lt=1, description="dropout")
    chars: Literal["none", "cnn", "lstm"] = Field(
        "none", description="character features of each word"
    )
    char_dim: int = Field(25, ge=1, description="character embedding size")
    char_hidden: int = Field(50, ge=2, description="character feature size (CNN filters / BiLSTM)")
    max_word_chars: int = Field(
        20, ge=1, description="characters of a word that character features see"
    )
    pool: Literal["max", "mean"] = Field("max", description="sentence vector for classification")
    lm_weight: float = Field(
        0.0,
        ge=0,
        description="weight of the auxiliary language-model loss (BiLSTM: "
        "forward predicts the next word, backward the previous); 0 = off",
    )
    lm_softmax: Literal["full", "sampled"] = Field(
        "full", description="the LM loss over all words, or a sample"
    )
    lm_samples: int = Field(
        1024, ge=1, description="words drawn per batch for a sampled LM softmax"
    )


# -- the network --------------------------------------------------------------------------------
def words_and_chars(
    ids: torch.Tensor, mask: torch.Tensor, vocab_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Take pieces apart (see :mod:`nlptune.backbones.word_text`): word ids (B, W), their mask,
    each word's characters (B, W, C; 0 = padding, c + 1 for character c) and each piece's word
    (B, T)."""
    keep = word_positions(ids, mask, vocab_size)
    words, valid = compact(ids, keep)
    words = words.masked_fill(~valid, 0)
    word_of = keep.long().cumsum(1) - 1  # (B, T)
    positions = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    # each piece's word start: the positions of words in order, read at the piece's word
    # (no cummax: ONNX has none)
    starts = torch.argsort((~keep).long() * ids.shape[1] + positions, dim=1)
    start = starts.gather(1, word_of.clamp(min=0))
    is_char = mask.bool() & (ids >= vocab_size) & (word_of >= 0)
    k = positions - start - 1  # the character's place in its word
    width: Any
    if torch.jit.is_tracing():  # ONNX export: the width as a tensor, so it stays dynamic
        width = (k.masked_fill(~is_char, 0).max() + 1).clamp(min=1)
    else:
        width = int(k[is_char].max()) + 1 if bool(is_char.any()) else 1
    chars = torch.zeros(*words.shape, width, dtype=torch.long, device=ids.device)
    rows = torch.nonzero(is_char, as_tuple=True)
    chars[rows[0], word_of[is_char], k[is_char]] = ids[is_char] - vocab_size + 1
    return words, valid, chars, word_of.clamp(min=0)


class CharFeatures(nn.Module):
    """Characters of each word -> one vector: a CNN with max pooling, or a BiLSTM's ends."""

    def __init__(self, num_chars: int, dim: int, hidden: int, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.embed = nn.Embedding(num_chars + 1, dim, padding_idx=0)
        if kind == "cnn":
            self.conv = nn.Conv1d(dim, hidden, 3, padding=1)
        else:
            self.lstm = nn.LSTM(dim, hidden // 2, batch_first=True, bidirectional=True)
        self.size = hidden if kind == "cnn" else 2 * (hidden // 2)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        b, w, c = chars.shape
        flat = chars.view(b * w, c)
        present = flat != 0  # (N, C)
        x = self.embed(flat)  # (N, C, D)
        if self.kind == "cnn":
            h = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (N, C, H)
            h = h.masked_fill(~present[..., None], float("-inf")).max(1).values
            h = torch.where(torch.isfinite(h), h, torch.zeros_like(h))  # words with no characters
        else:
            lengths = present.sum(1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(
                x, lengths, batch_first=True, enforce_sorted=False
            )
            out, (last, _) = self.lstm(packed)  # (2, N, H/2)
            if torch.jit.is_tracing():  # ONNX export: the same states read from the outputs
                states, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
                half = states.shape[-1] // 2
                end = (lengths - 1).to(states.device)[:, None, None].expand(-1, 1, half)
                forward = states[:, :, :half].gather(1, end)[:, 0]
                h = torch.cat([forward, states[:, 0, half:]], dim=-1)
            else:
                h = torch.cat([last[0], last[1]], dim=-1)
            h = h * present.any(1, keepdim=True).to(h.dtype)
        return h.view(b, w, -1)


class WordNetwork(nn.Module):
    """An :class:`~nlptune.backbones.base.Encoder`: word vectors (+ character features) ->
    BiLSTM or CNN -> states (B, T, H) per piece, position 0 holding the pooled sentence."""

    def __init__(self, vocab_size: int, num_chars: int, dim: int, settings: Mapping[str, Any]):
        super().__init__()
        s = dict(settings)
        self.settings = s
        self.vocab_size = vocab_size
        self.embeddings = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.chars = (
            CharFeatures(num_chars, s["char_dim"], s["char_hidden"], s["chars"])
            if s["chars"] != "none"
            else None
        )
        width = dim + (self.chars.size if self.chars is not None else 0)
        self.dropout = nn.Dropout(s["dropout"])
        self.word_dropout = float(s["word_dropout"])
        if s["encoder"] == "bilstm":
            self.lstm = nn.LSTM(
                width,
                s["hidden"],
                num_layers=s["layers"],
                batch_first=True,
                bidirectional=True,
                dropout=s["dropout"] if s["layers"] > 1 else 0.0,
            )
            self.hidden_size = 2 * s["hidden"]
        else:
            sizes = [width] + [s["hidden"]] * s["layers"]
            self.convs = nn.ModuleList(
                nn.Conv1d(a, b, s["kernel"], padding=s["kernel"] // 2)
                for a, b in zip(sizes, sizes[1:], strict=False)
            )
            self.hidden_size = s["hidden"]

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if self.chars is not None:
            words, valid, chars, word_of = words_and_chars(ids, mask, self.vocab_size)
        else:
            words, valid, chars, word_of = ids, mask.bool(), None, None
        if self.training and self.word_dropout:
            drop = torch.rand(words.shape, device=words.device) < self.word_dropout
            words = torch.where(drop & (words >= len(SPECIALS)), torch.ones_like(words), words)
        x = self.embeddings(words)  # (B, W, D)
        if chars is not None and self.chars is not None:
            x = torch.cat([x, self.chars(chars).to(x.dtype)], dim=-1)
        h = self._encode(self.dropout(x), valid)  # (B, W, H); the heads apply their dropout
        content = valid.clone()
        content[:, 0] = False
        if self.settings["pool"] == "max":
            pooled = h.masked_fill(~content[..., None], float("-inf")).max(1).values
            pooled = torch.where(torch.isfinite(pooled), pooled, torch.zeros_like(pooled))
        else:
            weights = content[..., None].to(h.dtype)
            pooled = (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        h = torch.cat([pooled[:, None], h[:, 1:]], dim=1)
        if word_of is None:
            return h
        return h.gather(1, word_of[..., None].expand(-1, -1, h.shape[-1]))  # (B, T, H)

    def _encode(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "lstm"):
            lengths = valid.sum(1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(
                x, lengths, batch_first=True, enforce_sorted=False
            )
            out, _ = self.lstm(packed)
            h, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            return h
        keep = valid[:, None, :].to(x.dtype)  # (B, 1, W)
        h = x.transpose(1, 2)
        for conv in self.convs:
            h = torch.relu(conv(h * keep))
        return (h * keep).transpose(1, 2)

    def layer_groups(self) -> list[LayerGroup]:
        rest = tuple(n for n, _ in self.named_parameters() if n != "embeddings.weight")
        return [LayerGroup("embeddings", ("embeddings.weight",)), LayerGroup("top", rest)]

    def embedding_parameters(self) -> list[str]:
        return ["embeddings.weight"]


# -- the family ---------------------------------------------------------------------------------
NETWORK_KEYS = [
    "encoder",
    "layers",
    "hidden",
    "kernel",
    "dropout",
    "chars",
    "char_dim",
    "char_hidden",
    "pool",
    "word_dropout",
]


@BACKBONES.register("static_vectors")
class StaticVectors:
    """Pre-trained word vectors under a BiLSTM or CNN (GloVe, word2vec, fastText, spaCy)."""

    Config = StaticVectorsConfig
    head_kinds = frozenset({"classification", "token", "target"})
    freeze_embeddings = False  # full fine-tunes the vectors; frozen keeps them
    strategies = {
        "full": "the vectors fine-tune with the network",
        "frozen": "the vectors stay fixed, the network trains",
    }

    def __init__(self, path: str | None = None, max_length: int = 1024, **settings: Any) -> None:
        self.path, self.max_length = path, max_length
        defaults = {
            name: field.default
            for name, field in StaticVectorsConfig.model_fields.items()
            if name not in ("type", "path", "max_length")
        }
        self.settings = {k: settings.get(k, default) for k, default in defaults.items()}
        self._text: WordTextEncoder | None = None
        self._rows: np.ndarray | None = None  # (V, D) pre-trained rows; NaN rows: initialise

    def _resolved(self) -> Path:
        assert self.path is not None
        return vectors_path(self.path)

    def check(self) -> None:
        s = self.settings
        if s["lm_weight"] and s["encoder"] != "bilstm":
            raise ConfigError(
                "backbone.lm_weight needs backbone.encoder bilstm (the LM loss reads the forward "
                "and backward states); set lm_weight: 0 or encoder: bilstm"
            )
        if s["lm_weight"] and s["layers"] > 1:
            raise ConfigError(
                "backbone.lm_weight needs backbone.layers 1: above the first layer a forward "
                "state has already seen the next word (through the backward states below), so "
                "predicting it teaches nothing"
            )
        if s["encoder"] == "cnn" and s["kernel"] % 2 == 0:
            raise ConfigError(f"backbone.kernel {s['kernel']}: use an odd width (3, 5)")
        if self.path is not None:
            detect(self._resolved())

    def num_layers(self) -> int:
        return 0

    # -- vocabulary ---------------------------------------------------------------------------
    def fit(self, featurize: Callable[[Any], Any]) -> None:
        """Fit the vocabulary to the words the task reads from its training data, and read
        their rows from the vectors."""
        s = self.settings
        counter = WordCounter(s["lowercase"])
        featurize(counter)
        counts = counter.counts
        table = None
        if self.path is not None:
            wanted = set(counts) | {w.lower() for w in counts}
            table = read_vectors(self._resolved(), wanted, first=s["keep_vectors"])
            if table.dim < 1 or not table.rows:
                raise VectorsError(
                    f"backbone.path {self.path}: none of the {len(counts):,} training words is in "
                    "these vectors; is it the right language, or should backbone.lowercase be on?"
                )
        rows = table.rows if table is not None else {}
        words, init, found_tokens, fallback = [], [], 0, 0
        for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            vector = rows.get(word)
            if vector is None and word.lower() in rows:
                vector, fallback = rows[word.lower()], fallback + 1
            if vector is not None:
                found_tokens += n
            elif n < s["min_count"]:
                continue
            words.append(word)
            init.append(vector)
        if s["max_vocab"] is not None:
            words, init = words[: s["max_vocab"]], init[: s["max_vocab"]]
        trained = len(words)
        if table is not None and table.leading:  # backbone.keep_vectors
            known = set(words)
            for word in table.leading:
                key = word.lower() if s["lowercase"] else word
                if key not in known and word in rows:
                    known.add(key)
                    words.append(key)
                    init.append(rows[word])
        dim = table.dim if table is not None else s["dim"]
        matrix = np.full((len(SPECIALS) + len(words), dim), np.nan, dtype=np.float32)
        matrix[0] = 0.0  # <pad>
        for i, vector in enumerate(init):
            if vector is not None:
                matrix[len(SPECIALS) + i] = vector
        chars = []
        if s["chars"] != "none":
            chars = ["<unk-char>"] + sorted(counter.chars, key=lambda c: (-counter.chars[c], c))
        self._text = WordTextEncoder(SPECIALS + words, chars, s["lowercase"], s["max_word_chars"])
        self._rows = matrix
        tokens = sum(counts.values())
        found_types = sum(v is not None for v in init[:trained])
        coverage = {
            "tokens": found_tokens / max(tokens, 1),
            "types": found_types / max(len(counts), 1),
        }
        if table is not None:
            logger.info(
                "vectors %s (%s, %s words, %d-d): %.1f%% of training tokens and %.1f%% of "
                "types found (%s of %s types, %s by case fallback%s); %s random rows "
                "(min_count %d), the rest read <unk>%s",
                self.path,
                table.format,
                f"{table.size:,}",
                dim,
                100 * coverage["tokens"],
                100 * coverage["types"],
                f"{found_types:,}",
                f"{len(counts):,}",
                f"{fallback:,}",
                f", {len(table.composed & set(words)):,} from subwords" if table.composed else "",
                f"{trained - found_types:,}",
                s["min_count"],
                f"; {len(words) - trained:,} more words kept from the vectors (keep_vectors)"
                if len(words) > trained
                else "",
            )
        else:
            logger.info(
                "no pre-trained vectors: %s words (min_count %d) start random (%d-d)",
                f"{len(words):,}",
                s["min_count"],
                dim,
            )

    def text_encoder(self) -> WordTextEncoder:
        if self._text is None:
            raise RuntimeError("static_vectors: fit the vocabulary before asking for the text")
        return self._text

    # -- model --------------------------------------------------------------------------------
    def _network(self, text: WordTextEncoder, dim: int) -> WordNetwork:
        return WordNetwork(text.vocab_size, len(text.chars), dim, self.settings)

    def load(self) -> tuple[WordNetwork, set[str]]:
        text, rows = self.text_encoder(), self._rows
        assert rows is not None
        network = self._network(text, rows.shape[1])
        new = {n for n, _ in network.named_parameters() if n != "embeddings.weight"}
        found = ~np.isnan(rows).any(1)
        if self.path is None:
            new.add("embeddings.weight")
        else:
            pretrained = rows[found][1:]  # not <pad>
            std = float(pretrained.std()) if len(pretrained) > 1 else 0.1
            weight = torch.randn(rows.shape, dtype=torch.float32) * std  # seeded by the run
            if self.settings["init"] == "random":  # the same vocabulary, no pre-trained rows
                logger.info("backbone.init random: every word vector starts random")
            else:
                weight[torch.from_numpy(found)] = torch.from_numpy(rows[found])
            weight[0] = 0.0
            network.embeddings.weight.data.copy_(weight)
        return network, new

    def extra_heads(self, encoder: WordNetwork) -> dict[str, HeadSpec]:
        """Heads the family adds to every task's: the auxiliary LM loss (backbone.lm_weight)."""
        s = self.settings
        if not s["lm_weight"]:
            return {}
        args = {
            "vocab_size": encoder.vocab_size,
            "softmax": s["lm_softmax"],
            "samples": s["lm_samples"],
        }
        return {"lm": HeadSpec(WordLMHead, args, s["lm_weight"])}

    def head_options(self, kind: str, encoder: Any) -> dict[str, Any]:
        options: dict[str, Any] = {"dropout": float(self.settings["dropout"])}
        if kind == "classification":
            options["pooler"] = None  # the pooled BiLSTM/CNN state goes straight to the classifier
        return options

    def head_init(self, kind: str, encoder: Any) -> dict[str, torch.Tensor]:
        return {}

    # -- artefact -----------------------------------------------------------------------------
    def save(self, model: Any, text_encoder: Any, folder: Path, export: Export) -> None:
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(folder / WEIGHTS_FILE))
        info = {
            "family": "static_vectors",
            "dim": int(model.encoder.embeddings.weight.shape[1]),
            "network": {k: self.settings[k] for k in NETWORK_KEYS},
            "kind": export.kind,
            "labels": list(export.label_names),
            "settings": dict(export.settings),
            "vectors": self.path,
        }
        (folder / NETWORK_FILE).write_text(json.dumps(info, indent=1), encoding="utf-8")
        text_encoder.save(folder)

    def load_trained(
        self, folder: Path, export: Export, make_model: Callable[[Any], Any]
    ) -> tuple[Any, WordTextEncoder]:
        try:
            info = json.loads((folder / NETWORK_FILE).read_text(encoding="utf-8"))
            dim = int(info["dim"])
        except (OSError, ValueError, KeyError) as err:
            raise ModelError(
                f"{folder / NETWORK_FILE}: not a static-vectors model: {err}"
            ) from None
        text = WordTextEncoder.load(folder)
        self.settings.update(info["network"])
        model = make_model(self._network(text, dim))
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        return model, text
