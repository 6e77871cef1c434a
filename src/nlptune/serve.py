"""``nlptune serve RUN_DIR``: a finished run behind HTTP (FastAPI + uvicorn).

``POST /predict`` takes one input (a JSON string or object, as one line of a JSON Lines input to
``nlptune predict``) or a JSON array of them, and answers with the same JSON ``nlptune predict``
writes: one object, or an array in input order. Requests that arrive within ``wait_ms`` of each
other are predicted as one length-sorted batch (:mod:`nlptune.serve_batch`). ``GET /health``,
``GET /info`` (task, labels, model, metrics, limits), ``/docs`` (OpenAPI) and a page at ``/``
to try the model.

Bad requests get a JSON ``{"error": ...}`` and never a 500: 413 for a body, an input or a list
that is too large, 422 for a body that is not JSON or inputs the task can't read, 503 with
``Retry-After`` while the queue is full. The app is in :mod:`nlptune.serve_app`, the request
checks in :mod:`nlptune.serve_requests`; FastAPI and uvicorn are imported only when a server is
made (``pip install 'nlptune[serve]'``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlptune.errors import NlptuneError
from nlptune.serve_requests import Limits

if TYPE_CHECKING:
    import argparse

logger = logging.getLogger("nlptune")
INSTALL = "nlptune serve needs FastAPI and uvicorn: pip install 'nlptune[serve]'"


def require() -> None:
    """Raise a one-line error when FastAPI or uvicorn is not installed."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise NlptuneError(INSTALL) from None


def listen(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-line error (port in use, unknown host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        raise NlptuneError(f"can't listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


def serve(
    run: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    grace_s: float = 30.0,
) -> None:
    """Load a finished run and serve it until SIGINT/SIGTERM; requests in flight then finish
    (for at most ``grace_s`` seconds)."""
    require()
    import uvicorn

    from nlptune.predict import Predictor

    limits = limits or Limits()
    sock = listen(host, port)  # before the model loads: a busy port fails at once
    predictor = Predictor.from_dir(run, device=device, batch_size=batch_size)
    from nlptune.serve_app import create_app

    app = create_app(predictor, Path(run), limits)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    logger.info(
        "serving %s (%s) at http://%s:%d/ (API docs: /docs); Ctrl-C stops after the requests "
        "in flight",
        run,
        predictor.config.task.type,
        shown,
        bound_port,
    )
    config = uvicorn.Config(
        app,
        log_level="warning",
        timeout_graceful_shutdown=int(grace_s),
        lifespan="on",
    )
    server = uvicorn.Server(config)
    with _stop_signals() as stops:
        asyncio.run(server.serve(sockets=[sock]))
    logger.info("stopped%s", f" ({stops[0]})" if stops else "")


@contextlib.contextmanager
def _stop_signals() -> Iterator[list[str]]:
    """The names of the stop signals (SIGINT, SIGTERM) received while serving. uvicorn catches
    them for its graceful shutdown and raises them again once it is done; here they then end
    :func:`serve` normally (exit code 0), not as a kill or a KeyboardInterrupt."""
    stops: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield stops
        return
    kinds = (signal.SIGINT, signal.SIGTERM)
    before = {
        kind: signal.signal(kind, lambda n, _: stops.append(signal.Signals(n).name))
        for kind in kinds
    }
    try:
        yield stops
    finally:
        for kind, handler in before.items():
            signal.signal(kind, handler)


def add_parser(sub: Any) -> None:
    """``nlptune serve``'s arguments (``sub``: the CLI's subparsers)."""
    d = Limits()
    parser = sub.add_parser(
        "serve",
        help="serve a finished run over HTTP: POST /predict, GET /health, /info, /docs, a page "
        f"at / to try it (needs {INSTALL.split(': ', 1)[1]})",
    )
    parser.add_argument("run", help="run directory")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when there is one)")
    parser.add_argument(
        "--batch-size", type=_positive, help="inputs per model batch (default: the run's)"
    )
    for name, value, what in (
        ("max-body-bytes", d.max_body_bytes, "largest request body"),
        ("max-items", d.max_items, "most inputs in one request"),
        ("max-chars", d.max_chars, "most characters in one input"),
        ("max-batch", d.max_batch, "most inputs predicted together"),
        ("max-queue", d.max_queue, "most inputs waiting (then 503 with Retry-After)"),
    ):
        parser.add_argument(f"--{name}", type=_positive, default=value, help=f"{what} ({value})")
    parser.add_argument(
        "--wait-ms",
        type=float,
        default=d.wait_ms,
        help=f"how long a batch waits for more requests ({d.wait_ms:g} ms)",
    )


def _positive(text: str) -> int:
    import argparse

    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return int(text)


def main(args: argparse.Namespace) -> int:
    """Run ``nlptune serve`` as parsed."""
    if args.wait_ms < 0:
        raise NlptuneError(f"--wait-ms {args.wait_ms:g}: give 0 or more milliseconds")
    if not 0 <= args.port <= 65535:
        raise NlptuneError(f"--port {args.port}: give a port from 0 to 65535")
    limits = Limits(
        max_body_bytes=args.max_body_bytes,
        max_items=args.max_items,
        max_chars=args.max_chars,
        max_batch=args.max_batch,
        wait_ms=args.wait_ms,
        max_queue=args.max_queue,
    )
    serve(args.run, args.host, args.port, limits, args.device, args.batch_size)
    return 0


__all__ = ["Limits", "listen", "require", "serve"]
