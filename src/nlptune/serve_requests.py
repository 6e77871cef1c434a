"""What a ``POST /predict`` request may hold (:class:`Limits`) and does hold: its inputs, checked
against the limits and the task before any of them is queued, and the answer (one row, the
rows, or a JSON error). No FastAPI here: ``nlptune export`` uses the example inputs too."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nlptune.errors import DataError

if TYPE_CHECKING:
    from nlptune.inputs import Record


@dataclass(frozen=True)
class Limits:
    """What one request may hold, and how requests are batched."""

    max_body_bytes: int = 1_048_576  # 413 past it
    max_items: int = 64  # inputs in one request; 413 past it
    max_chars: int = 10_000  # characters in one input (all its strings); 413 past it
    max_batch: int = 64  # inputs predicted together
    wait_ms: float = 5.0  # how long a batch's first request waits for others
    max_queue: int = 1024  # inputs waiting; 503 past it


def input_form(task: Any, task_type: str) -> str:
    """How the page asks for an input: ``text``, ``pair`` (two texts) or ``qa``."""
    if task_type == "extractive_qa":
        return "qa"
    return "pair" if getattr(task, "pair", False) else "text"


def example_input(task: Any, task_type: str) -> Any:
    """An input the task reads (shown by ``/info``, the page and the OpenAPI docs)."""
    form = input_form(task, task_type)
    if form == "qa":
        return {"question": "Where does Ada live?", "context": "Ada lives in Paris, France."}
    if form == "pair":
        return {"text": "A man plays a guitar.", "text_pair": "Someone plays music."}
    return {
        "sequence_labelling": "Peter Blackburn lives in Paris, France.",
        "word_sense": "we met <head>at</head> the cafe",
        "masked_lm": f"the film was {getattr(task, 'mask_token', '[MASK]')} .",
        "text_to_text": "A man plays a guitar.",
    }.get(task_type, "a gripping, funny film")


class BadRequest(Exception):
    """A request the server refuses: ``status`` and a JSON body that says why."""

    def __init__(self, status: int, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": message, **details}


def parse_body(body: bytes, limits: Limits) -> tuple[list[Any], bool]:
    """The inputs of a request body and whether it was one input (not a list)."""
    if len(body) > limits.max_body_bytes:
        raise too_large_body(limits)
    try:
        value = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(422, "the body is not UTF-8 text; send JSON") from None
    except RecursionError:
        raise BadRequest(422, "the body's JSON is nested too deeply") from None
    except ValueError as err:
        raise BadRequest(422, f"the body is not valid JSON ({err})") from None
    single = not isinstance(value, list)
    items = [value] if single else value
    if not items:
        raise BadRequest(422, "no inputs: send one input or a non-empty JSON array of them")
    if len(items) > limits.max_items:
        raise BadRequest(
            413,
            f"{len(items)} inputs in one request; at most {limits.max_items} (split the list)",
            limit=limits.max_items,
        )
    return items, single


def too_large_body(limits: Limits) -> BadRequest:
    return BadRequest(
        413, f"the body is larger than {limits.max_body_bytes} bytes", limit=limits.max_body_bytes
    )


def checked_records(items: list[Any], task: Any, limits: Limits, keep: bool) -> list[Record]:
    """One record per input, numbered from 1 in the request. An input that is too long raises
    (413); one the task can't read raises (422), or with ``keep`` becomes an error record."""
    from nlptune.inputs import Record

    records = []
    for n, item in enumerate(items, start=1):
        where = f"input {n}" if len(items) > 1 else "input"
        size = _chars(item)
        if size > limits.max_chars:
            raise BadRequest(
                413,
                f"{where} has {size} characters; at most {limits.max_chars}",
                input=n,
                limit=limits.max_chars,
            )
        record = Record(item, where, n, _id_of(item))
        try:
            _check_types(item, where, task)
            task.input_example(item, where)
        except DataError as err:
            if not keep:
                raise BadRequest(422, str(err), input=n) from None
            record.error = str(err)
        records.append(record)
    return records


def _check_types(item: Any, where: str, task: Any) -> None:
    """Refuse what JSON Lines input would read leniently: a text field that is not a string
    (a number, an object), words that are not all strings, an id that is not a scalar."""
    if not isinstance(item, dict):
        return
    data = getattr(task, "data", None)
    columns = {getattr(data, "text", None), getattr(data, "text_pair", None)} - {None}
    for key in {"text", "text_pair", "question", "context", "source", *columns} & set(item):
        if not isinstance(item[key], str):
            got = type(item[key]).__name__
            raise DataError(f"{where}: '{key}' must be a string, got {got}")
    words = item.get("words")
    if words is not None and not (
        isinstance(words, list) and all(isinstance(w, str) for w in words)
    ):
        raise DataError(f"{where}: 'words' must be a list of strings")
    if isinstance(item.get("id"), (dict, list)):
        raise DataError(f"{where}: 'id' must be a string or a number")


def _chars(value: Any, depth: int = 0) -> int:
    """Characters in all the strings (and keys) of a JSON value."""
    if isinstance(value, str):
        return len(value)
    if depth > 32:
        raise BadRequest(422, "an input is nested too deeply")
    if isinstance(value, dict):
        return sum(len(str(k)) + _chars(v, depth + 1) for k, v in value.items())
    if isinstance(value, list):
        return sum(_chars(v, depth + 1) for v in value)
    return 0


def _id_of(item: Any) -> str | None:
    value = item.get("id") if isinstance(item, dict) else None
    return None if value is None else str(value)


def answer(rows: list[dict[str, Any]], single: bool, keep: bool) -> Any:
    """The response body: the row (one input) or the rows; without ``keep``, a 422 when an
    input failed."""
    failed = [r for r in rows if "error" in r]
    if failed and not keep:
        more = {"failed": [r.get("input") for r in failed]} if len(failed) > 1 else {}
        raise BadRequest(422, failed[0]["error"], input=failed[0].get("input"), **more)
    return rows[0] if single else rows
