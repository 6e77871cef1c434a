"""Plain text: a file (``.txt``, ``.gz``) or a folder of them, one sentence or document a line.

A blank line ends a document, and so does the end of each file. Used by masked-LM pre-training
and by ``nlptune vectors adapt``.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nlptune.errors import DataError

SUFFIXES = (".txt", ".gz")


def text_files(path: str | Path, what: str = "data") -> list[Path]:
    """The files ``path`` names: itself, or every ``.txt``/``.gz`` file under a folder (sorted)."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"{what} {path}: no such file or folder")
    if root.is_dir():
        files = sorted(f for f in root.rglob("*") if f.is_file() and f.name.endswith(SUFFIXES))
        if not files:
            raise DataError(f"{what} {path}: a folder with no .txt or .gz files")
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
    line, for text that is not UTF-8)."""
    for file in text_files(path, what):
        opener: Any = gzip.open if file.suffix == ".gz" else open
        new_document = True
        try:
            with opener(file, "rb") as f:
                for number, raw in enumerate(f, 1):
                    try:
                        line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                    except UnicodeDecodeError as err:
                        raise DataError(
                            f"{file}:{number}: not UTF-8 text ({err.reason}); convert it, e.g. "
                            f"iconv -f latin1 -t utf-8 {file.name}"
                        ) from None
                    text = line.rstrip("\r\n")
                    if not text.strip():
                        new_document = True
                        continue
                    yield text, f"{file}:{number}", new_document
                    new_document = False
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{file}: can't read: {err}") from None
