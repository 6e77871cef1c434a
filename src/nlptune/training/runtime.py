"""The accelerator and mixed precision: one Accelerator per run, autocast for inference."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch

logger = logging.getLogger("nlptune")


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool((check and check()) or (amx and amx()))
    return False


def make_accelerator(precision: str, threads: int | None) -> Any:
    """An Accelerator with ``precision`` resolved (auto = bf16 where supported)."""
    from accelerate import Accelerator

    if threads:
        torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if precision == "auto":
        precision = "bf16" if bf16_supported(device) else "fp32"
    mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]
    # cpu=True on GPU-less machines: accelerate then sets up gloo (MULTI_CPU) when launched with
    # several processes; without it each process would train alone.
    _reset_single_process_state()
    accelerator = Accelerator(mixed_precision=mixed, cpu=device.type == "cpu")
    from nlptune.training.sharding import check_version

    check_version(accelerator)
    if not accelerator.is_main_process:
        logger.setLevel(logging.WARNING)  # one process reports
    return accelerator


def _reset_single_process_state() -> None:
    """Let one Python process train several runs with different precisions (accelerate keeps
    one global state); launched multi-process runs keep theirs."""
    import os

    from accelerate.state import AcceleratorState

    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state(reset_partial_state=True)


def autocast_for(precision: str, device: torch.device) -> Callable[[], Any]:
    """An autocast context factory for inference outside an Accelerator."""
    if precision == "auto":
        precision = "bf16" if bf16_supported(device) else "fp32"
    if precision == "fp32":
        return nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


def peak_memory() -> dict[str, float]:
    """This process's peak resident memory in MB (``peak_rss_mb``) and, on a GPU, the peak
    memory torch allocated there (``peak_gpu_mb``)."""
    import resource

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out
