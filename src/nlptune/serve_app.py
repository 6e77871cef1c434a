"""The FastAPI application of ``nlptune serve`` (routes, error bodies, OpenAPI description).

Imported only when a server is made: FastAPI is an optional dependency (``nlptune[serve]``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException

from nlptune import serve_requests
from nlptune.serve_batch import Batcher, QueueFull
from nlptune.serve_requests import BadRequest, Limits, example_input, input_form
from nlptune.serve_shapes import bucketed

logger = logging.getLogger("nlptune")

_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    }
}


def create_app(
    predictor: Any, run: Path, limits: Limits | None = None, buckets: bool = True
) -> FastAPI:
    """The app for a loaded :class:`~nlptune.predict.Predictor` of the finished run ``run``.

    The batcher starts and stops with the app's lifespan (``with TestClient(app)`` or uvicorn);
    on shutdown every queued request is answered before the model thread ends. ``buckets``
    pads batches to a few shapes (:mod:`nlptune.serve_shapes`; it wraps ``predictor.model``) so
    that memory levels off."""
    limits = limits or Limits()
    if buckets:
        bucketed(predictor)
    info = run_info(run, predictor, limits)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with batching(predictor, limits) as batcher:
            app.state.batcher = batcher
            yield

    app = FastAPI(
        title=f"nlptune: {run.name}",
        description=f"A {info['task']} model fine-tuned with nlptune (`{run}`). POST inputs to "
        "/predict; the answers are what `nlptune predict` writes.",
        version=str(info["nlptune"]),
        lifespan=lifespan,
    )
    _errors(app)
    _routes(app, predictor, info, limits)
    return app


def run_info(run: Path, predictor: Any, limits: Limits) -> dict[str, Any]:
    """What ``GET /info`` shows: task, labels, model, metrics, limits."""
    config, task = predictor.config, predictor.task
    labels = _json(run / "labels.json") or {}
    architectures = (_json(run / "model" / "config.json") or {}).get("architectures") or [None]
    from nlptune import __version__

    return {
        "run": str(run),
        "task": config.task.type,
        "input": input_form(task, config.task.type),
        "example": example_input(task, config.task.type),
        "main_metric": getattr(task, "main_metric", None),
        "problem": labels.get("problem"),
        "labels": labels.get("labels"),
        "model": {
            "base": config.backbone.path,
            "family": config.backbone.type,
            "class": architectures[0],
            "max_length": config.backbone.max_length,
        },
        "metrics": _json(run / "metrics.json"),
        "limits": asdict(limits),
        "device": str(predictor.device),
        "nlptune": __version__,
    }


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _errors(app: FastAPI) -> None:
    """Every error is ``{"error": ...}`` JSON."""

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, err: BadRequest) -> JSONResponse:
        return JSONResponse(err.body, status_code=err.status)

    @app.exception_handler(QueueFull)
    async def full(request: Request, err: QueueFull) -> JSONResponse:
        headers = {"Retry-After": str(err.retry_after)}
        return JSONResponse({"error": str(err)}, status_code=503, headers=headers)

    @app.exception_handler(HTTPException)
    async def http(request: Request, err: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(err.detail)}, err.status_code, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": str(err.errors()[:1])}, status_code=422)

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception) -> JSONResponse:
        logger.exception("error while answering %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error: {type(err).__name__}"}, 500)


def _routes(app: FastAPI, predictor: Any, info: dict[str, Any], limits: Limits) -> None:
    task = predictor.task

    @app.post(
        "/predict",
        summary="Predict one input or a list of inputs",
        description=_PREDICT_DOC.format(**vars(limits)),
        openapi_extra=_openapi_body(info["example"]),
        responses={
            200: {"description": "one prediction (one input) or a list of them, in order"},
            413: {"description": "body, list or input too large", **_ERROR},
            422: {"description": "not JSON, or an input the model can't read", **_ERROR},
            503: {"description": "the queue is full: retry after Retry-After s", **_ERROR},
        },
    )
    async def predict(request: Request, errors: str = "raise") -> Any:
        if errors not in ("raise", "record"):
            raise BadRequest(422, f"errors={errors}: use 'raise' or 'record'")
        keep = errors == "record"
        items, single = serve_requests.parse_body(await _body(request, limits), limits)
        records = serve_requests.checked_records(items, task, limits, keep)
        rows = await request.app.state.batcher.submit(records)
        return serve_requests.answer(rows, single, keep)

    @app.get("/health", summary="Whether the model is loaded, and the queue")
    async def health(request: Request) -> dict[str, Any]:
        batcher = request.app.state.batcher
        return {"status": "ok", "queued": batcher.waiting, **vars(batcher.stats)}

    @app.get("/info", summary="Task, labels, model, metrics and limits")
    async def run_info() -> dict[str, Any]:
        return info

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        from nlptune.serve_page import PAGE

        return HTMLResponse(PAGE)


async def _body(request: Request, limits: Limits) -> bytes:
    """The request body, refused (413) as soon as it passes the limit, whatever
    Content-Length says."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise serve_requests.too_large_body(limits)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limits.max_body_bytes:
            raise serve_requests.too_large_body(limits)
    return bytes(body)


_PREDICT_DOC = """\
The body is one input, as one line of a JSON Lines input to `nlptune predict` (a JSON string,
or an object such as `{{"text": ...}}`, `{{"text": ..., "text_pair": ...}}`,
`{{"question": ..., "context": ...}}`, `{{"words": [...]}}`), or a JSON array of inputs. The
answer is the prediction (or the list of them, in order), the JSON objects `nlptune predict`
writes; an input's `id` is copied to its answer.

Limits: body {max_body_bytes} bytes, {max_items} inputs a request, {max_chars} characters an
input (413 past them). An input the model can't read answers 422 naming it; with
`?errors=record` it gets `{{"error": ..., "input": N}}` in its place instead and the others are
answered. Requests arriving within {wait_ms} ms are predicted together (up to {max_batch}
inputs); past {max_queue} queued inputs the server answers 503 with `Retry-After`.
"""


def _openapi_body(example: Any) -> dict[str, Any]:
    one = {"oneOf": [{"type": "string"}, {"type": "object"}]}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [one, {"type": "array", "items": one}]},
                    "examples": {
                        "one": {"summary": "one input", "value": example},
                        "list": {"summary": "a list of inputs", "value": [example, example]},
                    },
                }
            },
        }
    }


@asynccontextmanager
async def batching(predictor: Any, limits: Limits) -> AsyncIterator[Batcher]:
    """A running :class:`Batcher` for ``predictor``; on exit, queued requests finish first."""
    batcher = Batcher(
        lambda records: predict_records(predictor, records),
        max_batch=limits.max_batch,
        wait_s=limits.wait_ms / 1000,
        max_queue=limits.max_queue,
    )
    batcher.start()
    try:
        yield batcher
    finally:
        await batcher.stop()


def predict_records(predictor: Any, records: list[Any]) -> list[dict[str, Any]]:
    """Rows for records of several requests, predicted together (sorted by length in
    batches of the predictor's batch size); an input that fails gets an error row."""
    rows = predictor.predict_records(records, buffer=len(records), line_key="input")
    return list(rows)
