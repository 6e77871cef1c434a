"""Typed examples produced by readers and consumed by tasks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from nlptune.errors import DataError

T = TypeVar("T")

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


@dataclass(frozen=True)
class BadRecord:
    """A prediction input that could not be read, kept in its place: readers of unlabelled
    input return one instead of stopping at the first bad record (prediction reports it)."""

    where: str
    error: str
    id: str = ""


def guarded(lenient: bool, where: str, make: Callable[[], T], rid: str = "") -> T | BadRecord:
    """``make()``; when ``lenient``, a DataError becomes a :class:`BadRecord` in its place."""
    if not lenient:
        return make()
    try:
        return make()
    except DataError as err:
        message = str(err)
        named = message if message.startswith(where) else f"{where}: {message}"
        return BadRecord(where, named, rid)
