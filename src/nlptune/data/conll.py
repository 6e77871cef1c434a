"""CoNLL column files and CoNLL-U, and BIO tag schemes (IOB1, IOB2, BIOES).

CoNLL: one token a line, columns split by white space (or TAB), a blank line ends a sentence,
``-DOCSTART-`` lines are skipped. A file whose tags have no B-/I-/E-/S- prefix (POS tags, not
only ``O``) keeps its tags as they are: plain per-word labels. CoNLL-U: ten TAB-separated
columns; comment lines, multiword token ranges (``1-2``) and empty nodes (``8.1``) are skipped,
so words are the syntactic words; word ids must count 1, 2, ... in each sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial
from typing import Any

from nlptune.data.examples import Sentences, TokenExample
from nlptune.data.textfile import checked_lines
from nlptune.errors import DataError

SCHEMES = ("iob1", "iob2", "bioes")
_PREFIXES = {"iob1": "BI", "iob2": "BI", "bioes": "BIES"}
_FORMS = {"iob1": "O, B-TYPE or I-TYPE", "iob2": "O, B-TYPE or I-TYPE"}
_FORMS["bioes"] = "O, B-TYPE, I-TYPE, E-TYPE or S-TYPE"
_BIO_LIKE = re.compile(r"^[BIES]-", re.IGNORECASE)  # lower case too: reported, not plain tags
_WORD_ID = re.compile(r"^([0-9]+)(?:(-)([0-9]+)|(\.)([0-9]+))?$")


def read_conll(
    path: str,
    token_column: int = 0,
    tag_column: int = -1,
    scheme: str = "iob2",
    labelled: bool = True,
) -> list[Any]:
    """Sentences of a CoNLL column file, tags converted to IOB2 from ``scheme``. Columns are
    split by TAB when the line has one, else by white space; a blank (or white-space-only) line
    or ``-DOCSTART-`` ends a sentence. With ``scheme`` iob2 (the default), a file none of whose
    tags has a B-/I-/E-/S- prefix and that has tags besides ``O`` (POS tags) keeps its tags
    unconverted. Unlabelled (prediction): a sentence with a bad line is one BadRecord in its
    place."""
    sentences = Sentences(path, lenient=not labelled)
    words: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    start = 0
    rows = [*checked_lines(path, not labelled), (-1, "", "")]
    plain = labelled and scheme == "iob2" and _plain_tags(rows, tag_column)
    for number, line, problem in rows:
        fields = line.split("\t") if "\t" in line else line.split()
        if not line.strip() or fields[0] == "-DOCSTART-":  # WNUT-17 separates with a lone TAB
            if start:
                kind = "plain" if plain else scheme
                make = partial(_sentence, path, words, tags, lines, kind, labelled, start)
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
    start, sent_id, last = 0, "", 0  # last: the id of the sentence's last word so far
    for number, line, problem in [*checked_lines(path, not labelled), (-1, "", "")]:
        if not line.strip():
            if start:
                kept = tuple(tags) if labelled else None
                make = partial(TokenExample, tuple(words), kept, f"{path}:{start}", sent_id)
                sentences.end(start, make, sent_id)
            words, tags, start, sent_id, last = [], [], 0, "", 0
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
        start = start or number
        try:
            word_id = conllu_id(fields[0], last, f"{path}:{number}")
        except DataError as err:
            sentences.fail(str(err))
            continue
        if word_id is None:  # multiword token range or empty node
            continue
        last = word_id
        if labelled and fields[index] == "_":
            sentences.fail(
                f"{path}:{number}: word {fields[1]!r} has no {column.upper()} tag ('_')"
                + (
                    "; does the file have XPOS tags? else use data.conllu_column: upos"
                    if index == 4
                    else ""
                )
            )
            continue
        words.append(fields[1])
        tags.append(fields[index])
    return sentences.out


def conllu_id(field: str, last: int, where: str) -> int | None:
    """The id of a CoNLL-U word line, or None for a line to skip: a multiword token range
    (``3-4``, starting at the next word) or an empty node (``5.1``, after word 5). ``last`` is
    the sentence's previous word id (0 at its start); anything else is an error naming
    ``where`` (``file:line``)."""
    found = _WORD_ID.match(field)
    if found is None:
        raise DataError(
            f"{where}: {field!r} is not a CoNLL-U word id (an integer; a range like 3-4 for a "
            "multiword token; a decimal like 5.1 for an empty node)"
        )
    first, dash, end, dot, sub = found.groups()
    n = int(first)
    if dot:
        if n != last or int(sub) < 1:
            raise DataError(
                f"{where}: empty node {field} after word {last}; an empty node after word "
                f"{last} is numbered {last}.1, {last}.2, ..."
            )
        return None
    if n != last + 1:
        after = f"after word {last}" if last else "at the start of a sentence"
        raise DataError(
            f"{where}: word id {field} {after}, expected {last + 1}; ids count 1, 2, 3, ... in "
            "each sentence (is a line missing, or the blank line between two sentences?)"
        )
    if dash and int(end) <= n:
        raise DataError(f"{where}: multiword token range {field} must end after it starts")
    return None if dash else n


def _plain_tags(rows: Sequence[tuple[int, str, str]], tag_column: int) -> bool:
    """Whether a CoNLL file's tags are plain labels (POS): none has a B-/I-/E-/S- prefix and
    some tag is not ``O``. Lines that can't be read are left to the reading loop."""
    tags: set[str] = set()
    for _, line, problem in rows:
        fields = line.split("\t") if "\t" in line else line.split()
        if problem or not line.strip() or fields[0] == "-DOCSTART-":
            continue
        try:
            tags.add(fields[tag_column])
        except IndexError:
            continue
    return bool(tags - {"O"}) and not any(_BIO_LIKE.match(t) for t in tags)


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
    where = [f"{path}:{n}" for n in lines]
    converted = list(tags) if scheme == "plain" else to_iob2(tags, scheme, where)
    return TokenExample(tuple(words), tuple(converted), f"{path}:{start}")


