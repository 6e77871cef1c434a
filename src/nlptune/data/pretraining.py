"""Pre-training data: packed blocks, next-sentence pairs and dynamic masking (pure numpy).

Tokens arrive as one id array per line (unframed) with a flag per token saying whether it starts
a word, grouped into documents. :func:`pack` fills full-length blocks (no padding waste),
:func:`sentence_pairs` draws BERT's next-sentence pairs, and :func:`mask` draws one item's
masked positions from a seeded generator, so the same ``(seed, epoch, item)`` always gives the
same masks (exact resume) and every epoch gets new ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IGNORE = -100  # labels of positions that are not scored


@dataclass(frozen=True)
class Line:
    """One line's tokens (unframed ids) and per token whether it starts a word."""

    ids: np.ndarray
    starts: np.ndarray


def documents(lines: Sequence[Line], new_document: Sequence[bool]) -> list[list[Line]]:
    """Group lines into documents (``new_document[i]``: line i starts one); empty lines dropped."""
    docs: list[list[Line]] = []
    for line, new in zip(lines, new_document, strict=True):
        if new or not docs:
            docs.append([])
        if len(line.ids):
            docs[-1].append(line)
    return [d for d in docs if d]


def pack(
    docs: Sequence[Sequence[Line]], prefix: Sequence[int], suffix: Sequence[int], max_length: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Concatenate every document's tokens (``suffix`` between documents, as RoBERTa's
    FULL-SENTENCES) and cut the stream into blocks of ``max_length`` framed tokens. A cut moves
    back to the last word start when one lies in the block's second half, so words stay whole.

    Returns:
        ``(ids, starts)`` per block; every content token occurs in exactly one block, in order.
    """
    room = max_length - len(prefix) - len(suffix)
    if room < 1:
        raise ValueError(f"max_length {max_length} leaves no room inside the special tokens")
    pieces, flags = [], []
    sep = np.asarray(suffix, dtype=np.int64)
    for d, doc in enumerate(docs):
        if d and len(sep):
            pieces.append(sep)
            flags.append(np.ones(len(sep), dtype=bool))
        for line in doc:
            pieces.append(line.ids.astype(np.int64))
            flags.append(line.starts.astype(bool))
    if not pieces:
        return [], []
    stream, starts = np.concatenate(pieces), np.concatenate(flags)
    head, tail = np.asarray(prefix, dtype=np.int64), sep
    blocks, block_starts = [], []
    at = 0
    while at < len(stream):
        end = min(at + room, len(stream))
        if end < len(stream) and not starts[end]:
            inside = np.flatnonzero(starts[at + room // 2 + 1 : end + 1])
            if len(inside):
                end = at + room // 2 + 1 + int(inside[-1])
        blocks.append(np.concatenate([head, stream[at:end], tail]))
        block_starts.append(
            np.concatenate([np.ones(len(head), bool), starts[at:end], np.ones(len(tail), bool)])
        )
        at = end
    return blocks, block_starts


def sentence_pairs(
    docs: Sequence[Sequence[Line]], room: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]]:
    """BERT's next-sentence pairs (``create_instances_from_document``), without dropping text:
    per document, lines (longer ones cut into pieces of at most ``room`` tokens) gather into a
    chunk of at most ``room`` tokens; the chunk splits at a random line (a one-line chunk at a
    random word) into A and B, and half the time B is replaced by text from a random other
    document, cut to fit, and what A did not use goes on to the next chunk. Label 0: B follows
    A; 1: B is random (transformers' convention).

    Returns:
        ``(a_ids, a_starts, b_ids, b_starts, label)`` per pair.
    """
    rng = np.random.default_rng(seed)
    docs = [[piece for line in doc for piece in _segments(line, room)] for doc in docs]
    out = []
    for d, doc in enumerate(docs):
        queue, at = list(doc), 0
        while at < len(queue):
            chunk: list[Line] = []
            size = 0
            while at < len(queue) and (not chunk or size + len(queue[at].ids) <= room):
                chunk.append(queue[at])
                size += len(queue[at].ids)
                at += 1
            cut = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
            a, b = chunk[:cut], chunk[cut:]
            if len(chunk) == 1:  # one line: its two parts
                a, b = _split_line(chunk[0], rng)
            random_next = rng.random() < 0.5 and len(docs) > 1
            if random_next:
                at -= len(chunk) - cut  # the lines A does not use come back
                if len(chunk) == 1 and b:
                    queue.insert(at, b[0])  # and so does the rest of a split line
                b = _random_lines(docs, d, room - sum(len(x.ids) for x in a), rng)
            if a and b:
                out.append((*_truncate(a, b, room, rng), int(random_next)))
    return out


def _split_line(line: Line, rng: np.random.Generator) -> tuple[list[Line], list[Line]]:
    """A line cut at a random word start into two parts (the second empty for one word)."""
    starts = np.flatnonzero(line.starts)[1:]
    if not len(starts):
        return [line], []
    at = int(rng.choice(starts))
    first, second = Line(line.ids[:at], line.starts[:at]), Line(line.ids[at:], line.starts[at:])
    return [first], [second]


def _random_lines(
    docs: Sequence[Sequence[Line]], d: int, need: int, rng: np.random.Generator
) -> list[Line]:
    """Text from a random document other than ``d``, from a random line on, cut to ``need``
    tokens (as one line)."""
    other = int(rng.integers(0, len(docs) - 1))
    other += other >= d  # any document but this one
    start = int(rng.integers(0, len(docs[other])))
    lines, size = [], 0
    for line in docs[other][start:]:
        lines.append(line)
        size += len(line.ids)
        if size >= need:
            break
    ids = np.concatenate([x.ids for x in lines])[: max(1, need)]
    starts = np.concatenate([x.starts for x in lines])[: max(1, need)]
    return [Line(ids, starts)]


def _segments(line: Line, room: int) -> list[Line]:
    """A line longer than ``room`` as consecutive pieces of at most ``room`` tokens, each cut
    at a word start where one lies in its second half (nothing is dropped)."""
    if len(line.ids) <= room:
        return [line]
    out, at = [], 0
    while at < len(line.ids):
        end = min(at + room, len(line.ids))
        if end < len(line.ids) and not line.starts[end]:
            inside = np.flatnonzero(line.starts[at + room // 2 + 1 : end + 1])
            if len(inside):
                end = at + room // 2 + 1 + int(inside[-1])
        out.append(Line(line.ids[at:end], line.starts[at:end]))
        at = end
    return out


def _truncate(
    a: Sequence[Line], b: Sequence[Line], room: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Join each side's lines and cut the longer side (at its front or back, at random) until
    both fit ``room``, as BERT does token by token."""
    sides = [
        [np.concatenate([x.ids for x in s]), np.concatenate([x.starts for x in s])] for s in (a, b)
    ]
    while (over := len(sides[0][0]) + len(sides[1][0]) - room) > 0:
        longer, shorter = sorted(sides, key=lambda x: -len(x[0]))
        n = max(1, min(over, len(longer[0]) - len(shorter[0])))
        cut = slice(n, None) if rng.random() < 0.5 else slice(None, len(longer[0]) - n)
        longer[0], longer[1] = longer[0][cut], longer[1][cut]
    return sides[0][0], sides[0][1], sides[1][0], sides[1][1]


@dataclass(frozen=True)
class Masking:
    """How tokens are masked: ``rate`` of the maskable tokens (at least one), of which
    ``to_mask`` become the mask token, ``to_random`` a random vocabulary token and the rest
    stay (BERT: 0.15, 0.8, 0.1). ``whole_word`` masks every token of a chosen word.
    ``special`` ids are never chosen nor drawn as random tokens."""

    mask_id: int
    vocab_size: int
    special: tuple[int, ...]
    rate: float = 0.15
    to_mask: float = 0.8
    to_random: float = 0.1
    whole_word: bool = False

    def random_pool(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.vocab_size), np.asarray(self.special, dtype=np.int64))


