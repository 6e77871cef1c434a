"""Fill-mask prediction for ``masked_lm`` runs, as ``pipeline("fill-mask")`` does it: for every
mask in an input, the ``top_k`` most likely tokens with their probabilities (a softmax over all
of the model's logits)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from nlptune.data.features import Features, sequence_lengths

logger = logging.getLogger("nlptune")

PLACEHOLDERS = ("[MASK]", "<mask>")  # either one is the model's mask token in prediction input


def fill_features(
    texts: Sequence[str], wheres: Sequence[str], text: Any, max_length: int
) -> Features:
    """One framed item per text, ``[MASK]``/``<mask>`` turned into the model's mask token;
    a text cut at ``max_length`` is named in the log (masks after the cut are not filled)."""
    texts = [_with_mask_token(t, text.mask_token) for t in texts]
    sequences = text.encode(texts, None, max_length)
    full = text.encode(texts, None, 1_000_000)["input_ids"]
    for ids, whole, where in zip(sequences["input_ids"], full, wheres, strict=True):
        if len(whole) > len(ids):
            logger.warning(
                "%s: %d tokens, cut to backbone.max_length=%d; masks after the cut are not "
                "filled", where, len(whole), max_length,
            )  # fmt: skip
    return Features(sequences, lengths=sequence_lengths(sequences["input_ids"]))


def fill_step(model: Any, batch: dict[str, torch.Tensor], mask_id: int, top_k: int) -> torch.Tensor:
    """The top-k filler ids and probabilities of each mask (B, M, 2k); -1 where an item has
    fewer than M masks."""
    where = batch["input_ids"] == mask_id  # (B, T)
    width = max(1, int(where.sum(dim=1).max()))
    result = torch.full((len(where), width, 2 * top_k), -1.0, device=where.device)
    if where.any():
        logits = model(**batch, mlm_positions=where)["logits"].float()  # (N, V)
        probs, ids = logits.softmax(-1).topk(min(top_k, logits.shape[-1]), dim=-1)
        rows, cols = where.nonzero(as_tuple=True)
        slot = where.cumsum(dim=1)[rows, cols] - 1  # the mask's number within its item
        k = ids.shape[1]
        result[rows, slot, :k] = ids.float()
        result[rows, slot, top_k : top_k + k] = probs
    return result


def fill_predictions(
    rows: Iterable[tuple[int, np.ndarray]], features: Features, text: Any, top_k: int
) -> list[dict[str, Any]]:
    """Per input: ``masks``, one list per mask of ``{token, token_str, score}`` (best first),
    and ``sequence``, the text with every mask filled by its best token."""
    out: list[dict[str, Any]] = [{} for _ in range(len(features))]
    for i, row in rows:
        ids = features.sequences["input_ids"][i].copy()
        masks = []
        for slot in row:
            if slot[0] < 0:
                break
            tokens = slot[:top_k][slot[:top_k] >= 0].astype(np.int64)
            names = text.token_strings(tokens)
            masks.append(
                [
                    {"token": int(t), "token_str": s, "score": float(p)}
                    for t, s, p in zip(tokens, names, slot[top_k:], strict=False)
                ]
            )
        places = np.flatnonzero(ids == text.mask_id)
        ids[places[: len(masks)]] = [m[0]["token"] for m in masks]
        out[i] = {"masks": masks, "sequence": text.decode(ids)}
    return out


def _with_mask_token(text: str, mask_token: str) -> str:
    for placeholder in PLACEHOLDERS:
        if placeholder != mask_token:
            text = text.replace(placeholder, mask_token)
    return text
