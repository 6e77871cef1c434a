"""Parallel text: two files with one sentence a line (``train.en`` + ``train.de``, ``.gz``
allowed), the layout of Multi30k, WMT and fairseq/OpenNMT corpora.

``data.train: corpus/train`` with ``data.source_lang: en`` and ``data.target_lang: de`` reads
``corpus/train.en[.gz]`` and ``corpus/train.de[.gz]``. Line counts must match, and no line may be
empty: either is an error naming the files, the counts or the line.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nlptune.data.examples import BadRecord
from nlptune.errors import DataError


def side_path(prefix: str, lang: str) -> Path:
    """``prefix.lang`` or ``prefix.lang.gz``, whichever exists (DataError naming both if none)."""
    plain = Path(f"{prefix}.{lang}")
    for candidate in (plain, Path(f"{plain}.gz")):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"parallel data: neither {plain} nor {plain}.gz exists (data.train/dev/test is the file "
        "prefix, data.source_lang/target_lang the language suffixes)"
    )


def _lines(path: Path) -> Iterator[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="\n") as f:
            for line in f:
                yield line.rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: can't read the file: {err}") from None


def read_parallel(prefix: str, source_lang: str, target_lang: str | None) -> list[Any]:
    """``(source, target, where)`` per line pair (target None without ``target_lang``; then an
    empty source line is a :class:`BadRecord` in its place)."""
    src = side_path(prefix, source_lang)
    sources = list(_lines(src))
    targets: list[str | None]
    if target_lang is None:
        targets = [None] * len(sources)
    else:
        tgt = side_path(prefix, target_lang)
        targets = list(_lines(tgt))
        if len(sources) != len(targets):
            raise DataError(
                f"parallel data: {src} has {len(sources)} lines but {tgt} has {len(targets)}; "
                "the files must be line-aligned"
            )
    out: list[Any] = []
    for number, (s, t) in enumerate(zip(sources, targets, strict=True), 1):
        if not s.strip() and target_lang is None:  # prediction: reported in its place
            out.append(BadRecord(f"{src}:{number}", f"{src}:{number}: empty line"))
            continue
        if not s.strip():
            raise DataError(f"{src}:{number}: empty line; remove it from both files")
        if t is not None and not t.strip():
            raise DataError(f"{tgt}:{number}: empty line; remove it from both files")
        out.append((s.strip(), t.strip() if t is not None else None, f"{src}:{number}"))
    if not out:
        raise DataError(f"{src}: no lines")
    return out
