"""CoNLL column files and CoNLL-U, and BIO tag schemes (IOB1, IOB2, BIOES).

CoNLL: one token a line, columns split by white space (or TAB), a blank line ends a sentence,
``-DOCSTART-`` lines are skipped. CoNLL-U: ten TAB-separated columns; comment lines, multiword
token ranges (``1-2``) and empty nodes (``8.1``) are skipped, so words are the syntactic words.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from nlptune.data.examples import Sentences, TokenExample
from nlptune.data.textfile import checked_lines
from nlptune.errors import DataError

SCHEMES = ("iob1", "iob2", "bioes")


def read_conll(
    path: str,
    token_column: int = 0,
    tag_column: int = -1,
    scheme: str = "iob2",
    labelled: bool = True,
) -> list[Any]:
    """Sentences of a CoNLL column file, tags converted to IOB2 from ``scheme``. Columns are
    split by TAB when the line has one, else by white space; a blank (or white-space-only) line
    or ``-DOCSTART-`` ends a sentence. Unlabelled (prediction): a sentence with a bad line is
    one BadRecord in its place."""
    sentences = Sentences(path, lenient=not labelled)
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    start = 0
    for number, line, problem in [*checked_lines(path, not labelled), (-1, "", "")]:
        fields = line.split("\t") if "\t" in line else line.split()
        if not line.strip() or fields[0] == "-DOCSTART-":  # WNUT-17 separates with a lone TAB
            if start:
                make = partial(_sentence, path, words, tags, lines, scheme, labelled, start)
                sentences.end(start, make)
            words, tags, lines, start = [], [], [], 0
            continue
        start = start or number  # the sentence's first line, good or bad
        if problem:
            sentences.fail(problem)
            continue
        try:
            word = fields[token_column]
            tag = fields[tag_column] if labelled else None
        except IndexError:
            sentences.fail(
                f"{path}:{number}: {len(fields)} columns, but data.token_column={token_column} "
                f"and data.tag_column={tag_column}"
            )
            continue
        words.append(word)
        lines.append(number)
        if tag is not None:
            tags.append(tag)
    return sentences.out


def read_conllu(path: str, column: str = "upos", labelled: bool = True) -> list[Any]:
    """Sentences of a CoNLL-U file with the UPOS (column 4) or XPOS (column 5) tags.
    Unlabelled (prediction): a sentence with a bad word line is one BadRecord in its place (a
    bad comment does not matter)."""
    index = {"upos": 3, "xpos": 4}[column]
    sentences = Sentences(path, lenient=not labelled)
    words: list[str] = []
    tags: list[str] = []
    start, sent_id = 0, ""
    for number, line, problem in [*checked_lines(path, not labelled), (-1, "", "")]:
        if not line.strip():
            if start:
                kept = tuple(tags) if labelled else None
                make = partial(TokenExample, tuple(words), kept, f"{path}:{start}", sent_id)
                sentences.end(start, make, sent_id)
            words, tags, start, sent_id = [], [], 0, ""
            continue
        if line.startswith("#"):
            if line.startswith("# sent_id") and not problem:
                sent_id = line.partition("=")[2].strip()
            continue
        fields = line.split("\t")
        if problem or len(fields) != 10:
            start = start or number
            sentences.fail(
                problem
                or f"{path}:{number}: CoNLL-U lines have 10 TAB-separated fields, found "
                f"{len(fields)}"
            )
            continue
        if "-" in fields[0] or "." in fields[0]:  # multiword token range or empty node
            continue
        start = start or number
        words.append(fields[1])
        tags.append(fields[index])
    return sentences.out


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
