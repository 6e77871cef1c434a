"""Text files read line by line with each line's own decoding problem, not the file's.

Lines split as Python's text mode splits them (``\\n``, ``\\r\\n`` and a lone ``\\r``); a byte
that is not UTF-8 makes that line's ``problem`` (the reason; callers name file and line), and
the line comes
with U+FFFD in its place, so a reader can still see what kind of line it is (a blank line, a
comment) and decide whether the problem matters.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nlptune.errors import DataError


def decoded_lines(path: str | Path, newline: str | None = None) -> Iterator[tuple[int, str, str]]:
    """``(number, line, problem)`` for every line of a UTF-8 file (``.gz`` too), the line
    without its line break, ``problem`` the reason a line does not decode (else empty).
    ``newline="\n"``: a line ends at ``\n`` only, so a stray ``\r`` inside a line stays in it
    (one record a line: prediction input, JSON Lines); None: ``\n``, ``\r\n`` or a lone
    ``\r`` (old Mac files) end a line, as text mode reads."""
    opener: Any = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="surrogateescape", newline=newline) as f:
        for number, raw in enumerate(f, 1):
            line = raw.rstrip("\r\n")
            try:
                line.encode("utf-8")  # fails only on the stand-ins for undecodable bytes
            except UnicodeEncodeError as err:
                byte = ord(line[err.start]) - 0xDC00
                problem = f"not UTF-8 text (byte 0x{byte:02x})"
                line = line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                yield number, line, problem
                continue
            yield number, line, ""


def checked_lines(path: str, lenient: bool = False) -> Iterator[tuple[int, str, str]]:
    """:func:`decoded_lines` of a file that must exist, ``problem`` naming file and line: a line
    that is not UTF-8 raises DataError, or (``lenient``, prediction input) comes with its
    problem and U+FFFD in place of the bad bytes, so its kind can still be told."""
    if not Path(path).is_file():
        raise DataError(f"data file not found: {path}")
    for number, line, reason in decoded_lines(path):
        problem = f"{path}:{number}: {reason}" if reason else ""
        if problem and not lenient:
            raise DataError(problem)
        yield number, line, problem
