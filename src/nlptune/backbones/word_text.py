"""The :class:`~nlptune.backbones.base.TextEncoder` of static word vectors: a word vocabulary.

Raw text is split into words by a Unicode-aware regular expression (words, with inner ``'`` and
``-``, and single punctuation marks); pre-split words (CoNLL, word senses) are kept as given.
A word's id is its own row, else its lower-cased form's (case fallback), else ``<unk>``.

With character features each word is ``[word id, V + c1, V + c2, ...]``: the word's id followed
by its characters' ids shifted past the word vocabulary (V words). Tasks see a word with several
pieces, as a subword tokenizer would give, and need nothing of their own; the network takes the
pieces apart again (:func:`nlptune.backbones.static_vectors.words_and_chars`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nlptune.backbones.base import Windows
from nlptune.errors import ConfigError, ModelError

PAD, UNK, BOS, SEP = "<pad>", "<unk>", "<s>", "</s>"
SPECIALS = [PAD, UNK, BOS, SEP]
WORD = re.compile(r"\w+(?:['\-]\w+)*|[^\w\s]", re.UNICODE)
VOCAB_FILE = "vocab.json"


def no_windows() -> Windows:
    """Question/context windows: extractive QA, refused for word vectors (build.check refuses
    the task first; this is the message for anything that asks anyway)."""
    raise ConfigError(
        "static word vectors have no question/context windows; use backbone.type hf_encoder "
        "for extractive QA"
    )


def split_words(text: str) -> list[str]:
    """The words of raw text."""
    return WORD.findall(text)


class WordTextEncoder:
    """Words -> ids over a fixed vocabulary (optionally with character pieces)."""

    def __init__(
        self,
        words: Sequence[str],
        chars: Sequence[str] = (),
        lowercase: bool = False,
        max_word_chars: int = 20,
    ) -> None:
        self.words = list(words)
        if self.words[: len(SPECIALS)] != SPECIALS:
            raise ValueError("the vocabulary must start with the special tokens")
        self.index = {w: i for i, w in enumerate(self.words)}
        self.chars = list(chars)  # chars[0] is the unknown character
        self.char_index = {c: i for i, c in enumerate(self.chars)}
        self.lowercase, self.max_word_chars = lowercase, max_word_chars
        self.pad_id, self.unk_id = 0, 1
        self.prefix: list[int] = [2]  # <s>: where the network puts the pooled sentence
        self.suffix: list[int] = []
        self.sep_id = 3

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def word_id(self, word: str) -> int:
        if self.lowercase:
            word = word.lower()
        found = self.index.get(word)
        if found is None:
            found = self.index.get(word.lower(), self.unk_id)
        return found

    def pieces(self, word: str) -> list[int]:
        ids = [self.word_id(word)]
        if self.chars:
            base = len(self.words)
            ids += [base + self.char_index.get(c, 0) for c in word[: self.max_word_chars]]
        return ids

    def _text(self, text: str) -> list[int]:
        return [t for w in split_words(text) for t in self.pieces(w)]

    def encode(
        self, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int
    ) -> dict[str, list[np.ndarray]]:
        ids, types = [], []
        for i, text in enumerate(texts):
            first = self.prefix + self._text(text)
            second = [self.sep_id, *self._text(pairs[i])] if pairs is not None else []
            while len(first) + len(second) > max_length:  # the longer side loses its last word
                if len(first) >= len(second):
                    first = first[: self._cut(first)]
                else:
                    second = second[: self._cut(second)]
            ids.append(np.asarray(first + second, dtype=np.int32))
            types.append(np.asarray([0] * len(first) + [1] * len(second), dtype=np.int32))
        out = {"input_ids": ids}
        if pairs is not None:
            out["token_type_ids"] = types
        return out

    def _cut(self, ids: list[int]) -> int:
        """Where the last word of ``ids`` starts (characters stay with their word)."""
        base = len(self.words)
        for i in range(len(ids) - 1, 0, -1):
            if ids[i] < base:
                return i
        return 1

    def encode_words(self, words: Sequence[str]) -> list[list[int]]:
        return [self.pieces(w) for w in words]

    def windows(
        self, first: Sequence[str], second: Sequence[str], max_length: int, stride: int
    ) -> Windows:
        return no_windows()

    def fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps(self.state(), ensure_ascii=False).encode("utf-8"))
        return h.hexdigest()

    def state(self) -> dict[str, object]:
        return {
            "words": self.words,
            "chars": self.chars,
            "lowercase": self.lowercase,
            "max_word_chars": self.max_word_chars,
            "tokenizer": WORD.pattern,
        }

    def save(self, folder: Path) -> None:
        (folder / VOCAB_FILE).write_text(json.dumps(self.state(), ensure_ascii=False), "utf-8")

    @classmethod
    def load(cls, folder: Path) -> WordTextEncoder:
        try:
            state = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
            if state["tokenizer"] != WORD.pattern:
                raise ModelError(
                    f"{folder / VOCAB_FILE}: saved by a version of nlptune that splits words "
                    "differently; retrain, or use that version"
                )
            return cls(state["words"], state["chars"], state["lowercase"], state["max_word_chars"])
        except (OSError, KeyError, ValueError, TypeError) as err:
            raise ModelError(f"{folder / VOCAB_FILE}: not a word vocabulary: {err}") from None


class WordCounter:
    """A TextEncoder that only counts: a task featurizes its training examples through it, and
    the words it asked for become the vocabulary (whatever the task's own reading of its data)."""

    def __init__(self, lowercase: bool = False) -> None:
        self.counts: Counter[str] = Counter()
        self.chars: Counter[str] = Counter()
        self.lowercase = lowercase
        self.pad_id, self.unk_id = 0, 1
        self.prefix: list[int] = [2]
        self.suffix: list[int] = []

    def _count(self, words: Sequence[str]) -> list[list[int]]:
        for w in words:
            self.counts[w.lower() if self.lowercase else w] += 1
            self.chars.update(w)
        return [[1] for _ in words]  # one piece per word: what the task needs to go on

    def encode(
        self, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int
    ) -> dict[str, list[np.ndarray]]:
        ids = []
        for i, text in enumerate(texts):
            n = len(self._count(split_words(text)))
            if pairs is not None:
                n += 1 + len(self._count(split_words(pairs[i])))
            ids.append(np.ones(min(1 + n, max_length), dtype=np.int32))
        out = {"input_ids": ids}
        if pairs is not None:
            out["token_type_ids"] = [np.zeros_like(x) for x in ids]
        return out

    def encode_words(self, words: Sequence[str]) -> list[list[int]]:
        return self._count(words)

    def windows(
        self, first: Sequence[str], second: Sequence[str], max_length: int, stride: int
    ) -> Windows:
        return no_windows()

    def fingerprint(self) -> str:
        return "counter"

    def save(self, folder: Path) -> None:
        raise NotImplementedError
