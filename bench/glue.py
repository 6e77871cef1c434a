"""Benchmark: nlptune on full GLUE tasks with its example configs (SST-2, MRPC, RTE, STS-B).

Each task trains with its shipped config (configs/text_classification/minilm_full.yaml and
configs/sentence_pair/minilm_{full,rte,stsb}.yaml) and only the data folder, model, epochs and
output folder overridden, then reports the task's GLUE metric on the dev split:
SST-2 accuracy, MRPC F1 (class 1), RTE accuracy, STS-B Pearson. This is an accuracy benchmark,
not a speed comparison (see text_classification.py for that).

    HF_HUB_OFFLINE=1 python bench/glue.py                           # all four, the configs' epochs
    HF_HUB_OFFLINE=1 python bench/glue.py --tasks mrpc,rte --epochs 3

Writes a table to stdout and JSON to ``--out`` (default bench/results/glue.json).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TASKS = {
    "sst2": ("configs/text_classification/minilm_full.yaml", "accuracy"),
    "mrpc": ("configs/sentence_pair/minilm_full.yaml", "f1"),
    "rte": ("configs/sentence_pair/minilm_rte.yaml", "accuracy"),
    "stsb": ("configs/sentence_pair/minilm_stsb.yaml", "pearson"),
}


def run_task(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import nlptune

    config, metric = TASKS[name]
    overrides = [
        f"data.train={args.data_dir / name / 'train.tsv'}",
        f"data.dev={args.data_dir / name / 'dev.tsv'}",
        f"output_dir={work / name}",
        "trainer.progress=false",
    ]
    if args.model:
        overrides.append(f"backbone.path={args.model}")
    epochs = args.epochs_for.get(name, args.epochs)
    if epochs:
        overrides.append(f"trainer.epochs={epochs}")
    started = time.perf_counter()
    result = nlptune.train(REPO / config, overrides, overwrite=True)
    resolved = nlptune.load_config(REPO / config, overrides)
    return {
        "config": config,
        "metric": metric,
        "value": result.metrics["dev"][metric],
        "dev": result.metrics["dev"],
        "epochs": resolved.trainer.epochs,
        "train_seconds": result.metrics["train_seconds"],
        "train_examples_per_s": result.metrics["train_examples_per_s"],
        "best_step": result.metrics["best_step"],
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"{'task':6} {'metric':9} {'dev':>7} {'epochs':>6} {'train_s':>8} {'ex/s':>7} {'best@':>6}"
    ]
    for name, r in results.items():
        lines.append(
            f"{name:6} {r['metric']:9} {100 * r['value']:7.2f} {r['epochs']:6g} "
            f"{r['train_seconds']:8.1f} {r['train_examples_per_s']:7.1f} {r['best_step']:6d}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="sst2,mrpc,rte,stsb")
    parser.add_argument("--epochs", type=float, default=None, help="override every config's epochs")
    parser.add_argument("--sst2-epochs", type=float, default=None, help="epochs for SST-2 only")
    parser.add_argument("--model", default=None, help="model folder (default: the configs')")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--device-note", default="")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "glue.json")
    args = parser.parse_args()
    args.epochs_for = {"sst2": args.sst2_epochs} if args.sst2_epochs else {}
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="nlptune-glue-") as tmp:
        for name in args.tasks.split(","):
            results[name] = run_task(name, args, Path(tmp))
            print(f"[{name}] {results[name]['metric']} {results[name]['value']:.4f}", flush=True)
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": args.device_note, "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
