"""User-facing errors: one clear message, exit code 2, no traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NlptuneError(Exception):
    """An error the user can fix (bad config, bad data, missing file).

    The CLI prints ``str(error)`` and exits with code 2; it never shows a traceback for these.
    """


class ConfigError(NlptuneError):
    """The run config is invalid."""


class DataError(NlptuneError):
    """A data file is missing, malformed or does not fit the task."""


class ModelError(NlptuneError):
    """A model path does not exist or the model does not fit the task."""


def first_line(err: BaseException) -> str:
    """The first line of a library's error message (an ``error:`` line is one line)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` if none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""
