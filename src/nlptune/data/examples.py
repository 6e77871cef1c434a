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


@dataclass(frozen=True)
class TokenExample:
    """A sentence as words with one tag per word (None for unlabelled input).

    ``where`` is ``file:line`` of the sentence's first word.
    """

    words: tuple[str, ...]
    tags: tuple[str, ...] | None = None
    where: str = ""
    id: str = ""  # CoNLL-U: the sentence's sent_id
