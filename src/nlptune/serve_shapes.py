"""Batches padded to a few shapes, so that a long-running server's memory levels off.

PyTorch's CPU kernels (oneDNN) keep state for every input shape they meet. ``nlptune predict``
runs batches of one size, but dynamic batching makes batches of any size and length: RSS then
grows with every new (batch, length) pair, measured at +650 MB over 400 batches of 1-32
sentences for MiniLM, still rising. Padding each batch to a size of 1, 2, 4, 8 or a multiple
of 8 and a length that is a multiple of 16 (padding tokens are masked out; extra rows repeat the
last one) bounds the shapes; the same 400 batches then stay within 30 MB. The outputs are cut
back to the batch's own rows and tokens, so decoding sees exactly what it would have seen.
"""

from __future__ import annotations

from typing import Any

# tasks whose prediction is model(**batch) -> (B, ...) or (B, T, ...) outputs
FORWARD_TASKS = (
    "text_classification",
    "sentence_pair",
    "sequence_labelling",
    "extractive_qa",
    "word_sense",
)


class ShapeBuckets:
    """A model called like ``model(**batch)`` whose batches are padded to bucketed shapes.

    Args:
        model: the task model (``model(**batch) -> dict of tensors``).
        pad_id: the tokenizer's pad id (``input_ids`` padding; other token columns get 0).
        max_length: the longest a batch may become (the run's ``backbone.max_length``).
        step: lengths are rounded up to a multiple of this.
    """

    def __init__(self, model: Any, pad_id: int, max_length: int, step: int = 16) -> None:
        self.model, self.pad_id, self.max_length, self.step = model, pad_id, max_length, step

    def __getattr__(self, name: str) -> Any:  # eval(), to(), parameters() ... of the model
        return getattr(self.model, name)

    def __call__(self, **batch: Any) -> dict[str, Any]:
        import torch

        size, length = batch["input_ids"].shape  # (B, T)
        rows = bucket(size)
        tokens = min(max(length, self.max_length), -(-length // self.step) * self.step)
        padded = {}
        for key, value in batch.items():
            if value.dim() >= 2 and value.shape[1] == length and tokens > length:
                fill = self.pad_id if key == "input_ids" else 0
                spec = [0, 0] * (value.dim() - 2) + [0, tokens - length]
                value = torch.nn.functional.pad(value, spec, value=fill)
            if rows > size:  # repeat the last row: no row is all padding
                value = torch.cat([value, value[-1:].expand(rows - size, *value.shape[1:])])
            padded[key] = value
        out = {}
        for key, value in self.model(**padded).items():
            value = value[:size]
            if value.dim() >= 2 and value.shape[1] == tokens:
                value = value[:, :length]
            out[key] = value
        return out


def bucket(size: int) -> int:
    """1, 2, 4, 8, then the next multiple of 8."""
    return 1 << (size - 1).bit_length() if size <= 8 else -(-size // 8) * 8


def bucketed(predictor: Any) -> Any:
    """``predictor`` with its model wrapped in :class:`ShapeBuckets` where the task predicts
    with one forward pass (generation and fill-mask keep their own shapes)."""
    if predictor.config.task.type in FORWARD_TASKS:
        predictor.model = ShapeBuckets(
            predictor.model, predictor.text.pad_id, predictor.config.backbone.max_length
        )
    return predictor
