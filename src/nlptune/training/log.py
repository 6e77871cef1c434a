"""Run logging: progress, train_log.jsonl and TensorBoard (main process only)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from nlptune.progress import Progress

logger = logging.getLogger("nlptune")


class RunLog:
    """Writes one JSON object per event to ``train_log.jsonl`` and scalars to TensorBoard."""

    def __init__(
        self, folder: Path, *, main: bool, total: int, start: int, progress: bool, tensorboard: bool
    ) -> None:
        self.main = main
        self.start_time = time.perf_counter()
        self.file = (
            open(folder / "train_log.jsonl", "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
            if main
            else None
        )
        self.writer: Any = None
        if main and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(folder / "tensorboard"))
            except ImportError:  # tensorboard not installed: JSON log only
                logger.warning("tensorboard is not installed; logging to train_log.jsonl only")
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
        if self.writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{kind}/{key}", value, step)
        if kind == "eval":
            shown = ", ".join(f"{k}={v:.4f}" for k, v in values.items() if isinstance(v, float))
            self.write(f"step {step}: {shown}")

    def write(self, text: str) -> None:
        if not self.main:
            return
        self.progress.write(text)

    def close(self) -> None:
        self.progress.close()
        if self.writer is not None:
            self.writer.close()
        if self.file is not None:
            self.file.close()
