"""Progress on stderr: a tqdm bar on a terminal; elsewhere (a log file, CI) one plain line every
``NLPTUNE_PROGRESS_SECONDS`` seconds (default 30), never ``\\r`` redraws."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

logger = logging.getLogger("nlptune")


def plain_every() -> float:
    """Seconds between two plain progress lines (``NLPTUNE_PROGRESS_SECONDS``, default 30)."""
    try:
        return max(0.0, float(os.environ.get("NLPTUNE_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Counts ``unit``s of ``what`` towards ``total`` (None: unknown).

    On a terminal it is a tqdm bar with the rate and the time left for the whole count; on
    anything else a line such as ``training: step 40 of 120 (33%), 2.1 steps/s, 0:19 elapsed,
    0:38 left`` at most every :func:`plain_every` seconds. ``enabled=False`` shows nothing.
    """

    def __init__(
        self,
        what: str,
        total: int | None,
        unit: str,
        *,
        enabled: bool = True,
        initial: int = 0,
        leave: bool = True,
    ) -> None:
        self.what, self.total, self.unit, self.enabled = what, total, unit, enabled
        self.count = self.initial = initial
        self.started = self.last = time.perf_counter()
        self.every = plain_every()
        self.postfix: dict[str, Any] = {}
        self.bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total,
                initial=initial,
                unit=unit,
                desc=what,
                leave=leave,
                dynamic_ncols=True,
                file=sys.stderr,
            )

    def update(self, n: int = 1, **postfix: float) -> None:
        self.count += n
        if postfix:
            self.postfix = postfix
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)
            return
        now = time.perf_counter()
        unfinished = self.total is None or self.count < self.total
        if self.enabled and unfinished and now - self.last >= self.every:
            self.last = now
            logger.info(self.line(now))

    def line(self, now: float | None = None) -> str:
        """The plain progress line for this moment."""
        elapsed = (now or time.perf_counter()) - self.started
        done = self.count - self.initial
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.total:
            share = 100 * self.count / self.total
            where = f"{self.unit} {self.count} of {self.total} ({share:.0f}%)"
        else:
            where = f"{self.count} {self.unit}s"
        parts = [f"{self.what}: {where}", f"{rate:.3g} {self.unit}s/s"]
        parts.append(f"{_clock(elapsed)} elapsed")
        if self.total and rate > 0:
            parts.append(f"{_clock((self.total - self.count) / rate)} left")
        parts += [f"{k} {v:.3g}" for k, v in self.postfix.items()]
        return ", ".join(parts)

    def write(self, text: str) -> None:
        """A message that does not break the bar."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            logger.info(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
