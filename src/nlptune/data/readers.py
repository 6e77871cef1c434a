"""Readers for tabular sources: CSV/TSV, JSON Lines and Hugging Face ``datasets``.

A reader turns a source into :class:`Table` rows (a mapping per record plus where it came from).
Readers know nothing of tokenizers or tasks; tasks pick columns with :meth:`Table.column`.
A UTF-16/32 file is refused as a whole (:func:`check_utf8`), and so is a CSV quote that never
closes (it would swallow the rest of the file into one field).
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nlptune.data.textfile import check_utf8, decoded_lines
from nlptune.errors import DataError, did_you_mean

csv.field_size_limit(sys.maxsize)
ERROR = "\0error"  # the key of a lenient read's placeholder for a record it could not read


@dataclass(frozen=True)
class Table:
    """Records of one source. ``lines[i]`` is the 1-based line where record i starts."""

    source: str
    columns: list[str]
    rows: list[dict[str, Any]]
    lines: list[int]

    def where(self, i: int) -> str:
        return f"{self.source}:{self.lines[i]}" if self.lines[i] else f"{self.source} row {i}"

    def key(self, column: str | int) -> str:
        """Resolve a column given by name or 0-based index; unknown names list the real ones."""
        if isinstance(column, int):
            if not 0 <= column < len(self.columns):
                raise DataError(
                    f"{self.source}: column index {column} is out of range; "
                    f"the file has {len(self.columns)} columns: {', '.join(self.columns)}"
                )
            return self.columns[column]
        if column not in self.columns:
            raise DataError(
                f"{self.source}: no column '{column}'{did_you_mean(column, self.columns)}; "
                f"columns are: {', '.join(self.columns)}"
            )
        return column

    def error(self, i: int) -> str | None:
        """Why record ``i`` could not be read (a lenient read keeps such records in place)."""
        value = self.rows[i].get(ERROR)
        return None if value is None else str(value)

    def column(self, column: str | int) -> list[Any]:
        key = self.key(column)
        return [row.get(key) for row in self.rows]


def detect_format(path: str, fmt: str) -> str:
    """Return the concrete format of ``path`` for ``fmt='auto'``."""
    if fmt != "auto":
        return fmt
    p = Path(path)
    if p.is_dir():
        return "hf"
    suffixes = [s.lower() for s in p.suffixes if s.lower() not in (".gz",)]
    ext = suffixes[-1] if suffixes else ""
    if ext in (".tsv", ".tab"):
        return "tsv"
    if ext == ".csv":
        return "csv"
    if ext in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if not p.exists() and ":" not in path and "/" in path and not path.startswith((".", "/")):
        return "hf"  # looks like a hub id
    raise DataError(
        f"{path}: can't tell the format from the file name; set data.format to csv, tsv, "
        "jsonl or hf"
    )


def read_table(
    path: str,
    fmt: str = "auto",
    *,
    columns: Sequence[str | int] = (),
    header: bool | None = None,
    quoting: str = "auto",
    hf_subset: str | None = None,
    lenient: bool = False,
) -> Table:
    """Read ``path`` into a :class:`Table`.

    Args:
        path: a file, a folder written by ``datasets.save_to_disk``, or ``hub_id[:split]``.
        fmt: ``auto``, ``csv``, ``tsv``, ``jsonl`` or ``hf``.
        columns: the columns the task will use; named columns imply a header row.
        header: whether a CSV/TSV file starts with a header (None: decide from ``columns``).
        quoting: ``none`` (GLUE-style TSV), ``minimal`` (RFC 4180 CSV) or ``auto``.
        hf_subset: configuration name for a hub dataset.
        lenient: keep a malformed CSV/TSV row or JSON line in place as a placeholder (see
            :meth:`Table.error`) instead of raising (prediction input).
    """
    kind = detect_format(path, fmt)
    if kind not in ("csv", "tsv", "jsonl", "hf"):
        raise DataError(
            f"{path}: data.format={kind} is not a table; this task reads csv, tsv, jsonl or hf"
        )
    if kind == "hf":
        return _read_hf(path, hf_subset)
    if not Path(path).is_file():
        raise DataError(f"data file not found: {path}")
    if kind == "jsonl":  # read by decoded_lines, which checks the encoding
        return _read_jsonl(path, lenient)
    check_utf8(path)  # csv reads the file itself
    if header is None:
        header = any(isinstance(c, str) for c in columns)
    if quoting == "auto":
        quoting = "none" if kind == "tsv" else "minimal"
    return _read_csv(path, "\t" if kind == "tsv" else ",", header, quoting, lenient)


def _read_csv(path: str, delimiter: str, header: bool, quoting: str, lenient: bool) -> Table:
    mode: Literal[0, 1, 2, 3] = csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        # strict: a quoted field that never closes is an error, not the rest of the file
        reader = csv.reader(f, delimiter=delimiter, quoting=mode, strict=True)
        names: list[str] | None = None
        start = 1
        try:
            for record in reader:
                line, start = start, reader.line_num + 1
                if not record or (len(record) == 1 and not record[0].strip()):
                    continue
                if names is None:
                    if header:
                        names = [n.strip() for n in record]
                        continue
                    names = [str(i) for i in range(len(record))]
                problem = _row_problem(path, line, reader.line_num, record, len(names), delimiter)
                if problem is not None:
                    if not lenient:
                        raise DataError(problem)
                    rows.append({ERROR: problem})
                else:
                    rows.append(dict(zip(names, record, strict=True)))
                lines.append(line)
        except csv.Error as err:
            message = _csv_error(path, start, reader.line_num, delimiter, str(err))
            raise DataError(message) from None
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return Table(path, names or [], rows, lines)


def _row_problem(
    path: str, line: int, end: int, record: list[str], width: int, delimiter: str
) -> str | None:
    """What is wrong with a CSV/TSV record of lines ``line``..``end``, or None."""
    if any("\0" in field for field in record):
        return f"{path}:{line}: holds a NUL byte (binary data?); save the file as UTF-8 text"
    if len(record) == width:
        return None
    problem = f"{path}:{line}: expected {width} fields, found {len(record)}"
    if end > line and any("\n" in f or "\r" in f for f in record):  # a quote ran over lines
        return f"{problem} in a record that runs on to line {end} (a quote not closed?); {_HINT}"
    return f"{problem} (delimiter {delimiter!r}; set data.quoting if fields hold quotes)"


_HINT = (
    'close the quote, double a quote inside a quoted field (""), or set data.quoting=none if '
    "quotes are not special in this file"
)


def _csv_error(path: str, start: int, end: int, delimiter: str, error: str) -> str:
    """The message for a csv.Error in the record of lines ``start``..``end``: a quote that never
    closes names the line where it opens."""
    if error == "unexpected end of data":
        opened = _open_quote(path, start, end, delimiter)
        return (
            f"{path}:{opened}: a quote opens here and never closes, so the rest of the file (to "
            f"line {end}) would be one field; {_HINT}"
        )
    if end > start:  # a quoted field ran over line ends, then stopped at the wrong quote
        opened = _open_quote(path, start, end, delimiter)
        return (
            f"{path}:{end}: malformed row ({error}) in a quoted field that opens on line "
            f"{opened}; {_HINT}"
        )
    return f"{path}:{end}: malformed row ({error}); {_HINT}"


def _open_quote(path: str, start: int, end: int, delimiter: str) -> int:
    """The line of the last quote that opens a quoted field in lines ``start``..``end``."""
    opened, state = start, "start"  # start of a field, in a field, quoted, a quote when quoted
    with open(path, encoding="utf-8-sig", newline="") as f:
        for number, raw in enumerate(f, 1):
            if number > end:
                break
            for c in raw if number >= start else "":
                if state == "quoted":
                    state = "quote" if c == '"' else state
                elif state == "quote" and c == '"':
                    state = "quoted"  # a doubled quote inside a quoted field
                elif state == "start" and c == '"':
                    state, opened = "quoted", number
                else:
                    state = "start" if c in (delimiter, "\n", "\r") else "field"
    return opened


def _read_jsonl(path: str, lenient: bool = False) -> Table:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    names: dict[str, None] = {}
    for number, text, bad in decoded_lines(path, newline="\n"):  # a record ends at \n only
        if not text.strip():
            continue
        row, problem = _json_object(text, bad)
        if problem is not None:
            if not lenient:
                raise DataError(f"{path}:{number}: {problem}")
            row = {ERROR: f"{path}:{number}: {problem}"}
        else:
            names.update(dict.fromkeys(row))
        rows.append(row)
        lines.append(number)
    return Table(path, list(names), rows, lines)


def json_value(text: str) -> tuple[Any, str | None]:
    """One JSON Lines value, or why it isn't one (bad JSON, a huge number, deep nesting)."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as err:
        return None, f"not valid JSON: {err.msg}"
    except (ValueError, RecursionError) as err:
        return None, f"not valid JSON: {type(err).__name__}"


