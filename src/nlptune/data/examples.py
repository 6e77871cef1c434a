"""Typed examples produced by readers and consumed by tasks."""

from __future__ import annotations

from dataclasses import dataclass

Label = str | float | tuple[str, ...] | None


@dataclass(frozen=True)
class TextExample:
    """One text (or text pair) with its label.

    ``label`` is a class name (single-label), a tuple of class names (multi-label), a float
    (regression) or None (unlabelled input for prediction). ``where`` is ``file:line``.
    """

    text: str
    text_pair: str | None = None
    label: Label = None
    where: str = ""
