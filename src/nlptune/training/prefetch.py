"""Training batches built ahead on a background thread, so the model never waits for them.

Collating a step's micro-batches (padding numpy columns, the masked-LM masking, pinning memory
on a GPU) is host work; on a GPU, where a small model's step takes milliseconds, it would sit
between two steps. :class:`Prefetch` runs it on one background thread, ``depth`` steps ahead, and
hands the results over in order: the same batches as building them inline, so runs stay exactly
reproducible and resumable.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

_END = object()


class Prefetch(Generic[In, Out]):
    """Yields ``(item, build(item))`` for each of ``items`` in order, built up to ``depth`` items
    ahead on a background thread (``depth`` 0: built on the caller's thread when asked for).
    Use it as a context manager, so that the thread stops however the loop ends.

    An exception raised by ``build`` is raised in the caller at the item that failed. Leaving the
    loop early (``break``, an exception) and :meth:`close` stop the thread."""

    def __init__(self, build: Callable[[In], Out], items: Iterable[In], depth: int) -> None:
        self.build, self.items, self.depth = build, items, depth
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __iter__(self) -> Iterator[tuple[In, Out]]:
        if self.depth == 0:
            for item in self.items:
                yield item, self.build(item)
            return
        self._thread = threading.Thread(target=self._work, name="nlptune-prefetch", daemon=True)
        self._thread.start()
        try:
            while True:
                got = self._queue.get()
                if got is _END:
                    return
                if isinstance(got, _Failed):
                    raise got.error
                assert isinstance(got, tuple)
                yield got
        finally:
            self.close()

    def _work(self) -> None:
        try:
            for item in self.items:
                if self._stop.is_set():
                    return
                if not self._put((item, self.build(item))):
                    return
        except BaseException as error:  # noqa: BLE001 (handed to the caller, raised there)
            self._put(_Failed(error))
            return
        self._put(_END)

    def _put(self, value: object) -> bool:
        """Put ``value`` when there is room; False once the consumer has stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __enter__(self) -> Prefetch[In, Out]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the thread and drop what it built ahead."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            while thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    self._queue.get(timeout=0.05)
            thread.join()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error
