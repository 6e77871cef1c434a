"""Prediction inputs: the records of a file, each with where it came from and its id.

A ``.txt`` file is one input a line and a ``.jsonl`` file one JSON object a line, both read
lazily (a line that is not valid JSON becomes a record that carries its error, so prediction
reports it in its place and goes on). Anything else is read by the task as it reads training
data, without labels: CSV/TSV, ``datasets``, CoNLL/CoNLL-U, SemEval-2007 XML, STREUSLE, SQuAD
JSON, parallel text; the examples keep their ids (question ids, instance ids, sentence ids).
A file in UTF-16 or UTF-32 is refused as a whole (its lines would all be garbage records).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlptune.data.examples import BadRecord
from nlptune.data.readers import check_utf8, json_value
from nlptune.data.textfile import decoded_lines
from nlptune.errors import DataError

logger = logging.getLogger("nlptune")


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


def records(task: Any, path: str, keep: Sequence[str] = ()) -> Iterator[Record]:
    """The records of ``path`` in file order (see the module docstring). ``keep``: fields of a
    JSON Lines or CSV/TSV input copied to each record's output (``extra``)."""
    source = Path(path)
    if not input_exists(source):
        raise DataError(f"input file not found: {path}")
    if source.is_file():  # UTF-16/32 text: one error for the file, not a garbage record a line
        check_utf8(source)
    suffix = source.suffix.lower()
    if source.is_file() and suffix in (".txt", "") and not _conll_txt(task, source):
        if keep:
            raise DataError(_NO_FIELDS.format(path=path, kind="plain text, one input a line"))
        return _text_lines(task, source)
    if source.is_file() and (suffix in (".jsonl", ".ndjson") or _json_lines_file(source)):
        return _json_lines(source, keep)
    return _examples(task, path, keep)


_NO_FIELDS = (
    "--keep copies fields of JSON Lines, CSV or TSV input; {path} is {kind}, which has none"
)


def input_exists(path: Path) -> bool:
    """A file or folder, or the prefix of parallel text files (``test`` for ``test.en``)."""
    if path.exists():
        return True
    return path.parent.is_dir() and any(path.parent.glob(f"{path.name}.*"))


def _conll_txt(task: Any, source: Path) -> bool:
    """Whether a ``.txt`` input is CoNLL (CoNLL-2003's files are ``.txt``): the run trained on
    ``data.format`` conll/conllu and the file looks like it (a ``-DOCSTART-`` line, or blank
    lines between groups of lines with one steady column count); else one input a line."""
    if getattr(task, "format", "auto") not in ("conll", "conllu"):
        return False
    counts: list[int] = []
    blank = False
    for _, line, _ in decoded_lines(source):
        if line.startswith("-DOCSTART-"):
            return _said(source, True)
        if not line.strip():
            blank = blank or bool(counts)
            continue
        counts.append(len(line.split("\t") if "\t" in line else line.split()))
        if len(counts) >= 200:
            break
    steady = bool(counts) and max(counts) == min(counts) and counts[0] > 1
    return _said(source, blank and steady)


def _said(source: Path, conll: bool) -> bool:
    how = "as CoNLL (the run's data.format)" if conll else "as one sentence a line"
    logger.info("reading %s %s", source, how)
    return conll


def _json_lines_file(source: Path) -> bool:
    """A ``.json`` file of one object a line (not one document, such as SQuAD's)."""
    if source.suffix.lower() != ".json":
        return False
    first = ""
    with open(source, encoding="utf-8-sig", errors="replace") as f:
        for line in f:  # the first non-blank line, whole
            if line.strip():
                first = line
                break
    value, problem = json_value(first)
    return problem is None and not (isinstance(value, dict) and "data" in value)  # (SQuAD)


def _decoded(source: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """``(number, line, error)`` for every line, decoded on its own (a bad byte is that
    line's error, not the file's)."""
    for number, line, problem in decoded_lines(source, newline="\n"):  # one record a line
        yield number, (None if problem else line), (problem or None)


def _text_lines(task: Any, source: Path) -> Iterator[Record]:
    first = True
    for number, line, error in _decoded(source):
        where = f"{source}:{number}"
        if line is None or "\0" in line:
            yield Record(None, where, number, error=error or "holds a NUL byte (binary data?)")
            continue
        try:
            item = task.line_input(line)
        except DataError as err:
            if first:  # a task that reads no plain text says so once, for the whole file
                raise
            yield Record(None, where, number, error=str(err))
            continue
        first = False
        yield Record(item, where, number)


def _json_lines(source: Path, keep: Sequence[str] = ()) -> Iterator[Record]:
    for number, line, error in _decoded(source):
        where = f"{source}:{number}"
        if line is None or not line.strip():
            if line is None:
                yield Record(None, where, number, error=error)
            continue
        item, problem = json_value(line)
        if problem is not None:
            yield Record(None, where, number, error=problem)
            continue
        rid = item.get("id") if isinstance(item, dict) else None
        kept = {k: item.get(k) for k in keep} if isinstance(item, dict) else {}
        yield Record(item, where, number, None if rid is None else str(rid), extra=kept)


def _examples(task: Any, path: str, keep: Sequence[str] = ()) -> Iterator[Record]:
    checked = not keep
    for e in task.read(path, labelled=False):
        if isinstance(e, BadRecord):  # a record the reader could not read, in its place
            yield Record(None, e.where, None, e.id or None, error=e.error)
            continue
        fields = getattr(e, "fields", None)
        if not checked:  # the first example says whether the input has the fields
            _check_keep(path, keep, fields)
            checked = True
        extra: dict[str, Any] = {k: fields.get(k) for k in keep} if fields else {}
        if fields and fields.get("id") not in (None, ""):  # a CSV/TSV id column
            yield Record(e, e.where, None, str(fields["id"]), extra=extra)
            continue
        if getattr(e, "token_ids", ()):  # STREUSLE: the target's tokens
            extra["token_ids"] = list(e.token_ids)
        if getattr(e, "id", "") and getattr(e, "lemma", ""):  # SemEval: the key file's lemma
            extra["lemma"] = e.lemma
        yield Record(e, e.where, None, str(getattr(e, "id", "") or "") or None, extra=extra)


def _check_keep(path: str, keep: Sequence[str], fields: dict[str, Any] | None) -> None:
    if fields is None:
        raise DataError(_NO_FIELDS.format(path=path, kind="not a table"))
    missing = [k for k in keep if k not in fields]
    if missing:
        named = ", ".join(str(k) for k in fields)
        raise DataError(
            f"--keep {missing[0]}: {path} has no column '{missing[0]}' (it has: {named})"
        )
