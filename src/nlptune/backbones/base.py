"""The model seam: what a model family gives the tasks.

A family is one file that implements :class:`Backbone`. Tasks never see a family directly: they
featurize through a :class:`TextEncoder` and ask for heads (:class:`~nlptune.heads.HeadSpec`);
the builder puts the family's :class:`Encoder` and those heads into one
:class:`~nlptune.heads.TaskModel`, and the family saves and loads that model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch

from nlptune.config import BackboneConfig


@dataclass(frozen=True)
class LayerGroup:
    """Parameters (names relative to the encoder) that a strategy treats as one layer."""

    name: str  # "embeddings", "layer.0", ..., "top"; per stack for encoder-decoders
    params: tuple[str, ...]


@dataclass(frozen=True)
class Export:
    """How a trained model is saved: ``kind`` names the task shape (``sequence_classification``,
    ``token_classification``, ``question_answering``, ``seq2seq_lm``, ``encoder``: an encoder and
    heads of our own), ``label_names`` and ``settings`` go into the saved model's config
    (transformers: ``id2label``/``label2id``, ``problem_type``; generation settings), and
    ``extra`` names the file stem for head weights that the family's standard class has no
    place for (a CRF, a sense head)."""

    kind: str
    label_names: Sequence[str] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    extra: str = "head"


@dataclass
class Windows:
    """Question + context windows for extractive QA: per window the token ids, the token type ids
    (or None), each token's character span in the context (-1 outside it) and the example it
    belongs to."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    offset_start: list[np.ndarray]
    offset_end: list[np.ndarray]
    owner: list[int]


class TextEncoder(Protocol):
    """Text -> token ids, the same way for a subword tokenizer and a word vocabulary."""

    pad_id: int
    unk_id: int
    prefix: list[int]  # special tokens before the content ([CLS]; nothing for word vectors)
    suffix: list[int]  # special tokens after it ([SEP], </s>)

    def encode(
        self, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int
    ) -> dict[str, list[np.ndarray]]:
        """Framed, truncated ids of texts (or text pairs): ``input_ids`` and, where the family
        uses them, ``token_type_ids``."""
        ...

    def encode_words(self, words: Sequence[str]) -> list[list[int]]:
        """Unframed ids of each pre-split word, in context (a word may get none)."""
        ...

    def windows(
        self, first: Sequence[str], second: Sequence[str], max_length: int, stride: int
    ) -> Windows:
        """Pair windows over long second texts, ``stride`` tokens shared by neighbours."""
        ...

    def fingerprint(self) -> str:
        """A digest of everything that changes the ids (the feature cache's key)."""
        ...

    def save(self, folder: Path) -> None: ...


class Encoder(Protocol):
    """A ``torch.nn.Module``: ``forward(batch) -> states (B, T, H)``."""

    hidden_size: int

    def __call__(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor: ...

    def layer_groups(self) -> list[LayerGroup]:
        """Every parameter in exactly one group, ordered bottom (embeddings) to top."""
        ...

    def embedding_parameters(self) -> list[str]:
        """The word-embedding matrix (``strategy.freeze_embeddings``)."""
        ...


class Backbone(Protocol):
    """One model family: checks a path, loads an encoder and its text encoder, saves and loads
    a trained :class:`~nlptune.heads.TaskModel`."""

    Config: ClassVar[type[BackboneConfig]]
    head_kinds: ClassVar[frozenset[str]]  # the head kinds it can feed ("classification", ...)
    # optional ``freeze_embeddings: bool`` class attribute: the family's default for
    # strategy.freeze_embeddings (true when absent)

    def check(self) -> None:
        """Before weights load: the path exists and is a model of this family. Raises
        ModelError saying what to change."""
        ...

    def num_layers(self) -> int:
        """Layers a strategy can choose from, read without loading weights."""
        ...

    def load(self) -> tuple[Any, set[str]]:
        """The pre-trained encoder, and the names of its parameters that were newly
        initialised."""
        ...

    def head_options(self, kind: str, encoder: Any) -> dict[str, Any]:
        """Family-specific arguments for a head of ``kind`` (pooler activation, dropout)."""
        ...

    def head_init(self, kind: str, encoder: Any) -> dict[str, torch.Tensor]:
        """Pre-trained weights for a head of ``kind`` that the checkpoint has (BERT's pooler)."""
        ...

    def text_encoder(self) -> TextEncoder: ...

    def save(self, model: Any, text_encoder: TextEncoder, folder: Path, export: Export) -> None:
        """Write ``model`` (a TaskModel) to ``folder``: the family's standard class for
        ``export.kind`` where it has one."""
        ...

    def load_trained(
        self, folder: Path, export: Export, make_model: Callable[[Any], Any]
    ) -> tuple[Any, TextEncoder]:
        """Read what :meth:`save` wrote. ``make_model(encoder)`` builds the TaskModel with fresh
        heads, whose weights are then restored."""
        ...
