"""Pre-training data: packing, next-sentence pairs and masking statistics (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from nlptune.data import pretraining as pt

CLS, SEP, MASK, PAD, UNK = 2, 3, 4, 0, 1
SPECIAL = (PAD, UNK, CLS, SEP, MASK)
VOCAB = 100


def _corpus(n_docs: int = 40, seed: int = 0) -> list[list[pt.Line]]:
    """Documents of 1-8 lines of 3-20 tokens; every token id is unique (its position in the
    corpus, offset past the special ids), and words are 1-3 tokens long."""
    rng = np.random.default_rng(seed)
    docs, next_id = [], 10
    for _ in range(n_docs):
        doc = []
        for _ in range(int(rng.integers(1, 9))):
            n = int(rng.integers(3, 21))
            ids = np.arange(next_id, next_id + n)
            next_id += n
            starts = np.zeros(n, dtype=bool)
            at = 0
            while at < n:
                starts[at] = True
                at += int(rng.integers(1, 4))
            doc.append(pt.Line(ids, starts))
        docs.append(doc)
    return docs


def _how(**kw: object) -> pt.Masking:
    return pt.Masking(mask_id=MASK, vocab_size=VOCAB, special=SPECIAL, **kw)  # type: ignore[arg-type]


def test_documents_follow_the_breaks_and_drop_empty_lines() -> None:
    lines = [pt.Line(np.array([10]), np.array([True])), pt.Line(np.array([11]), np.array([True]))]
    lines.append(pt.Line(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)))
    lines.append(pt.Line(np.array([12]), np.array([True])))
    docs = pt.documents(lines, [True, False, True, True])
    assert [[int(x.ids[0]) for x in d] for d in docs] == [[10, 11], [12]]


@pytest.mark.parametrize("max_length", [8, 16, 64])
def test_packing_keeps_every_token_once_in_full_blocks(max_length: int) -> None:
    docs = _corpus()
    blocks, starts = pt.pack(docs, [CLS], [SEP], max_length)
    content = np.concatenate([b[1:-1] for b in blocks])
    stream = [x for d in docs for line in d for x in line.ids.tolist()]
    kept = [int(x) for x in content if x != SEP]
    assert kept == stream  # every token once, in order
    assert all(b[0] == CLS and b[-1] == SEP and len(b) <= max_length for b in blocks)
    assert all(len(b) == len(s) for b, s in zip(blocks, starts, strict=True))
    # no padding waste: a block is shorter than max_length only where a word would be cut (in
    # its second half) or at the very end
    room = max_length - 2
    for b in blocks[:-1]:
        assert len(b) - 2 > room // 2
    separators = int((content == SEP).sum())
    assert separators == len(docs) - 1  # one between documents


def test_packing_cuts_at_word_starts_when_it_can() -> None:
    docs = _corpus(seed=3)
    blocks, starts = pt.pack(docs, [CLS], [SEP], 32)
    stream = {
        int(x): bool(f)
        for d in docs
        for line in d
        for x, f in zip(line.ids, line.starts, strict=True)
    }
    first_tokens = [int(b[1]) for b in blocks[1:] if int(b[1]) in stream]
    assert first_tokens and all(stream[t] for t in first_tokens)  # no block starts mid-word
    with pytest.raises(ValueError, match="no room"):
        pt.pack(docs, [CLS], [SEP], 2)


def test_masking_rate_and_the_80_10_10_rule() -> None:
    how, pool = _how(), _how().random_pool()
    assert not set(pool.tolist()) & set(SPECIAL)
    chosen = to_mask = to_random = kept = maskable = 0
    for i in range(400):
        ids = np.concatenate([[CLS], np.arange(10, 10 + 60) + i % 30, [SEP], [UNK]])
        out, labels = pt.mask(ids, None, how, pt.item_rng(1, 0, i), pool)
        picked = labels != pt.IGNORE
        assert picked.sum() == round(0.15 * 60)  # exactly the rate of the maskable tokens
        assert not picked[[0, 61, 62]].any()  # special tokens are never chosen
        assert (out[~picked] == ids[~picked]).all() and (labels[picked] == ids[picked]).all()
        chosen += int(picked.sum())
        maskable += 60
        to_mask += int((out[picked] == MASK).sum())
        same = out[picked] == ids[picked]
        kept += int(same.sum())
        to_random += int((~same & (out[picked] != MASK)).sum())
        assert not set(out[picked].tolist()) & {PAD, UNK, CLS, SEP}
    assert chosen / maskable == pytest.approx(0.15, abs=1e-9)
    assert to_mask / chosen == pytest.approx(0.8, abs=0.03)
    # a random draw may hit the original token, so "kept" is slightly above 10 %
    assert to_random / chosen == pytest.approx(0.1, abs=0.02)
    assert kept / chosen == pytest.approx(0.1, abs=0.02)


def test_masks_are_seeded_per_item_and_epoch() -> None:
    how, pool = _how(), _how().random_pool()
    ids = np.arange(10, 60)
    first = pt.mask(ids, None, how, pt.item_rng(7, 0, 3), pool)
    again = pt.mask(ids, None, how, pt.item_rng(7, 0, 3), pool)
    other_epoch = pt.mask(ids, None, how, pt.item_rng(7, 1, 3), pool)
    assert all((a == b).all() for a, b in zip(first, again, strict=True))
    assert not (first[1] == other_epoch[1]).all()  # dynamic: new masks every epoch


def test_whole_word_masking_takes_whole_words() -> None:
    how, pool = _how(whole_word=True, rate=0.2), _how().random_pool()
    for i, doc in enumerate(_corpus(n_docs=30, seed=5)):
        line = doc[0]
        ids = np.concatenate([[CLS], line.ids, [SEP]])
        starts = np.concatenate([[True], line.starts, [True]])
        _, labels = pt.mask(ids, starts, how, pt.item_rng(0, 0, i), pool)
        picked = labels != pt.IGNORE
        word = np.cumsum(starts)  # word number of every token
        for w in np.unique(word[picked]):
            assert picked[word == w].all(), "a word is masked in part"
        assert picked.sum() >= 1


def test_sentence_pairs_are_balanced_and_true_pairs_follow() -> None:
    docs = _corpus(n_docs=200, seed=1)
    pairs = pt.sentence_pairs(docs, room=40, seed=0)
    labels = np.array([p[4] for p in pairs])
    assert 0.4 < labels.mean() < 0.6  # half random next sentences
    position = {int(x): (d, i) for d, doc in enumerate(docs) for i, line in enumerate(doc)
                for x in line.ids}  # fmt: skip
    for a, a_starts, b, b_starts, label in pairs:
        assert len(a) + len(b) <= 40 and len(a) == len(a_starts) and len(b) == len(b_starts)
        assert len(a) and len(b)
        if label == 0:  # B is the continuation of A in the same document
            assert position[int(a[-1])][0] == position[int(b[0])][0]
            assert int(b[0]) > int(a[-1])
        else:
            assert position[int(a[0])][0] != position[int(b[0])][0]
    assert pt.sentence_pairs(docs, 40, 0)[5][4] == pairs[5][4]  # seeded


def test_sentence_pairs_keep_long_lines() -> None:
    """A document that is one long line is cut into pieces, not into one truncated pair."""
    docs, next_id = [], 10
    for _ in range(20):
        ids = np.arange(next_id, next_id + 500)
        next_id += 500
        docs.append([pt.Line(ids, np.ones(500, dtype=bool))])
    pairs = pt.sentence_pairs(docs, room=125, seed=0)
    seen = {int(x) for p in pairs for x in np.concatenate([p[0], p[2]])}
    assert len(seen) > 0.75 * 20 * 500  # most tokens are in some pair (was a quarter)
    assert all(len(p[0]) + len(p[2]) <= 125 for p in pairs)
    assert 0.4 < np.mean([p[4] for p in pairs]) < 0.6
