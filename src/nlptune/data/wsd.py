"""Readers for word-sense data: STREUSLE CoNLL-U-Lex (SNACS supersenses of prepositions and
possessives) and the SemEval-2007 task 6 lexical-sample XML (preposition senses).

Both give :class:`SenseExample`: the sentence's words, the target's word indices, its lemma and
its label.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from nlptune.data.conll import conllu_id
from nlptune.data.examples import BadRecord, Sentences, guarded
from nlptune.data.textfile import checked_lines
from nlptune.errors import DataError

logger = logging.getLogger("nlptune")

P_LEXCATS = {"P", "PP", "INF.P", "POSS", "PRON.POSS"}


@dataclass(frozen=True)
class SenseExample:
    """A target expression (one or more words, maybe discontinuous) in a sentence."""

    words: tuple[str, ...]
    target: tuple[int, ...]
    lemma: str
    label: str | None = None
    where: str = ""
    id: str = ""  # SemEval: the instance id; STREUSLE: the sentence's sent_id
    token_ids: tuple[str, ...] = ()  # STREUSLE: the target's token ids (CoNLL-U column 1)


def read_streusle(path: str, lenient: bool = False) -> list[Any]:
    """Targets are strong lexical expressions with a ``p.`` supersense; the label is the scene
    role, or ``role|function`` where the function differs (``p.Circumstance|p.Locus``).
    ``lenient`` (prediction): a sentence that can't be read is one :class:`BadRecord`."""
    sentences = Sentences(path, lenient)
    rows: list[tuple[int, list[str]]] = []
    sent_id, start = "", 0
    for number, line, bad in [*checked_lines(path, lenient), (-1, "", "")]:
        if line.strip():
            if line.startswith("# sent_id"):
                sent_id = line.partition("=")[2].strip()
            elif not line.startswith("#"):  # a bad comment does not matter
                start = start or number
                if bad:
                    sentences.fail(bad)
                else:
                    rows.append((number, line.split("\t")))
            continue
        if start:
            sentences.end(start, partial(_streusle_sentence, path, rows, sent_id), sent_id)
        rows, sent_id, start = [], "", 0
    return sentences.out


def _streusle_sentence(
    path: str, rows: list[tuple[int, list[str]]], sent_id: str = ""
) -> list[SenseExample]:
    words: list[str] = []
    position: dict[str, int] = {}
    ids: list[str] = []  # each word's token id
    groups: dict[str, list[int]] = {}
    starts: list[tuple[int, list[str], int]] = []
    last = 0  # the previous word's id: ids count 1, 2, ... as in CoNLL-U
    for number, cols in rows:
        if len(cols) != 19:
            raise DataError(
                f"{path}:{number}: CoNLL-U-Lex lines have 19 TAB-separated fields, "
                f"found {len(cols)}"
            )
        word_id = conllu_id(cols[0], last, f"{path}:{number}")
        if word_id is None:  # multiword token range or empty node
            continue
        last = word_id
        position[cols[0]] = len(words)
        words.append(cols[1])
        ids.append(cols[0])
        if cols[10] != "_":
            groups.setdefault(cols[10].split(":")[0], []).append(len(words) - 1)
        if cols[13].startswith("p.") and cols[11] in P_LEXCATS:
            starts.append((number, cols, len(words) - 1))
    out = []
    for number, cols, index in starts:
        group = cols[10].split(":")[0] if cols[10] != "_" else None
        target = tuple(groups[group]) if group else (index,)
        role, function = cols[13], cols[14]
        label = role if function in ("_", role) else f"{role}|{function}"
        out.append(
            SenseExample(
                tuple(words),
                target,
                cols[12].lower(),
                label,
                f"{path}:{number}",
                sent_id,
                tuple(ids[i] for i in target),
            )
        )
    return out


def read_semeval(path: str, keep_empty: bool = False) -> list[Any]:
    """Instances of one lexical-sample XML file, or of every ``*.xml`` file in a folder. Sense
    ids are numbered per lemma, so labels are ``lemma:senseid`` (``about:3(2)-1``). An instance
    with an empty ``<head>`` is skipped with a warning; for prediction (``keep_empty``) it is
    kept, and an instance that can't be read is a :class:`BadRecord`, both reported in place."""
    p = Path(path)
    if p.is_dir():
        files = sorted(p.glob("*.xml"))
        if not files:
            raise DataError(f"{path}: no .xml files")
        return [e for f in files for e in read_semeval(str(f), keep_empty)]
    if not p.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as err:
        raise DataError(f"{path}:{err.position[0]}: not valid XML: {err}") from None
    lexelts = [root] if root.tag == "lexelt" else root.iter("lexelt")
    out = []
    for lexelt in lexelts:
        lemma = lexelt.get("item", "").lower()
        for inst in lexelt.iter("instance"):
            where = f"{path} instance {inst.get('id')}"
            make = partial(_semeval_instance, path, inst, lemma)
            example = guarded(keep_empty, where, make, inst.get("id") or "")
            if isinstance(example, BadRecord) or example.target or keep_empty:
                out.append(example)
            else:  # the released training data has a few empty <head></head> elements
                logger.warning("%s: empty <head>, instance skipped", example.where)
    return out


def _semeval_instance(path: str, inst: ET.Element, lemma: str) -> SenseExample:
    where = f"{path} instance {inst.get('id')}"
    context = inst.find("context")
    if context is None:
        raise DataError(f"{where}: no <context>")
    head_el = context.find("head")
    if head_el is None:
        raise DataError(f"{where}: no <head> in the context")
    before = (context.text or "").split()
    for el in context:  # text of any element before the head belongs to the left context
        if el is head_el:
            break
        before += ("".join(el.itertext()) + (el.tail or "")).split()
    head = "".join(head_el.itertext()).split()
    after = (head_el.tail or "").split()
    seen = False
    for el in context:
        if seen:
            after += ("".join(el.itertext()) + (el.tail or "")).split()
        seen = seen or el is head_el
    answer = inst.find("answer")
    sense = answer.get("senseid") if answer is not None else None
    label = f"{lemma}:{sense}" if sense is not None else None  # sense ids are per lemma
    target = tuple(range(len(before), len(before) + len(head)))
    words = tuple(before + head + after)
    return SenseExample(words, target, lemma, label, where, inst.get("id") or "")
