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
        # for masked-LM pre-training: the mask token, the vocabulary and the ids never masked
        self.mask_id: int | None = tokenizer.mask_token_id
        self.mask_token: str | None = tokenizer.mask_token
        self.vocab_size: int = len(tokenizer)
        self.special_ids: list[int] = sorted(set(tokenizer.all_special_ids))
        self._pair_template: tuple[list[int], list[int]] | None = None

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

    def encode_plain(self, texts: Sequence[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Unframed, untruncated ids of each text, and per token whether it starts a word
        (the tokenizer's pre-tokenized words; every token where the tokenizer can't say)."""
        enc = self.tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)
        ids = [np.asarray(x, dtype=np.int32) for x in enc["input_ids"]]
        starts = []
        for i, row in enumerate(ids):
            try:
                words = enc.word_ids(i)
            except (ValueError, AttributeError):  # a slow tokenizer
                words = list(range(len(row)))
            previous = object()
            flags = np.zeros(len(row), dtype=bool)
            for j, w in enumerate(words):
                flags[j] = w is None or w != previous
                previous = w
            starts.append(flags)
        return ids, starts

    def frame_pair(
        self, first: np.ndarray, second: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Two unframed id arrays as one framed pair ([CLS] A [SEP] B [SEP] for BERT): the ids,
        the token type ids and a mask of the content (non-special) positions."""
        if self._pair_template is None:
            self._pair_template = _pair_template(self.tokenizer)
        template, types = self._pair_template
        parts, type_parts, content = [], [], []
        for token, kind in zip(template, types, strict=True):
            piece = first if token == -1 else second if token == -2 else np.asarray([token])
            parts.append(np.asarray(piece, dtype=np.int64))
            type_parts.append(np.full(len(piece), kind, dtype=np.int64))
            content.append(np.full(len(piece), token < 0, dtype=bool))
        return np.concatenate(parts), np.concatenate(type_parts), np.concatenate(content)

    def decode(self, ids: Sequence[int]) -> str:
        """Ids back to text, special tokens left out."""
        return str(self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True))

    def token_strings(self, ids: Sequence[int]) -> list[str]:
        """Each id as text (``pipeline("fill-mask")``'s ``token_str``)."""
        return [self.tokenizer.decode([int(i)]).strip() for i in ids]

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
            # without the truncation and padding the last call left on it (transformers 4.x
            # leaves them set, 5.x resets them): the same key whatever was tokenized before
            clean = type(backend).from_str(backend.to_str())
            clean.no_truncation()
            clean.no_padding()
            h.update(clean.to_str().encode())
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


def _pair_template(tokenizer: Any) -> tuple[list[int], list[int]]:
    """How the tokenizer frames a pair: its ids with -1 and -2 where the first and the second
    text go, and the token type id of every place."""
    enc = tokenizer("a", "a")
    bare = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    framed = list(enc["input_ids"])
    types = list(enc.get("token_type_ids") or [0] * len(framed))
    template, kinds, i, stand_in = [], [], 0, -1
    while i < len(framed):
        if stand_in >= -2 and framed[i : i + len(bare)] == bare:
            template.append(stand_in)
            kinds.append(types[i])
            i, stand_in = i + len(bare), stand_in - 1
        else:
            template.append(framed[i])
            kinds.append(types[i])
            i += 1
    if stand_in != -3:
        raise ValueError("can't tell how this tokenizer frames a pair of texts")
    return template, kinds
