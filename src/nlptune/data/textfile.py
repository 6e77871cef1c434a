"""Text files read line by line with each line's own decoding problem, not the file's.

Lines split as Python's text mode splits them (``\\n``, ``\\r\\n`` and a lone ``\\r``); a byte
that is not UTF-8 makes that line's ``problem`` (the reason; callers name file and line), and
the line comes
with U+FFFD in its place, so a reader can still see what kind of line it is (a blank line, a
comment) and decide whether the problem matters. A file that is UTF-16 or UTF-32 (a
byte-order mark, or NUL bytes where those encodings put them) is refused whole
(:func:`check_utf8`): read as UTF-8, each of its lines would be a garbage record.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nlptune.errors import DataError

_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def decoded_lines(path: str | Path, newline: str | None = None) -> Iterator[tuple[int, str, str]]:
    """``(number, line, problem)`` for every line of a UTF-8 file (``.gz`` too), the line
    without its line break, ``problem`` the reason a line does not decode (else empty).
    ``newline="\n"``: a line ends at ``\n`` only, so a stray ``\r`` inside a line stays in it
    (one record a line: prediction input, JSON Lines); None: ``\n``, ``\r\n`` or a lone
    ``\r`` (old Mac files) end a line, as text mode reads."""
    check_utf8(path)
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


def check_utf8(path: str | Path) -> None:
    """Refuse, for the whole file, text that is not UTF-8 but UTF-16 or UTF-32 (a byte-order
    mark, or NUL bytes in its first 64 KiB): read as UTF-8 each line would be a garbage record.
    The DataError names the encoding and the ``iconv`` command that converts the file."""
    opener: Any = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head: bytes = f.read(1 << 16)
    except (OSError, EOFError, zlib.error):
        return  # the reader itself says what it can't read
    encoding = next((name for bom, name in _BOMS if head.startswith(bom)), None)
    why = "it starts with a byte-order mark"
    if encoding is None and b"\0" in head:
        encoding = _wide_encoding(head)
        why = f"no byte-order mark, but NUL bytes where {encoding} has them"
        if encoding is None:  # a stray NUL, a binary file, or UTF-16 of a non-Latin script
            raise DataError(
                f"{path}: holds NUL bytes (the first at byte {head.index(0)}): not text, or text "
                "in an encoding other than UTF-8 (UTF-16 or UTF-32?); save it as UTF-8 text"
            )
    if encoding is not None:
        name = Path(path).name
        stem, dot, rest = name.partition(".")
        fixed = f"{stem}.utf8{dot}{rest}"
        command = f"iconv -f {encoding} -t UTF-8 {name} > {fixed}"
        if name.endswith(".gz"):
            command = f"zcat {name} | iconv -f {encoding} -t UTF-8 | gzip > {fixed}"
        raise DataError(
            f"{path}: the file is {encoding} text ({why}), not UTF-8; convert it, e.g. {command}"
        )


def _wide_encoding(head: bytes) -> str | None:
    """UTF-16/32 and the byte order that the NUL bytes of a file without a byte-order mark
    show (the high bytes of ASCII and Latin characters), else None (a stray NUL in UTF-8, a
    binary file, or UTF-16 of a script with few NUL bytes: told apart no further)."""
    head = head[: len(head) // 4 * 4]

    def share(k: int, step: int) -> float:  # the share of NUL bytes at k, k + step, ...
        part = head[k::step]
        return part.count(0) / len(part) if part else 0.0

    if len(head) < 8 or not head.strip(b"\0"):
        return None
    if share(2, 4) == share(3, 4) == 1:
        return "UTF-32LE"
    if share(0, 4) == share(1, 4) == 1:
        return "UTF-32BE"
    if share(0, 2) == 0 and share(1, 2) >= 0.5:
        return "UTF-16LE"
    if share(1, 2) == 0 and share(0, 2) >= 0.5:
        return "UTF-16BE"
    return None
