"""Where nlptune's messages go: the ``nlptune`` logger, shown on stderr as plain lines."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("nlptune")


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def show_messages(always: bool = True) -> None:
    """Show nlptune's INFO messages on stderr. The CLI always does; the Python API does when
    the program has not configured logging itself (no handler on ``nlptune`` or the root
    logger), so ``nlptune.train()`` reports progress and its summary line as the CLI does."""
    if any(isinstance(h, StderrHandler) for h in logger.handlers):
        return
    if not always and (logger.handlers or logging.getLogger().handlers):
        return
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
