"""SQuAD readers: the published nested JSON (v1.1 and v2.0) and flat rows (JSON Lines, datasets).

Flat rows have ``question``, ``context`` and ``answers`` (``{"text": [...], "answer_start":
[...]}`` as in Hugging Face ``squad``, or a list of ``{"text", "answer_start"}``), plus ``id``.
An answer whose text is not found in the context at ``answer_start`` is an error naming the file
and question id, unless ``nearest`` allows using the closest occurrence of the text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlptune.data.readers import read_table
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


def read_squad(path: str, fmt: str = "auto", *, nearest: bool = False) -> list[QAExample]:
    """Read nested SQuAD JSON or flat rows into :class:`QAExample`s."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".json":
        try:
            doc = json.loads(p.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{err.lineno}: not valid JSON: {err.msg}") from None
        if isinstance(doc, dict) and "data" in doc:
            return _nested(doc["data"], path, nearest)
    flat = "jsonl" if p.is_file() else "auto"  # rows of a SQuAD-like table
    table = read_table(path, flat if fmt in ("auto", "squad") else fmt)
    return [_flat(row, table.where(i), path, nearest) for i, row in enumerate(table.rows)]


def _nested(data: list[dict[str, Any]], path: str, nearest: bool) -> list[QAExample]:
    out: list[QAExample] = []
    for article in data:
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context")
            for qa in paragraph.get("qas", []):
                qid = str(qa.get("id", len(out)))
                where = f"{path} question {qid}"
                answers = [(a.get("text"), a.get("answer_start")) for a in qa.get("answers", [])]
                out.append(
                    _example(
                        qid,
                        qa.get("question"),
                        context,
                        answers,
                        bool(qa.get("is_impossible", False)),
                        where,
                        nearest,
                    )
                )
    return out


def _flat(row: dict[str, Any], where: str, path: str, nearest: bool) -> QAExample:
    qid = str(row.get("id", where))
    answers = row.get("answers") or []
    if isinstance(answers, dict):
        pairs = list(zip(answers.get("text", []), answers.get("answer_start", []), strict=False))
    else:
        pairs = [(a.get("text"), a.get("answer_start")) for a in answers]
    impossible = bool(row.get("is_impossible", not pairs and "answers" in row))
    return _example(
        qid,
        row.get("question"),
        row.get("context"),
        pairs,
        impossible,
        f"{where} (question {qid})",
        nearest,
    )


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
