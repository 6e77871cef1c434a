"""Typed examples produced by readers and consumed by tasks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

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
    # prediction input from a table (CSV/TSV/JSON Lines): the row's fields, for ``--keep``
    fields: dict[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class TokenExample:
    """A sentence as words with one tag per word (None for unlabelled input).

    ``where`` is ``file:line`` of the sentence's first word.
    """

    words: tuple[str, ...]
    tags: tuple[str, ...] | None = None
    where: str = ""
    id: str = ""  # CoNLL-U: the sentence's sent_id
    # prediction input given as raw text: the text and each word's (start, end) in it
    text: str | None = None
    offsets: tuple[tuple[int, int], ...] | None = None


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
        return BadRecord(where, located(where, str(err)), rid)


def located(where: str, message: str) -> str:
    """``message`` led by ``where`` (``file:line``), unless it already names it."""
    return message if message.startswith(where) else f"{where}: {message}"


class Sentences:
    """Collects the records of a sentence-based file (CoNLL, CoNLL-U, STREUSLE). ``fail`` raises
    DataError, or (``lenient``, prediction input) marks the current sentence bad, and ``end``
    then adds one BadRecord in its place; else the record(s) that ``make()`` gives."""

    def __init__(self, path: str, lenient: bool) -> None:
        self.path, self.lenient = path, lenient
        self.out: list[Any] = []
        self.problem = ""

    def fail(self, message: str) -> None:
        if not self.lenient:
            raise DataError(message)
        self.problem = self.problem or message

    def end(self, start: int, make: Callable[[], Any], sent_id: str = "") -> None:
        """Close the sentence whose first line is ``start``: ``make()`` gives its record, or a
        list of records (one per target)."""
        where = f"{self.path}:{start}"
        found = (
            BadRecord(where, self.problem, sent_id)
            if self.problem
            else guarded(self.lenient, where, make, sent_id)
        )
        self.out.extend(found if isinstance(found, list) else [found])
        self.problem = ""
