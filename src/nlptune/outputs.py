"""Prediction outputs in the formats the tools around each task read.

``jsonl`` (every task): one JSON object a record, in input order. ``json`` (every task): one
JSON object keyed by each record's id (``record-N`` without one), the value its prediction
without the id; for QA tasks the answer string, which is ``squad``. ``squad``
(extractive_qa, text_to_text on SQuAD): one JSON object ``{question id: answer}``, what the
official evaluation script reads. ``conll`` (sequence_labelling on a CoNLL/CoNLL-U input): the
input file's lines with the predicted tag appended to every token line (what conlleval reads).
``semeval`` (word_sense on SemEval-2007 XML): the key-file format, ``lemma instance-id
sense-id`` a line. A record that failed writes nothing in ``squad``/``semeval`` (the scorers
count it unanswered) and ``O`` tags in ``conll``; the summary counts it either way.

Where they go (:func:`output_target`): stdout, a regular file written through a temporary file
renamed over it, or a FIFO or character device written straight through (never replaced); a
symlink is followed to its target and stays.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from nlptune.errors import DataError, NlptuneError

logger = logging.getLogger("nlptune")

FORMATS = ("jsonl", "json", "squad", "conll", "semeval")
QA_TASKS = ("extractive_qa", "text_to_text")
TASKS_OF = {
    "squad": ("extractive_qa", "text_to_text"),
    "conll": ("sequence_labelling",),
    "semeval": ("word_sense",),
}


def check_format(fmt: str, task: str, source: str, data_format: str = "auto") -> str:
    """Refuse a format the task (or the input) can't give, before anything is predicted
    (``data_format``: the run's ``data.format``, which decides how a ``.txt`` input reads)."""
    if fmt not in FORMATS:
        raise DataError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    if fmt in TASKS_OF and task not in TASKS_OF[fmt]:
        raise DataError(
            f"--format {fmt} is for {' and '.join(TASKS_OF[fmt])} runs; this run is {task} "
            "(use --format jsonl)"
        )
    suffix = Path(source).suffix.lower()
    lines = suffix in (".txt", "") and data_format not in ("conll", "conllu")
    if fmt == "conll" and (lines or suffix in (".jsonl", ".json", ".ndjson")):
        raise DataError(
            f"--format conll appends tags to the lines of a CoNLL or CoNLL-U input; {source} "
            "is not one (use --format jsonl)"
        )
    if fmt == "semeval" and not (suffix == ".xml" or Path(source).is_dir()):
        raise DataError(
            f"--format semeval writes instance ids, which SemEval XML input has; {source} is "
            "not SemEval XML (a .xml file or a folder of them; use --format jsonl)"
        )
    return "squad" if fmt == "json" and task in QA_TASKS else fmt


@dataclass(frozen=True)
class Target:
    """Where ``--output`` writes: ``path`` None is stdout; ``through``: straight into ``path``
    (a FIFO or character device), else through a temporary file renamed over it."""

    path: Path | None
    through: bool = False


def output_target(output: str | None, source: str) -> Target:
    """The ``--output`` target, checked before any work: none or ``-`` is stdout; a symlink is
    followed (its target is written, the link stays); a FIFO or character device is written
    straight through. Refused (NlptuneError): a folder, a block device or socket, a read-only
    file, the input file, and anything a run owns (``config.yaml``, ``labels.json``,
    ``model/``... of any run folder, so predictions never overwrite a run). The folder of a new
    file is made."""
    if output is None or output == "-":
        return Target(None)
    from nlptune.artefact import owning_run

    given = Path(output)
    try:
        target = given.resolve()  # through symlinks: the file that would change
    except (OSError, RuntimeError) as err:  # a symlink loop
        raise NlptuneError(f"--output {output}: can't follow it ({err})") from None
    shown = output if target == given.absolute() else f"{output} (-> {target})"
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as err:
        raise NlptuneError(f"--output {shown}: {err.strerror or err}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise NlptuneError(f"--output {shown} is a folder; name a file in it")
    if mode is not None and (stat.S_ISBLK(mode) or stat.S_ISSOCK(mode)):
        kind = "a block device (a disk)" if stat.S_ISBLK(mode) else "a socket"
        raise NlptuneError(f"--output {shown} is {kind}; name a file")
    if mode is not None and Path(source).exists() and os.path.samefile(target, source):
        raise NlptuneError(f"--output {shown} is the input file; write to another file")
    run = owning_run(target)
    if run is not None:
        raise NlptuneError(
            f"--output {shown} is part of the nlptune run {run}; writing it would damage the "
            "run: name a file outside the run's own entries"
        )
    if mode is not None and not os.access(target, os.W_OK):  # a rename would replace it
        raise NlptuneError(f"--output {shown} is read-only; name another file")
    through = mode is not None and not stat.S_ISREG(mode)  # a FIFO or character device
    if not through:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise NlptuneError(f"--output {shown}: can't make its folder: {err}") from None
    return Target(target, through)


def write_output(target: Target, write: Callable[[IO[str]], None], stdout: IO[str]) -> None:
    """Call ``write`` with the open ``target`` (``stdout`` for none): a regular file through a
    temporary file renamed at the end (a stopped run leaves no half-written output), a FIFO or
    device straight through."""
    from nlptune.data.features import atomic_write

    if target.path is None:
        write(stdout)
    elif target.through:
        with open(target.path, "w", encoding="utf-8") as out:
            write(out)
    else:
        atomic_write(target.path, write, mode="w")


class Writer:
    """Writes records to ``out`` as ``fmt`` says; ``source`` is the input (for ``conll``)."""

    def __init__(self, fmt: str, out: IO[str], source: str, conllu: bool = False) -> None:
        self.fmt, self.out, self.source = fmt, out, source
        self.answers: dict[str, Any] = {}
        self.rows = 0
        self.repeated = 0  # records whose id an earlier record had
        self._lines = _conll_sentences(source, conllu) if fmt == "conll" else None

    def write(self, row: dict[str, Any]) -> None:
        self.rows += 1
        if self.fmt == "jsonl":
            self.out.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif self.fmt == "json":  # keyed by id, else "record-N"
            self._keyed(row, {k: v for k, v in row.items() if k != "id"})
        elif self.fmt == "squad":  # keyed by question id, else "record-N"
            if "error" not in row:
                self._keyed(row, str(row.get("answer", row.get("generated_text", ""))))
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
            words = sum(is_word for _, is_word in block)
            if "error" not in row and words != len(tags):
                raise DataError(
                    f"{self.source}: sentence {self.rows} has {words} words here but its "
                    f"prediction {len(tags)} tags; the file can't be written as CoNLL"
                )
            given = iter(tags)
            for line, is_word in block:
                self.out.write(f"{line}{sep}{next(given, 'O')}\n" if is_word else f"{line}\n")

    def _keyed(self, row: dict[str, Any], value: Any) -> None:
        """``value`` under the record's id; a repeated id gets ``#2``, ``#3``... (never one
        record silently replacing another)."""
        key = base = str(row.get("id") or f"record-{self.rows}")
        n = 1
        while key in self.answers:
            n += 1
            key = f"{base}#{n}"
        if n > 1:
            self.repeated += 1
        self.answers[key] = value

    def close(self) -> None:
        if self.repeated:
            logger.warning(
                "warning: %d records repeat an earlier id; written under id#2, id#3, ...",
                self.repeated,
            )
        if self.fmt in ("squad", "json"):
            self.out.write(json.dumps(self.answers, ensure_ascii=False) + "\n")
        elif self._lines is not None:  # lines after the last sentence (a trailing comment)
            for block, _ in self._lines:
                for line, _ in block:
                    self.out.write(line + "\n")


def _conll_sentences(source: str, conllu: bool) -> Iterator[tuple[list[tuple[str, bool]], str]]:
    """The input's lines grouped as the readers group sentences (``read_conll``: a blank line
    or ``-DOCSTART-`` ends one, every other line is a word; ``read_conllu``: a blank line ends
    one, comments, multiword ranges and empty nodes are not words): each sentence's lines
    (``True`` for a word) with the lines before it, and the separator its columns use."""
    pending: list[tuple[str, bool]] = []
    words = 0
    sep = "\t"
    with open(source, encoding="utf-8-sig", errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\r\n")
            fields = line.split("\t") if "\t" in line else line.split()
            ends = not line.strip() or (not conllu and fields[0] == "-DOCSTART-")
            if ends:
                if words:
                    yield pending, sep
                    pending, words = [], 0
                pending.append((line, False))
                continue
            word = not conllu or not (line.startswith("#") or "-" in fields[0] or "." in fields[0])
            if word:
                sep = "\t" if "\t" in line else " "
                words += 1
            pending.append((line, word))
    if pending:
        yield pending, sep
