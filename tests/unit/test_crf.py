"""The CRF against brute force on tiny inputs, and its BIO constraints."""

from __future__ import annotations

import itertools

import torch

from nlptune.heads.crf import CRF, FORBIDDEN, allowed

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _path_score(crf: CRF, em: torch.Tensor, path: tuple[int, ...]) -> torch.Tensor:
    trans, start, end = crf._params()
    score = start[path[0]] + em[0, path[0]]
    for a, b in itertools.pairwise(path):
        score = score + trans[a, b]
    for t, tag in enumerate(path[1:], 1):
        score = score + em[t, tag]
    return score + end[path[-1]]


def test_nll_and_viterbi_match_brute_force() -> None:
    torch.manual_seed(0)
    crf = CRF(LABELS)
    with torch.no_grad():
        crf.transitions.normal_()
        crf.start.normal_()
        crf.end.normal_()
    em = torch.randn(2, 4, len(LABELS))
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    tags = torch.tensor([[1, 2, 0, 3], [0, 3, 4, 0]])
    nll = crf.nll(em, tags, mask)
    paths = crf.viterbi(em, mask)
    for b, n in enumerate([4, 3]):
        scores = {p: _path_score(crf, em[b], p) for p in itertools.product(range(5), repeat=n)}
        log_z = torch.logsumexp(torch.stack(list(scores.values())), 0)
        gold = scores[tuple(tags[b, :n].tolist())]
        torch.testing.assert_close(nll[b], log_z - gold)
        assert tuple(paths[b]) == max(scores, key=lambda p: scores[p].item())


def test_constraints_forbid_invalid_moves() -> None:
    trans, start, _ = allowed(LABELS)
    i = {t: k for k, t in enumerate(LABELS)}
    assert trans[i["O"], i["I-PER"]] == FORBIDDEN and trans[i["B-LOC"], i["I-PER"]] == FORBIDDEN
    assert trans[i["B-PER"], i["I-PER"]] == 0 and start[i["I-LOC"]] == FORBIDDEN
    crf = CRF(LABELS)
    em = torch.zeros(1, 3, 5)
    em[0, :, i["I-PER"]] = 50.0  # emissions that want I-PER everywhere
    path = [LABELS[k] for k in crf.viterbi(em, torch.ones(1, 3, dtype=torch.bool))[0]]
    assert path[0] != "I-PER" and all(
        not (b.startswith("I-") and a[2:] != b[2:]) for a, b in itertools.pairwise(path)
    )
    bioes = ["O", "B-X", "I-X", "E-X", "S-X"]
    trans, start, end = allowed(bioes)
    assert trans[1, 0] == FORBIDDEN and trans[3, 0] == 0 and end[1] == FORBIDDEN


def test_plain_tags_have_no_constraints() -> None:
    """POS tags such as IN, INTJ or SYM are not BIO prefixes: every move is allowed."""
    trans, start, end = allowed(["DET", "IN", "INTJ", "NN", "SYM", "ADJ"])
    assert not trans.any() and not start.any() and not end.any()
