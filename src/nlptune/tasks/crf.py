"""A linear-chain CRF over word-level emissions, and a tagger that puts it on a transformers
token-classification model.

The CRF learns tag-to-tag transitions; transitions the tag scheme forbids (``O -> I-PER`` in IOB2,
``B-PER -> O`` in BIOES, an entity starting with ``I-``) get a fixed -10,000, so Viterbi never
produces an invalid sequence. Saved beside the encoder as ``crf.safetensors`` + ``crf.json``; the
rest of ``model/`` is a standard token-classification model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

FORBIDDEN = -1e4


def allowed(labels: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masks (0 allowed / FORBIDDEN) for transitions (L, L), starts (L) and ends (L).

    IOB2: ``I-X`` only after ``B-X`` or ``I-X`` and never first. BIOES: after ``B-X``/``I-X``
    only ``I-X``/``E-X``; after ``O``/``E-``/``S-`` only ``O``/``B-``/``S-``; no sentence starts
    with ``I-``/``E-`` or ends with ``B-``/``I-``.
    """
    n = len(labels)
    trans, start, end = torch.zeros(n, n), torch.zeros(n), torch.zeros(n)
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


class MeanPoolTagger(nn.Module):
    """A token-classification model whose word scores are the mean over the word's subwords.

    The classifier is linear, so the mean of subword logits equals the classifier applied to the
    mean of the subword states. ``word_ids`` (B, T) numbers each token's word from 1 (0: special
    or padding). Each token's logits become its word's mean; labels sit on first subwords.
    """

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self.inner = inner
        self.config = inner.config
        self.base_model_prefix = f"inner.{getattr(inner, 'base_model_prefix', '')}"

    @property
    def base_model(self) -> Any:
        return self.inner.base_model

    def forward(
        self, word_ids: torch.Tensor, labels: torch.Tensor | None = None, **inputs: Any
    ) -> dict[str, torch.Tensor]:
        logits = self.inner(**inputs)["logits"].float()  # (B, T, L)
        b, t, n = logits.shape
        width = int(word_ids.max()) + 1
        sums = logits.new_zeros(b, width, n).scatter_add_(
            1, word_ids[:, :, None].expand(-1, -1, n), logits
        )  # (B, W+1, L)
        counts = (
            logits.new_zeros(b, width)
            .scatter_add_(1, word_ids, torch.ones_like(word_ids, dtype=logits.dtype))
            .clamp(min=1.0)
        )
        means = sums / counts[:, :, None]
        pooled = torch.gather(means, 1, word_ids[:, :, None].expand(-1, -1, n))  # (B, T, L)
        out = {"logits": pooled}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(
                pooled.reshape(-1, n), labels.reshape(-1), ignore_index=-100
            )
        return out

    def save_pretrained(self, folder: str | Path, **kwargs: Any) -> None:
        self.inner.save_pretrained(folder, **kwargs)


class CrfTagger(nn.Module):
    """A transformers token-classification model whose first-subword logits feed a CRF.

    ``forward`` takes the usual batch plus ``word_mask`` (B, T: 1 on first subwords) and
    ``labels`` (B, T, -100 off first subwords); it returns ``loss`` (mean NLL) and ``logits``:
    the Viterbi tags as one-hot scores on first subwords (B, T, L), so decoding is an argmax.
    """

    def __init__(self, inner: Any, labels: list[str]) -> None:
        super().__init__()
        self.inner = inner
        self.crf = CRF(labels)
        self.config = inner.config
        self.base_model_prefix = f"inner.{inner.base_model_prefix}"

    @property
    def base_model(self) -> Any:
        return self.inner.base_model

    def forward(
        self, word_mask: torch.Tensor, labels: torch.Tensor | None = None, **inputs: Any
    ) -> dict[str, torch.Tensor]:
        emissions = self.inner(**inputs)["logits"]  # (B, T, L)
        mask = word_mask.bool()
        counts = mask.sum(1)
        width = max(int(counts.max()), 1)
        order = torch.argsort((~mask).int(), dim=1, stable=True)[:, :width]  # first subwords first
        words = torch.gather(emissions, 1, order[:, :, None].expand(-1, -1, emissions.shape[-1]))
        valid = torch.arange(width, device=mask.device)[None] < counts[:, None]  # (B, W)
        out: dict[str, torch.Tensor] = {}
        if labels is not None:
            tags = torch.gather(labels, 1, order).clamp(min=0)
            out["loss"] = self.crf.nll(words, tags, valid).mean()
        paths = self.crf.viterbi(words, valid)
        onehot = torch.zeros_like(emissions, dtype=torch.float32)
        for i, path in enumerate(paths):
            if path:
                positions = order[i, : len(path)]
                onehot[i, positions, torch.tensor(path, device=onehot.device)] = 1.0
        out["logits"] = onehot
        return out

    def save_pretrained(self, folder: str | Path, **kwargs: Any) -> None:
        self.inner.save_pretrained(folder, **kwargs)
        save_file(
            {k: v.contiguous() for k, v in self.crf.state_dict().items()},
            str(Path(folder) / "crf.safetensors"),
        )
        (Path(folder) / "crf.json").write_text(json.dumps({"labels": self.crf.labels}))

    @classmethod
    def from_pretrained(cls, folder: str | Path, mean: bool = False) -> CrfTagger:
        from transformers import AutoModelForTokenClassification

        inner: Any = AutoModelForTokenClassification.from_pretrained(folder)
        if mean:
            inner = MeanPoolTagger(inner)
        labels = json.loads((Path(folder) / "crf.json").read_text())["labels"]
        model = cls(inner, labels)
        model.crf.load_state_dict(load_file(str(Path(folder) / "crf.safetensors")))
        return model
