"""Prediction inputs: the records of a file, each with where it came from and its id.

A ``.txt`` file is one input a line and a ``.jsonl`` file one JSON object a line, both read
lazily (a line that is not valid JSON becomes a record that carries its error, so prediction
reports it in its place and goes on). Anything else is read by the task as it reads training
data, without labels: CSV/TSV, ``datasets``, CoNLL/CoNLL-U, SemEval-2007 XML, STREUSLE, SQuAD
JSON, parallel text; the examples keep their ids (question ids, instance ids, sentence ids).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlptune.data.examples import BadRecord
from nlptune.errors import DataError

STRUCTURED = ("conll", "conllu", "streusle", "semeval", "squad")


@dataclass
class Record:
    """One prediction input: ``item`` (a text, a dict or an example) for the task's
    ``input_example``, ``where`` for messages, its 1-based ``line`` in a line-based file, its
    ``id`` where the input has one, and ``error`` when it could not even be read."""

    item: Any
    where: str
    line: int | None = None
    id: str | None = None
    error: str | None = None
    extra: dict[str, Any] | None = None  # more fields for the output (STREUSLE token ids)


def records(task: Any, path: str) -> Iterator[Record]:
    """The records of ``path`` in file order (see the module docstring)."""
    source = Path(path)
    if not source.exists() and not (
        source.parent.is_dir() and any(source.parent.glob(f"{source.name}.*"))
    ):  # a parallel-text prefix (``test`` for ``test.en``) is fine
        raise DataError(f"input file not found: {path}")
    suffix = source.suffix.lower()
    # a run trained on a structured format reads it in .txt files too (CoNLL-2003's train.txt)
    structured = getattr(task, "format", "auto") in STRUCTURED
    if source.is_file() and suffix in (".txt", "") and not structured:
        return _text_lines(task, source)
    if source.is_file() and (suffix in (".jsonl", ".ndjson") or _json_lines_file(source)):
        return _json_lines(source)
    return _examples(task, path)


def _json_lines_file(source: Path) -> bool:
    """A ``.json`` file of one object a line (not one document, such as SQuAD's)."""
    if source.suffix.lower() != ".json":
        return False
    with open(source, "rb") as f:
        head = f.read(4096).decode("utf-8", "replace").lstrip("\ufeff").lstrip()
    first = head.splitlines()[0] if head else ""
    try:
        value = json.loads(first)
    except (ValueError, RecursionError):
        return False
    return not (isinstance(value, dict) and "data" in value)  # a one-line SQuAD document


def _decoded(source: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """``(number, line, error)`` for every line, decoded on its own (a bad byte is that
    line's error, not the file's)."""
    with open(source, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                yield number, None, f"not UTF-8 text ({err.reason} at byte {err.start})"
                continue
            yield number, text.rstrip("\r\n"), None


def _text_lines(task: Any, source: Path) -> Iterator[Record]:
    first = True
    for number, line, error in _decoded(source):
        where = f"{source}:{number}"
        if line is None:
            yield Record(None, where, number, error=error)
            continue
        if first:  # a task that reads no plain text says so once, for the whole file
            task.line_input(line)
            first = False
        try:
            yield Record(task.line_input(line), where, number)
        except DataError as err:
            yield Record(None, where, number, error=str(err))


def _json_lines(source: Path) -> Iterator[Record]:
    for number, line, error in _decoded(source):
        where = f"{source}:{number}"
        if line is None or not line.strip():
            if line is None:
                yield Record(None, where, number, error=error)
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            yield Record(None, where, number, error=f"not valid JSON: {err.msg}")
            continue
        except (ValueError, RecursionError) as err:  # a huge number, deep nesting
            yield Record(None, where, number, error=f"not valid JSON: {type(err).__name__}")
            continue
        rid = item.get("id") if isinstance(item, dict) else None
        yield Record(item, where, number, None if rid is None else str(rid))


def _examples(task: Any, path: str) -> Iterator[Record]:
    for e in task.read(path, labelled=False):
        if isinstance(e, BadRecord):  # a record the reader could not read, in its place
            yield Record(None, e.where, None, e.id or None, error=e.error)
            continue
        extra: dict[str, Any] = {}
        if getattr(e, "token_ids", ()):  # STREUSLE: the target's tokens
            extra["token_ids"] = list(e.token_ids)
        if getattr(e, "id", "") and getattr(e, "lemma", ""):  # SemEval: the key file's lemma
            extra["lemma"] = e.lemma
        yield Record(e, e.where, None, str(getattr(e, "id", "") or "") or None, extra=extra)