def to_iob2(tags: Sequence[str], scheme: str, where: Sequence[str]) -> list[str]:
    """Convert ``tags`` from ``scheme`` to IOB2; a tag the scheme does not have, or a sequence
    it forbids, is an error naming its line (``where[i]``)."""
    for i, tag in enumerate(tags):
        _check_tag(tag, scheme, where[i])
    if scheme == "iob1":
        out: list[str] = []
        for tag in tags:
            prev = out[-1] if out else "O"
            if tag.startswith("I-") and (prev == "O" or prev[2:] != tag[2:]):
                tag = "B-" + tag[2:]
            out.append(tag)
        return out
    if scheme == "bioes":
        _check_bioes(tags, where)
        return _bioes_to_iob2(tags)
    for i, tag in enumerate(tags):
        if tag.startswith("I-"):
            prev = tags[i - 1] if i else "O"
            if prev == "O" or prev[2:] != tag[2:]:
                raise DataError(
                    f"{where[i]}: {tag} follows {prev}, which IOB2 forbids; if the file is IOB1 "
                    "set data.scheme: iob1"
                )
    return list(tags)


def _check_tag(tag: str, scheme: str, where: str) -> None:
    """``tag`` is ``O`` or PREFIX-TYPE with a prefix of ``scheme`` and a type."""
    prefixes = _PREFIXES[scheme]
    if tag == "O" or (len(tag) > 2 and tag[1] == "-" and tag[0] in prefixes and tag[2:].strip()):
        return
    if len(tag) > 2 and tag[1] == "-" and tag[0].upper() in prefixes and tag[0].islower():
        hint = f"; prefixes are upper case ({tag[0].upper()}-{tag[2:]})"
    elif tag[:2] in {f"{p}-" for p in prefixes}:
        hint = "; the entity type after the prefix is missing"
    elif scheme != "bioes" and tag[:2] in ("E-", "S-"):
        hint = "; if the file is BIOES set data.scheme: bioes"
    elif scheme == "iob2":
        hint = (
            "; a file whose tags have no B-/I- prefix at all (POS tags) is read as plain "
            "per-word labels"
        )
    else:
        hint = f"; tags that are not entity tags (POS) need data.scheme: iob2, not {scheme}"
    raise DataError(f"{where}: tag {tag!r} is not {_FORMS[scheme]}{hint}")


def _check_bioes(tags: Sequence[str], where: Sequence[str]) -> None:
    """An entity is S-X alone or B-X, I-X..., E-X; the line of the first tag that breaks this
    is named."""
    for i, tag in enumerate(tags):
        prev = tags[i - 1] if i else "O"
        nxt = tags[i + 1] if i + 1 < len(tags) else "O"
        kind, name = tag[0], tag[2:]
        if kind in "IE" and (prev[0] not in "BI" or prev[2:] != name):
            raise DataError(
                f"{where[i]}: {tag} follows {prev}, which BIOES forbids (an entity starts with "
                f"B- or S-); if the file is IOB1 or IOB2 set data.scheme: iob1 or iob2"
            )
        if kind in "BI" and (nxt[0] not in "IE" or nxt[2:] != name):
            raise DataError(
                f"{where[i]}: {tag} is followed by {nxt}, which BIOES forbids (an entity ends "
                f"with E-{name}, a one-word entity is S-{name}); if the file is IOB2 set "
                "data.scheme: iob2"
            )


def _bioes_to_iob2(tags: Sequence[str]) -> list[str]:
    """BIOES -> IOB2 without checks (model output: any sequence of known tags)."""
    mapping = {"S": "B", "E": "I", "B": "B", "I": "I"}
    return [t if t == "O" else f"{mapping.get(t[0], t[0])}-{t[2:]}" for t in tags]


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
    return _bioes_to_iob2(tags)
