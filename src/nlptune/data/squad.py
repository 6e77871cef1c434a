"""SQuAD readers: the published nested JSON (v1.1 and v2.0) and flat rows (JSON Lines, datasets).

Flat rows have ``question``, ``context`` and ``answers`` (``{"text": [...], "answer_start":
[...]}`` as in Hugging Face ``squad``, one pair ``{"text": "...", "answer_start": 7}``, or a list
of ``{"text", "answer_start"}``), plus ``id``. An unanswerable (v2.0) question has no answers
(an empty list), and ``is_impossible``, where given, is a JSON boolean. An answer whose text is
not found in the context at ``answer_start`` is an error naming the file and question id, unless
``nearest`` allows using the closest occurrence of the text (a warning counts such answers).
A text field that is not a string, an empty answer text, or an ``answer_start`` that is not a
character offset inside the context is an error naming the record too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from nlptune.data.examples import guarded
from nlptune.data.readers import ERROR, read_table
from nlptune.errors import DataError

logger = logging.getLogger("nlptune")


@dataclass(frozen=True)
class QAExample:
    """One question about one context. ``answers`` holds ``(text, start char)``; empty for an
    unanswerable (v2.0) question or unlabelled input."""

    id: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...] = ()
    is_impossible: bool = False
    where: str = ""


def read_squad(
    path: str, fmt: str = "auto", *, nearest: bool = False, labelled: bool = True
) -> list[Any]:
    """Read nested SQuAD JSON or flat rows into :class:`QAExample`s. Unlabelled (prediction):
    answers are ignored and a question that can't be read is a :class:`BadRecord` in its place."""
    p = Path(path)
    # where an answer was moved to the nearest occurrence of its text; None: not allowed
    moved: list[str] | None = [] if nearest else None
    out: list[Any] | None = None
    if p.is_file() and p.suffix.lower() == ".json":
        try:
            doc = json.loads(p.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: not valid JSON: {err.msg}") from None
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
        except (ValueError, RecursionError) as err:  # a huge number, deep nesting
            raise DataError(f"{path}: not valid JSON ({type(err).__name__})") from None
        if isinstance(doc, dict) and "data" in doc:
            out = _nested(doc["data"], path, moved, labelled)
    if out is None:
        flat = "jsonl" if p.is_file() else "auto"  # rows of a SQuAD-like table
        table = read_table(path, flat if fmt in ("auto", "squad") else fmt, lenient=not labelled)
        out = [_flat(row, table.where(i), moved, labelled) for i, row in enumerate(table.rows)]
    if moved:
        logger.warning(
            "%s: %d answers are not at their answer_start and were moved to the nearest "
            "occurrence of their text (task.nearest_answer; first: %s)",
            path,
            len(moved),
            moved[0],
        )
    return out


def _nested(data: Any, path: str, moved: list[str] | None, labelled: bool) -> list[Any]:
    out: list[Any] = []
    if not isinstance(data, list):
        raise DataError(f"{path}: 'data' must be a list of articles, got {type(data).__name__}")
    for n, article in enumerate(data, 1):
        paragraphs = article.get("paragraphs", []) if isinstance(article, dict) else None
        if not isinstance(paragraphs, list) or not all(isinstance(x, dict) for x in paragraphs):
            raise DataError(f"{path}: article {n} needs a list of paragraph objects")
        for paragraph in paragraphs:
            context, qas = paragraph.get("context"), paragraph.get("qas", [])
            if not isinstance(qas, list):
                raise DataError(f"{path}: article {n}: 'qas' must be a list of questions")
            for qa in qas:
                # a question without an id is numbered in file order: q1, q2, ...
                raw = qa.get("id") if isinstance(qa, dict) else None
                qid = _id(raw, f"q{len(out) + 1}")
                where = f"{path} question {qid}"
                make = partial(_question, qa, qid, context, where, moved, labelled)
                out.append(guarded(not labelled, where, make, qid))
    return out


def _question(
    qa: Any, qid: str, context: Any, where: str, moved: list[str] | None, labelled: bool
) -> QAExample:
    if not isinstance(qa, dict):
        raise DataError(f"{where}: a question must be a JSON object, got {type(qa).__name__}")
    _check_id(qa.get("id"), where)
    answers = qa.get("answers", []) if labelled else []
    if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
        raise DataError(f"{where}: 'answers' must be a list of {{text, answer_start}} objects")
    pairs = [(a.get("text"), a.get("answer_start")) for a in answers]
    impossible = _impossible(qa.get("is_impossible"), False, where) if labelled else False
    return _example(qid, qa.get("question"), context, pairs, impossible, where, moved)


def _flat(row: dict[str, Any], where: str, moved: list[str] | None, labelled: bool) -> Any:
    qid = _id(row.get("id"), where)
    place = where if qid == where else f"{where} (question {qid})"

    def make() -> QAExample:
        if ERROR in row:  # a line a lenient read could not parse
            raise DataError(str(row[ERROR]))
        _check_id(row.get("id"), place)
        raw = row.get("answers") if labelled else None
        pairs = [] if raw is None else _flat_answers(raw, place)
        # no is_impossible: a row whose answers are given but empty is unanswerable
        impossible = (
            _impossible(row.get("is_impossible"), not pairs and raw is not None, place)
            if labelled
            else False
        )
        question, context = row.get("question"), row.get("context")
        return _example(qid, question, context, pairs, impossible, place, moved)

    return guarded(not labelled, place, make, qid if "id" in row else "")


def _flat_answers(answers: Any, where: str) -> list[tuple[Any, Any]]:
    """A flat row's answers as ``(text, answer_start)`` pairs: columns of lists (``{"text":
    [...], "answer_start": [...]}``, one entry per answer), one pair of single values, or a list
    of ``{text, answer_start}`` objects."""
    if isinstance(answers, dict):
        texts, starts = answers.get("text", []), answers.get("answer_start", [])
        if isinstance(texts, list) and isinstance(starts, list):
            if len(texts) != len(starts):
                raise DataError(
                    f"{where}: answers has {len(texts)} text(s) but {len(starts)} "
                    "answer_start value(s); give one answer_start per text"
                )
            return list(zip(texts, starts, strict=True))
        if not isinstance(texts, list) and not isinstance(starts, list):
            return [(texts, starts)]  # one answer: {"text": "...", "answer_start": 7}
        raise DataError(
            f"{where}: answers.text and answers.answer_start must both be lists (one entry per "
            "answer) or both single values"
        )
    if isinstance(answers, list) and all(isinstance(a, dict) for a in answers):
        return [(a.get("text"), a.get("answer_start")) for a in answers]
    raise DataError(
        f"{where}: 'answers' must be {{text: [...], answer_start: [...]}} or a list of "
        f"{{text, answer_start}} objects, got {type(answers).__name__}"
    )


def _id(value: Any, default: str) -> str:
    """A question id (a JSON string or integer) as text; ``default`` when missing or bad (a bad
    one is reported by :func:`_check_id`)."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    return default


def _check_id(value: Any, where: str) -> None:
    if value is not None and (not isinstance(value, str | int) or isinstance(value, bool)):
        raise DataError(f"{where}: 'id' must be a string or an integer, got {value!r}")


def _impossible(value: Any, default: bool, where: str) -> bool:
    """``is_impossible``: JSON true or false (missing: ``default``); a string such as "false"
    is an error, not a truthy value."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise DataError(
            f"{where}: is_impossible must be true or false (a JSON boolean), got {value!r}"
        )
    return value


