"""What the benchmark scripts share: the machine's name and writing their JSON report."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def write_report(out: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON to ``out`` (its folder made) and say where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {out}")


def timed_trainer_args(**settings: Any) -> Any:
    """``TrainingArguments`` for a timed Trainer run: ``settings`` plus no evaluation, saving,
    reporting or progress bar during training, and the CPU where there is no GPU."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        **settings,
    )
