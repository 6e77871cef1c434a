"""The :class:`~nlptune.backbones.base.TextEncoder` of transformers models: a fast tokenizer."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nlptune.backbones.base import Windows


class HFTextEncoder:
    """Wraps a Hugging Face (fast) tokenizer; every tokenizer call of nlptune is in this class."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.pad_id: int = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        unk = tokenizer.unk_token_id
        self.unk_id: int = unk if unk is not None else self.pad_id
        self.prefix, self.suffix = _framing(tokenizer)

    def encode(
        self, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int
    ) -> dict[str, list[np.ndarray]]:
        enc = self.tokenizer(
            list(texts),
            list(pairs) if pairs is not None else None,
            truncation=True,
            max_length=max_length,
            return_attention_mask=False,
        )
        return {
            name: [np.asarray(x, dtype=np.int32) for x in enc[name]]
            for name in ("input_ids", "token_type_ids")
            if name in enc
        }

    def encode_words(self, words: Sequence[str]) -> list[list[int]]:
        enc = self.tokenizer(list(words), is_split_into_words=True, add_special_tokens=False)
        pieces: list[list[int]] = [[] for _ in words]
        for token, w in zip(enc["input_ids"], enc.word_ids(), strict=True):
            if w is not None:
                pieces[w].append(token)
        return pieces

    def windows(
        self, first: Sequence[str], second: Sequence[str], max_length: int, stride: int
    ) -> Windows:
        enc = self.tokenizer(
            list(first),
            list(second),
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        starts, ends = [], []
        for i in range(len(enc["input_ids"])):
            in_second = [sid == 1 for sid in enc.sequence_ids(i)]
            offsets = enc["offset_mapping"][i]
            starts.append(
                np.array([o[0] if s else -1 for o, s in zip(offsets, in_second, strict=True)])
            )
            ends.append(
                np.array([o[1] if s else -1 for o, s in zip(offsets, in_second, strict=True)])
            )
        types = enc.get("token_type_ids")
        return Windows(
            input_ids=[np.asarray(x, dtype=np.int32) for x in enc["input_ids"]],
            token_type_ids=[np.asarray(x, dtype=np.int32) for x in types] if types else None,
            offset_start=[s.astype(np.int32) for s in starts],
            offset_end=[e.astype(np.int32) for e in ends],
            owner=list(enc["overflow_to_sample_mapping"]),
        )

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None:
            h.update(backend.to_str().encode())
        else:
            h.update(str(sorted(self.tokenizer.get_vocab().items())).encode())
        h.update(type(self.tokenizer).__name__.encode())
        return h.hexdigest()

    def save(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder)


def _framing(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one text ([CLS] ... [SEP])."""
    framed = list(tokenizer("a")["input_ids"])
    bare = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    for i in range(len(framed) - len(bare) + 1):
        if framed[i : i + len(bare)] == bare:
            return framed[:i], framed[i + len(bare) :]
    return [], []
