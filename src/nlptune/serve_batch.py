"""Dynamic batching for ``nlptune serve``: the inputs of requests that arrive within a few
milliseconds of each other are predicted together, as one length-sorted batch.

One asyncio task takes requests off a queue: the first one waits at most ``wait_s`` for more,
until ``max_batch`` inputs are gathered; then all of them go to ``run`` in a single worker thread
(the model never runs two batches at once) and each request gets its own rows back, in order.
The queue is bounded in inputs: a request that would overflow it is refused at once with
:class:`QueueFull` (the server answers 503 with a ``Retry-After`` estimated from the measured
throughput) instead of waiting without end.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

Rows = list[dict[str, Any]]


class QueueFull(Exception):
    """The queue holds ``max_queue`` inputs; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _Job:
    items: list[Any]
    future: asyncio.Future[Rows]
    queued: float = field(default_factory=time.perf_counter)


@dataclass
class Stats:
    """What the batcher has done (shown by ``GET /health``)."""

    requests: int = 0
    inputs: int = 0
    batches: int = 0
    largest_batch: int = 0
    inputs_per_s: float = 0.0  # a moving average of the model's throughput

    def record(self, jobs: int, inputs: int, seconds: float) -> None:
        self.requests += jobs
        self.inputs += inputs
        self.batches += 1
        self.largest_batch = max(self.largest_batch, inputs)
        rate = inputs / max(seconds, 1e-6)
        self.inputs_per_s = rate if self.batches == 1 else 0.8 * self.inputs_per_s + 0.2 * rate


class Batcher:
    """Gathers requests into batches for ``run`` (inputs -> one row per input, in order).

    Args:
        run: predicts a list of inputs; called in one worker thread, never concurrently.
        max_batch: most inputs in one batch (a single larger request still runs whole).
        wait_s: how long the first request of a batch waits for others.
        max_queue: most inputs waiting; past it :meth:`submit` raises :class:`QueueFull`.
    """

    def __init__(
        self, run: Callable[[list[Any]], Rows], max_batch: int, wait_s: float, max_queue: int
    ) -> None:
        self.run, self.max_batch, self.wait_s, self.max_queue = run, max_batch, wait_s, max_queue
        self.stats = Stats()
        self.waiting = 0  # inputs queued, not yet taken into a batch
        self._pending: deque[_Job | None] = deque()  # None: the stop mark
        self._arrived = asyncio.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nlptune-model")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Finish every queued request, then stop the loop and the worker thread."""
        if self._task is not None:
            self._pending.append(None)
            self._arrived.set()
            await self._task
            self._task = None
        self._pool.shutdown(wait=True)

    async def submit(self, items: list[Any]) -> Rows:
        """The rows for ``items``, once their batch has run (QueueFull when the queue is full)."""
        if self._task is None:
            raise RuntimeError("the batcher is not running")
        if self.waiting and self.waiting + len(items) > self.max_queue:
            raise QueueFull(self.retry_after())
        job = _Job(items, asyncio.get_running_loop().create_future())
        self.waiting += len(items)
        self._pending.append(job)
        self._arrived.set()
        return await job.future

    def retry_after(self) -> int:
        """Seconds until the queue has drained at the measured rate (at least 1)."""
        rate = self.stats.inputs_per_s or 1.0
        return max(1, math.ceil(self.waiting / rate))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._gather()
            if not jobs:
                return
            items = [x for job in jobs for x in job.items]
            self.waiting -= len(items)
            started = time.perf_counter()
            try:
                rows = await loop.run_in_executor(self._pool, self.run, items)
                if len(rows) != len(items):
                    raise RuntimeError(f"{len(rows)} predictions for {len(items)} inputs")
            except Exception as err:  # noqa: BLE001 (every request of the batch gets it)
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            self.stats.record(len(jobs), len(items), time.perf_counter() - started)
            at = 0
            for job in jobs:  # a request whose client left has a cancelled future
                if not job.future.done():
                    job.future.set_result(rows[at : at + len(job.items)])
                at += len(job.items)

    async def _gather(self) -> list[_Job]:
        """The next batch: the first job, then whatever arrives within ``wait_s`` of it, up to
        ``max_batch`` inputs. Empty after :meth:`stop` once the queue is drained. Jobs leave the
        queue only here, synchronously, so none is ever lost to a timeout."""
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        deadline = time.perf_counter() + self.wait_s
        jobs: list[_Job] = []
        size = 0
        while True:
            if not self._pending:
                left = deadline - time.perf_counter()
                if left <= 0 or size >= self.max_batch:
                    return jobs
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except TimeoutError:
                    return jobs
                continue
            job = self._pending[0]
            if job is None or (jobs and size + len(job.items) > self.max_batch):
                return jobs  # the stop mark (or a job too big to join) waits for the next turn
            self._pending.popleft()
            jobs.append(job)
            size += len(job.items)
            if size >= self.max_batch:
                return jobs
