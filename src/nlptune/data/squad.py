"""SQuAD readers: the published nested JSON (v1.1 and v2.0) and flat rows (JSON Lines, datasets).

Flat rows have ``question``, ``context`` and ``answers`` (``{"text": [...], "answer_start":
[...]}`` as in Hugging Face ``squad``, or a list of ``{"text", "answer_start"}``), plus ``id``.
An answer whose text is not found in the context at ``answer_start`` is an error naming the file
and question id, unless ``nearest`` allows using the closest occurrence of the text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from nlptune.data.examples import guarded
from nlptune.data.readers import ERROR, read_table
from nlptune.errors import DataError


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
            return _nested(doc["data"], path, nearest, labelled)
    flat = "jsonl" if p.is_file() else "auto"  # rows of a SQuAD-like table
    table = read_table(path, flat if fmt in ("auto", "squad") else fmt, lenient=not labelled)
    return [_flat(row, table.where(i), nearest, labelled) for i, row in enumerate(table.rows)]


def _nested(data: Any, path: str, nearest: bool, labelled: bool) -> list[Any]:
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
                qid = str(qa["id"]) if isinstance(qa, dict) and "id" in qa else f"q{len(out) + 1}"
                where = f"{path} question {qid}"
                make = partial(_question, qa, qid, context, where, nearest, labelled)
                out.append(guarded(not labelled, where, make, qid))
    return out


def _question(
    qa: Any, qid: str, context: Any, where: str, nearest: bool, labelled: bool
) -> QAExample:
    if not isinstance(qa, dict):
        raise DataError(f"{where}: a question must be a JSON object, got {type(qa).__name__}")
    answers = qa.get("answers", []) if labelled else []
    if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
        raise DataError(f"{where}: 'answers' must be a list of {{text, answer_start}} objects")
    pairs = [(a.get("text"), a.get("answer_start")) for a in answers]
    impossible = bool(qa.get("is_impossible", False))
    return _example(qid, qa.get("question"), context, pairs, impossible, where, nearest)


def _flat(row: dict[str, Any], where: str, nearest: bool, labelled: bool) -> Any:
    qid = str(row.get("id", where))
    place = f"{where} (question {qid})"

    def make() -> QAExample:
        if ERROR in row:  # a line a lenient read could not parse
            raise DataError(str(row[ERROR]))
        answers = (row.get("answers") or []) if labelled else []
        if isinstance(answers, dict):
            texts, starts = answers.get("text", []), answers.get("answer_start", [])
            pairs = list(zip(texts, starts, strict=False))
        elif isinstance(answers, list) and all(isinstance(a, dict) for a in answers):
            pairs = [(a.get("text"), a.get("answer_start")) for a in answers]
        else:
            raise DataError(f"{place}: 'answers' must be a list of {{text, answer_start}}")
        impossible = bool(row.get("is_impossible", not pairs and "answers" in row))
        question, context = row.get("question"), row.get("context")
        return _example(qid, question, context, pairs, impossible, place, nearest)

    return guarded(not labelled, place, make, str(row["id"]) if "id" in row else "")


def _example(
    qid: str,
    question: Any,
    context: Any,
    answers: list[tuple[Any, Any]],
    impossible: bool,
    where: str,
    nearest: bool,
) -> QAExample:
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: no question")
    if not isinstance(context, str) or not context:
        raise DataError(f"{where}: no context")
    checked = []
    for text, start in answers:
        if not isinstance(text, str) or not isinstance(start, int):
            raise DataError(f"{where}: an answer needs text and an integer answer_start")
        if context[start : start + len(text)] != text:
            found = _nearest(context, text, start)
            if found is None or not nearest:
                hint = (
                    ""
                    if found is None
                    else (f"; the text occurs at {found}: set task.nearest_answer=true to use it")
                )
                raise DataError(
                    f"{where}: answer {text!r} is not in the context at answer_start={start}{hint}"
                )
            start = found
        checked.append((text, start))
    return QAExample(qid, question.strip(), context, tuple(checked), impossible, where)


def _nearest(context: str, text: str, start: int) -> int | None:
    hits, at = [], context.find(text)
    while at != -1:
        hits.append(at)
        at = context.find(text, at + 1)
    return min(hits, key=lambda h: abs(h - start)) if hits else None
