"""A linear-chain CRF over word-level emissions (used by :class:`~nlptune.heads.token.TokenHead`).

The CRF learns tag-to-tag transitions; transitions the tag scheme forbids (``O -> I-PER`` in IOB2,
``B-PER -> O`` in BIOES, an entity starting with ``I-``) get a fixed -10,000, so Viterbi never
produces an invalid sequence.
"""

from __future__ import annotations

import torch
from torch import nn

FORBIDDEN = -1e4


def allowed(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masks (0 allowed / FORBIDDEN) for transitions (L, L), starts (L) and ends (L).

    IOB2: ``I-X`` only after ``B-X`` or ``I-X`` and never first. BIOES: after ``B-X``/``I-X``
    only ``I-X``/``E-X``; after ``O``/``E-``/``S-`` only ``O``/``B-``/``S-``; no sentence starts
    with ``I-``/``E-`` or ends with ``B-``/``I-``. Plain tags (POS: ``IN``, ``INTJ``, ``SYM``)
    have no prefixes, so nothing is forbidden.
    """
    n = len(labels)
    trans, start, end = torch.zeros(n, n), torch.zeros(n), torch.zeros(n)
    if not all(t == "O" or (len(t) > 2 and t[0] in "BIES" and t[1] == "-") for t in labels):
        return trans, start, end
    bioes = any(t[:2] in ("E-", "S-") for t in labels)
    split = [("O", "") if t == "O" else (t[0], t[2:]) for t in labels]
    for j, (kind, typ) in enumerate(split):
        continues = kind in ("IE" if bioes else "I")
        if continues:
            start[j] = FORBIDDEN
        if bioes and kind in "BI":
            end[j] = FORBIDDEN
        for i, (prev, ptyp) in enumerate(split):
            is_open = prev in "BI"
            ok = (is_open and ptyp == typ) if continues else not (bioes and is_open)
            if not ok:
                trans[i, j] = FORBIDDEN
    return trans, start, end


class CRF(nn.Module):
    """Linear-chain CRF. Emissions (B, W, L), tags (B, W), mask (B, W) with True for real words."""

    def __init__(self, labels: list[str]) -> None:
        super().__init__()
        self.labels = list(labels)
        n = len(labels)
        self.transitions = nn.Parameter(torch.zeros(n, n))
        self.start = nn.Parameter(torch.zeros(n))
        self.end = nn.Parameter(torch.zeros(n))
        trans, start, end = allowed(labels)
        self.register_buffer("trans_mask", trans, persistent=False)
        self.register_buffer("start_mask", start, persistent=False)
        self.register_buffer("end_mask", end, persistent=False)

    def _params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        masks: dict[str, torch.Tensor] = dict(self.named_buffers())
        return (
            self.transitions + masks["trans_mask"],
            self.start + masks["start_mask"],
            self.end + masks["end_mask"],
        )

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of ``tags`` per sentence. Returns (B,)."""
        trans, start, end = self._params()
        emissions = emissions.float()
        b, w, _ = emissions.shape
        rows = torch.arange(b, device=emissions.device)
        # score of the gold path
        gold = start[tags[:, 0]] + emissions[rows, 0, tags[:, 0]]  # (B,)
        for t in range(1, w):
            step = trans[tags[:, t - 1], tags[:, t]] + emissions[rows, t, tags[:, t]]
            gold = gold + step * mask[:, t]
        last = tags[rows, mask.long().sum(1) - 1]
        gold = gold + end[last]
        # log partition: the forward algorithm
        alpha = start + emissions[:, 0]  # (B, L)
        for t in range(1, w):
            nxt = torch.logsumexp(alpha[:, :, None] + trans[None], dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t, None], nxt, alpha)
        return torch.logsumexp(alpha + end, dim=1) - gold

    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """The best tag sequence of each sentence (its real words only)."""
        trans, start, end = self._params()
        emissions = emissions.float()
        score = start + emissions[:, 0]  # (B, L)
        back = []
        for t in range(1, emissions.shape[1]):
            best, idx = (score[:, :, None] + trans[None]).max(dim=1)  # (B, L)
            nxt = best + emissions[:, t]
            score = torch.where(mask[:, t, None], nxt, score)
            back.append(
                torch.where(
                    mask[:, t, None],
                    idx,
                    torch.arange(score.shape[1], device=score.device).expand_as(idx),
                )
            )
        score = score + end
        out = []
        lengths = mask.long().sum(1).tolist()
        for i, n in enumerate(lengths):
            tag = int(score[i].argmax())
            path = [tag]
            for t in range(n - 1, 0, -1):
                tag = int(back[t - 1][i, tag])
                path.append(tag)
            out.append(path[::-1])
        return out
