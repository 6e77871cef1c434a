"""Plain text: a file (``.txt``, ``.gz``) or a folder of them, one sentence or document a line.

A blank line ends a document, and so does the end of each file. Used by masked-LM pre-training
and by ``nlptune vectors adapt``.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from nlptune.data.readers import read_table
from nlptune.data.textfile import decoded_lines
from nlptune.errors import DataError

SUFFIXES = (".txt", ".gz")
# compressed files of other formats: not plain text, even though they end in .gz
OTHER = (".jsonl.gz", ".json.gz", ".csv.gz", ".tsv.gz", ".conll.gz", ".conllu.gz", ".xml.gz")


@dataclass(frozen=True)
class TextLine:
    """A line (or a row's text) of unlabelled text; ``new_document``: a document starts here."""

    text: str
    where: str = ""
    new_document: bool = True


def _is_text_file(f: Path) -> bool:
    name = f.name.lower()
    return f.is_file() and name.endswith(SUFFIXES) and not name.endswith(OTHER)


def text_files(path: str | Path, what: str = "data") -> list[Path]:
    """The files ``path`` names: itself, or every ``.txt``/``.gz`` file under a folder (sorted)."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"{what} {path}: no such file or folder")
    if root.is_dir():
        files = sorted(f for f in root.rglob("*") if _is_text_file(f))
        if not files:
            raise DataError(
                f"{what} {path}: a folder with no .txt or .txt.gz files (a dataset saved with "
                "datasets' save_to_disk is read with data.format=hf)"
            )
        return files
    if not root.is_file():  # a pipe or a device: readers make several passes
        raise DataError(
            f"{what} {path}: not a regular file or folder (it is read more than once); write it "
            "to a file first"
        )
    return [root]


def is_plain_text(path: str) -> bool:
    """Whether ``path`` is plain text by its name: ``.txt``, ``.txt.gz``, or a folder that is
    not a saved ``datasets`` dataset (its ``.txt``/``.gz`` files)."""
    p = Path(path)
    if p.is_dir():
        saved = ("dataset_info.json", "dataset_dict.json", "state.json")
        return not any((p / name).is_file() for name in saved)
    suffixes = [s.lower() for s in p.suffixes]
    return bool(suffixes) and (suffixes[-1] == ".txt" or suffixes[-2:] == [".txt", ".gz"])


def read_lines(path: str | Path, what: str = "data") -> Iterator[tuple[str, str, bool]]:
    """Yield ``(line, "file:line", starts_document)`` for every non-blank line, lines stripped
    of their line break; undecodable or damaged files raise DataError naming the file (and the
    line, for text that is not UTF-8; UTF-16/32 text is refused for the whole file)."""
    for file in text_files(path, what):
        new_document = True
        try:  # decoded_lines refuses UTF-16/32 text for the whole file (check_utf8)
            for number, text, problem in decoded_lines(file):
                if "\0" in text:
                    raise DataError(
                        f"{file}:{number}: holds a NUL byte; save the file as UTF-8 text"
                    )
                if problem:
                    raise DataError(
                        f"{file}:{number}: {problem}; convert it, e.g. iconv -f latin1 -t utf-8 "
                        f"{file.name}"
                    )
                if not text.strip():
                    new_document = True
                    continue
                yield text, f"{file}:{number}", new_document
                new_document = False
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{file}: can't read: {err}") from None


def read_text(
    path: str,
    column: str | int = "text",
    fmt: str = "auto",
    header: bool | None = None,
    quoting: str = "auto",
    hf_subset: str | None = None,
) -> list[TextLine]:
    """Unlabelled text: the lines of plain text files (``fmt`` text, or auto and a ``.txt``
    name or a folder), else the ``column`` of a table, one document a row. Empty lines and
    rows are skipped; no text at all is a DataError."""
    if fmt == "text" or (fmt == "auto" and is_plain_text(path)):
        lines = [TextLine(t, w, new) for t, w, new in read_lines(path, "data")]
    else:
        table = read_table(
            path, fmt, columns=[column], header=header, quoting=quoting, hf_subset=hf_subset
        )
        lines = []
        for i, value in enumerate(table.column(column)):
            if value is not None and not isinstance(value, str):
                raise DataError(
                    f"{table.where(i)}: column '{column}' holds {type(value).__name__}, not text"
                )
            if value and value.strip():
                lines.append(TextLine(value, table.where(i)))
    if not lines:
        raise DataError(f"{path}: no text (every line or row is empty)")
    return lines


def hold_out_documents(
    lines: Sequence[TextLine], fraction: float, seed: int
) -> tuple[list[TextLine], list[TextLine]]:
    """Split off about ``fraction`` of the lines as whole documents, drawn by ``seed`` (from a
    single document: its last lines, as a document of their own)."""
    starts = [i for i, line in enumerate(lines) if line.new_document or i == 0]
    spans = [range(a, b) for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)]
    want = max(1, round(fraction * len(lines)))
    if len(spans) < 2:
        cut = max(1, len(lines) - want)
        held = list(lines[cut:])
        return list(lines[:cut]), [replace(held[0], new_document=True), *held[1:]]
    order = list(range(len(spans)))
    random.Random(seed).shuffle(order)
    picked: set[int] = set()
    size = 0
    for d in order[:-1]:  # at least one document stays in training
        if size >= want:
            break
        picked.add(d)
        size += len(spans[d])
    rest = [lines[i] for d, span in enumerate(spans) if d not in picked for i in span]
    held = [lines[i] for d, span in enumerate(spans) if d in picked for i in span]
    return rest, held
