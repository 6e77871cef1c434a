"""Run logging: progress, train_log.jsonl and experiment trackers (main process only)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlptune.progress import Progress
from nlptune.training import trackers as tracking

logger = logging.getLogger("nlptune")


class RunLog:
    """Writes one JSON object per event to ``train_log.jsonl`` and its numbers to the run's
    experiment trackers (``trainer.report_to``)."""

    def __init__(
        self,
        folder: Path,
        *,
        main: bool,
        total: int,
        start: int,
        progress: bool,
        trackers: Sequence[str] = (),
        config: dict[str, Any] | None = None,
    ) -> None:
        self.main = main
        self.start_time = time.perf_counter()
        if main and start > 0:
            _cut(folder / "train_log.jsonl", start)
        self.file = (
            open(folder / "train_log.jsonl", "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
            if main
            else None
        )
        self.trackers: list[Any] = (
            tracking.start(trackers, folder, tracking.flat_config(config or {})) if main else []
        )
        self.progress = Progress(
            "training", total, "step", enabled=main and progress, initial=start
        )

    def step(self, step: int, **values: float) -> None:
        self.progress.update(1, **values)

    def event(self, kind: str, step: int, values: dict[str, Any]) -> None:
        if not self.main:
            return
        record = {
            "event": kind,
            "step": step,
            "time": round(time.perf_counter() - self.start_time, 3),
            **values,
        }
        assert self.file is not None
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        numbers = {
            f"{kind}/{k}": v
            for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        for tracker in self.trackers:
            tracker.log(numbers, step=step)
        if kind == "eval":
            shown = ", ".join(f"{k}={v:.4f}" for k, v in values.items() if isinstance(v, float))
            self.write(f"step {step}: {shown}")

    def write(self, text: str) -> None:
        if not self.main:
            return
        self.progress.write(text)

    def close(self) -> None:
        self.progress.close()
        for tracker in self.trackers:
            tracker.finish()
        if self.file is not None:
            self.file.close()


def _cut(path: Path, step: int) -> None:
    """Drop the records after ``step`` (logged after the checkpoint a run resumes from), so a
    resumed run's log has each step once."""
    if not path.is_file():
        return
    kept = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by the crash
            if isinstance(record, dict) and int(record.get("step", 0)) <= step:
                kept.append(json.dumps(record) + "\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    tmp.replace(path)
