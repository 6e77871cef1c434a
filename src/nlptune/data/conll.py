"""CoNLL column files and CoNLL-U, and BIO tag schemes (IOB1, IOB2, BIOES).

CoNLL: one token a line, columns split by white space (or TAB), a blank line ends a sentence,
``-DOCSTART-`` lines are skipped. CoNLL-U: ten TAB-separated columns; comment lines, multiword
token ranges (``1-2``) and empty nodes (``8.1``) are skipped, so words are the syntactic words.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from nlptune.data.examples import TokenExample
from nlptune.errors import DataError

SCHEMES = ("iob1", "iob2", "bioes")


def _lines(path: str) -> Iterator[tuple[int, str]]:
    if not Path(path).is_file():
        raise DataError(f"data file not found: {path}")
    try:
        with open(path, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, 1):
                yield number, line.rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def read_conll(
    path: str,
    token_column: int = 0,
    tag_column: int = -1,
    scheme: str = "iob2",
    labelled: bool = True,
) -> list[TokenExample]:
    """Sentences of a CoNLL column file, tags converted to IOB2 from ``scheme``. Columns are
    split by TAB when the line has one, else by white space; a blank (or white-space-only) line
    ends a sentence."""
    out: list[TokenExample] = []
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    start = 0
    for number, line in [*_lines(path), (-1, "")]:
        fields = line.split("\t") if "\t" in line else line.split()
        if not line.strip() or fields[0] == "-DOCSTART-":  # WNUT-17 separates with a lone TAB
            if words:
                out.append(_sentence(path, words, tags, lines, scheme, labelled, start))
            words, tags, lines = [], [], []
            continue
        try:
            word = fields[token_column]
            tag = fields[tag_column] if labelled else None
        except IndexError:
            raise DataError(
                f"{path}:{number}: {len(fields)} columns, but data.token_column={token_column} "
                f"and data.tag_column={tag_column}"
            ) from None
        if not words:
            start = number
        words.append(word)
        lines.append(number)
        if tag is not None:
            tags.append(tag)
    return out


def read_conllu(path: str, column: str = "upos", labelled: bool = True) -> list[TokenExample]:
    """Sentences of a CoNLL-U file with the UPOS (column 4) or XPOS (column 5) tags."""
    index = {"upos": 3, "xpos": 4}[column]
    out: list[TokenExample] = []
    words: list[str] = []
    tags: list[str] = []
    start, sent_id = 0, ""
    for number, line in [*_lines(path), (-1, "")]:
        if not line.strip():
            if words:
                kept = tuple(tags) if labelled else None
                out.append(TokenExample(tuple(words), kept, f"{path}:{start}", sent_id))
            words, tags, sent_id = [], [], ""
            continue
        if line.startswith("#"):
            if line.startswith("# sent_id"):
                sent_id = line.partition("=")[2].strip()
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise DataError(
                f"{path}:{number}: CoNLL-U lines have 10 TAB-separated fields, found {len(fields)}"
            )
        if "-" in fields[0] or "." in fields[0]:  # multiword token range or empty node
            continue
        if not words:
            start = number
        words.append(fields[1])
        tags.append(fields[index])
    return out


def _sentence(
    path: str,
    words: list[str],
    tags: list[str],
    lines: list[int],
    scheme: str,
    labelled: bool,
    start: int,
) -> TokenExample:
    if not labelled:
        return TokenExample(tuple(words), None, f"{path}:{start}")
    converted = to_iob2(tags, scheme, [f"{path}:{n}" for n in lines])
    return TokenExample(tuple(words), tuple(converted), f"{path}:{start}")


def to_iob2(tags: Sequence[str], scheme: str, where: Sequence[str]) -> list[str]:
    """Convert ``tags`` from ``scheme`` to IOB2; an invalid IOB2 sequence names its line."""
    if scheme == "iob1":
        out: list[str] = []
        for tag in tags:
            prev = out[-1] if out else "O"
            if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
                tag = "B-" + tag[2:]
            out.append(tag)
        return out
    if scheme == "bioes":
        mapping = {"S": "B", "E": "I", "B": "B", "I": "I"}
        return [t if t == "O" else f"{mapping.get(t[0], t[0])}-{t[2:]}" for t in tags]
    for i, tag in enumerate(tags):
        if tag != "O" and (len(tag) < 3 or tag[1] != "-" or tag[0] not in "BI"):
            raise DataError(f"{where[i]}: tag {tag!r} is not O, B-TYPE or I-TYPE")
        if tag.startswith("I-"):
            prev = tags[i - 1] if i else "O"
            if prev == "O" or prev[2:] != tag[2:]:
                raise DataError(
                    f"{where[i]}: {tag} follows {prev}, which IOB2 forbids; if the file is IOB1 "
                    "set data.scheme: iob1"
                )
    return list(tags)


def to_bioes(tags: Sequence[str]) -> list[str]:
    """IOB2 -> BIOES."""
    out = []
    for i, tag in enumerate(tags):
        nxt = tags[i + 1] if i + 1 < len(tags) else "O"
        if tag == "O":
            out.append(tag)
            continue
        ends = nxt != "I-" + tag[2:]
        if tag.startswith("B-"):
            out.append(("S-" if ends else "B-") + tag[2:])
        else:
            out.append(("E-" if ends else "I-") + tag[2:])
    return out


def from_bioes(tags: Sequence[str]) -> list[str]:
    """BIOES -> IOB2 (also repairs sequences a softmax head may produce)."""
    return to_iob2(tags, "bioes", [""] * len(tags))
