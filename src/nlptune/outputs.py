"""Prediction outputs in the formats the tools around each task read.

``jsonl`` (every task): one JSON object a record, in input order. ``squad``
(extractive_qa, text_to_text on SQuAD): one JSON object ``{question id: answer}``, what the
official evaluation script reads. ``conll`` (sequence_labelling on a CoNLL/CoNLL-U input): the
input file's lines with the predicted tag appended to every token line (what conlleval reads).
``semeval`` (word_sense on SemEval-2007 XML): the key-file format, ``lemma instance-id
sense-id`` a line. A record that failed writes nothing in ``squad``/``semeval`` (the scorers
count it unanswered) and ``O`` tags in ``conll``; the summary counts it either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from nlptune.errors import DataError

FORMATS = ("jsonl", "squad", "conll", "semeval")
TASKS_OF = {
    "squad": ("extractive_qa", "text_to_text"),
    "conll": ("sequence_labelling",),
    "semeval": ("word_sense",),
}


def check_format(fmt: str, task: str, source: str) -> None:
    """Refuse a format the task (or the input) can't give, before anything is predicted."""
    if fmt not in FORMATS:
        raise DataError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    if fmt in TASKS_OF and task not in TASKS_OF[fmt]:
        raise DataError(
            f"--format {fmt} is for {' and '.join(TASKS_OF[fmt])} runs; this run is {task} "
            "(use --format jsonl)"
        )
    suffix = Path(source).suffix.lower()
    if fmt == "conll" and suffix in (".txt", ".jsonl", ".json", ""):
        raise DataError(
            f"--format conll appends tags to the lines of a CoNLL or CoNLL-U input; {source} "
            "is not one (use --format jsonl)"
        )


class Writer:
    """Writes records to ``out`` as ``fmt`` says; ``source`` is the input (for ``conll``)."""

    def __init__(self, fmt: str, out: IO[str], source: str, conllu: bool = False) -> None:
        self.fmt, self.out = fmt, out
        self.answers: dict[str, str] = {}
        self._lines = _conll_sentences(source, conllu) if fmt == "conll" else None

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.out.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif self.fmt == "squad":
            if "error" not in row:
                self.answers[str(row.get("id", len(self.answers)))] = str(
                    row.get("answer", row.get("generated_text", ""))
                )
        elif self.fmt == "semeval":
            if "error" not in row and row.get("id"):
                label = str(row["label"])
                lemma = str(row.get("lemma") or label.partition(":")[0])
                sense = label.removeprefix(f"{lemma}:")  # labels are lemma:senseid
                self.out.write(f"{lemma} {row['id']} {sense}\n")
        else:
            assert self._lines is not None
            block, sep = next(self._lines, ([], "\t"))
            tags = row.get("tags") or []
            words = iter(tags)
            for line, is_token in block:
                self.out.write(f"{line}{sep}{next(words, 'O')}\n" if is_token else f"{line}\n")

    def close(self) -> None:
        if self.fmt == "squad":
            self.out.write(json.dumps(self.answers, ensure_ascii=False) + "\n")
        elif self._lines is not None:  # lines after the last sentence (a trailing comment)
            for block, _ in self._lines:
                for line, _ in block:
                    self.out.write(line + "\n")


def _conll_sentences(source: str, conllu: bool) -> Iterator[tuple[list[tuple[str, bool]], str]]:
    """The input's lines grouped as the readers group sentences: each sentence's token lines
    (``True`` for a word) with the lines before it (blank lines, ``-DOCSTART-``, and CoNLL-U
    comments: ``False``), and the separator its columns use."""
    pending: list[tuple[str, bool]] = []
    tokens = 0
    sep = "\t"
    with open(source, encoding="utf-8-sig") as f:
        for raw in f:
            line = raw.rstrip("\r\n")
            fields = line.split("\t") if "\t" in line else line.split()
            other = not line.strip() or fields[0] == "-DOCSTART-"
            other = other or (conllu and line.startswith("#"))
            if other and tokens:
                yield pending, sep
                pending, tokens = [], 0
            if other:
                pending.append((line, False))
                continue
            sep = "\t" if "\t" in line else " "
            tokens += 1
            # CoNLL-U multiword ranges (1-2) and empty nodes (8.1) are not words
            pending.append((line, not (conllu and ("-" in fields[0] or "." in fields[0]))))
    if pending:
        yield pending, sep