def _json_object(text: str, bad: str) -> tuple[dict[str, Any], str | None]:
    """One JSON Lines record, or why it isn't one (``bad``: the line's decoding problem)."""
    if bad:
        return {}, bad
    row, problem = json_value(text)
    if problem is None and not isinstance(row, dict):
        problem = f"expected a JSON object, got {type(row).__name__}"
    return (row, None) if problem is None else ({}, problem)


def _read_hf(spec: str, subset: str | None) -> Table:
    import datasets

    path, _, split = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    if Path(path).is_dir():
        try:
            ds: Any = datasets.load_from_disk(path)
        except (FileNotFoundError, ValueError) as err:
            raise DataError(f"{path}: not a dataset saved with save_to_disk ({err})") from None
    else:
        try:
            ds = datasets.load_dataset(path, subset, split=split or None)
        except Exception as err:  # network, unknown id, ...
            raise DataError(f"can't load dataset '{spec}': {err}") from None
    if isinstance(ds, datasets.DatasetDict):
        if not split:
            raise DataError(
                f"{spec} holds splits {', '.join(ds)}; name one as {path}:SPLIT, e.g. {path}:train"
            )
        if split not in ds:
            raise DataError(f"{spec}: no split '{split}'; splits are {', '.join(ds)}")
        ds = ds[split]
    rows = list(ds)
    return Table(spec, list(ds.column_names), rows, [0] * len(rows))