def _text(value: Any, name: str, where: str) -> str:
    """A text field that must be a non-empty string (not a number, list or object)."""
    if value is None:
        raise DataError(f"{where}: no {name}")
    if not isinstance(value, str):
        raise DataError(f"{where}: '{name}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise DataError(f"{where}: no {name} (it is empty)")
    return value


def _example(
    qid: str,
    question: Any,
    context: Any,
    answers: list[tuple[Any, Any]],
    impossible: bool,
    where: str,
    moved: list[str] | None,
) -> QAExample:
    question = _text(question, "question", where)
    context = _text(context, "context", where)
    if impossible and answers:
        raise DataError(
            f"{where}: is_impossible is true but the question has {len(answers)} answer(s); "
            "an unanswerable question has an empty answers list"
        )
    checked = [_answer(text, start, context, where, moved) for text, start in answers]
    return QAExample(qid, question.strip(), context, tuple(checked), impossible, where)


def _answer(
    text: Any, start: Any, context: str, where: str, moved: list[str] | None
) -> tuple[str, int]:
    """One checked ``(text, start)``: ``text`` a non-empty string found in ``context`` at
    ``start`` (or, when ``moved`` is a list, at the nearest occurrence, noted in ``moved``)."""
    if not isinstance(text, str):
        raise DataError(f"{where}: an answer's text must be a string, got {text!r}")
    if not text.strip():
        raise DataError(
            f"{where}: an answer's text is empty; an unanswerable (v2.0) question has an "
            "empty answers list instead"
        )
    if not isinstance(start, int) or isinstance(start, bool):
        raise DataError(
            f"{where}: answer {text!r} needs an integer answer_start (its first character in "
            f"the context), got {start!r}"
        )
    if not 0 <= start < len(context):
        raise DataError(
            f"{where}: answer {text!r} has answer_start={start}, outside the context "
            f"(characters 0 to {len(context) - 1})"
        )
    if context[start : start + len(text)] == text:
        return text, start
    found = _nearest(context, text, start)
    if found is None or moved is None:
        hint = (
            ""
            if found is None
            else (f"; the text occurs at {found}: set task.nearest_answer=true to use it")
        )
        raise DataError(
            f"{where}: answer {text!r} is not in the context at answer_start={start}{hint}"
        )
    moved.append(where)
    return text, found


def _nearest(context: str, text: str, start: int) -> int | None:
    hits, at = [], context.find(text)
    while at != -1:
        hits.append(at)
        at = context.find(text, at + 1)
    return min(hits, key=lambda h: abs(h - start)) if hits else None