def mask(
    ids: np.ndarray,
    starts: np.ndarray | None,
    how: Masking,
    rng: np.random.Generator,
    pool: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One item's masked ids and labels (the original id where chosen, -100 elsewhere).

    Exactly ``round(rate * maskable)`` tokens are chosen (at least one); with ``whole_word``,
    whole words are taken in random order while they fit that count (BERT's rule).
    """
    ids = np.asarray(ids, dtype=np.int64)
    maskable = ~np.isin(ids, np.asarray(how.special, dtype=np.int64))
    candidates = np.flatnonzero(maskable)
    labels = np.full(len(ids), IGNORE, dtype=np.int64)
    if not len(candidates):
        return ids.copy(), labels
    want = max(1, int(round(how.rate * len(candidates))))
    if how.whole_word and starts is not None:
        chosen = _whole_words(candidates, np.asarray(starts, dtype=bool), want, rng)
    else:
        chosen = np.sort(rng.choice(candidates, size=want, replace=False))
    labels[chosen] = ids[chosen]
    out = ids.copy()
    u = rng.random(len(chosen))
    to_mask = chosen[u < how.to_mask]
    to_random = chosen[(u >= how.to_mask) & (u < how.to_mask + how.to_random)]
    out[to_mask] = how.mask_id
    out[to_random] = rng.choice(pool, size=len(to_random))
    return out, labels


def _whole_words(
    candidates: np.ndarray, starts: np.ndarray, want: int, rng: np.random.Generator
) -> np.ndarray:
    words: list[list[int]] = []
    previous = -2
    for position in candidates.tolist():
        if starts[position] or position != previous + 1 or not words:
            words.append([position])
        else:
            words[-1].append(position)
        previous = position
    chosen: list[int] = []
    for w in rng.permutation(len(words)).tolist():
        if len(chosen) >= want:
            break
        if len(chosen) + len(words[w]) <= want or not chosen:
            chosen.extend(words[w])
    return np.sort(np.asarray(chosen, dtype=np.int64))


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of one item's masks in one epoch (independent of batching and processes)."""
    return np.random.default_rng([seed & 0xFFFFFFFF, epoch, index])
