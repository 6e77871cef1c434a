"""Benchmark: which strategy wins, with `nlptune compare` (issue: LoRA, gradual unfreezing).

MiniLM (all-MiniLM-L6-v2) on two tasks, five strategies (full, frozen, last_k with k=2, lora,
gradual), three seeds each, through `nlptune compare` itself:

  sst2   SST-2, a seeded 8,000-example subset of train -> dev (accuracy);
         configs/text_classification/minilm_full.yaml
  conll  CoNLL-2003 train -> valid (entity F1); configs/sequence_labelling/minilm_full.yaml

    HF_HUB_OFFLINE=1 python bench/compare.py                       # both tasks (about 1 h here)
    HF_HUB_OFFLINE=1 python bench/compare.py --tasks sst2 --seeds 1 --epochs 1

`nlptune compare` reuses finished runs, so a stopped benchmark continues where it stopped.
Each task's table and plot are copied to bench/results/compare_<task>.{json,md} and
bench/figures/compare_<task>.png, and the whole printed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
STRATEGIES = "full,frozen,last_k,lora,gradual"
TASKS: dict[str, dict[str, Any]] = {
    "sst2": {
        "config": "configs/text_classification/minilm_full.yaml",
        "dev": DATA / "sst2" / "dev.tsv",
        "subset": 8000,
        "epochs": 3,
        # 250 steps an epoch: gradual opens one more layer group every 80 steps (all 8 by 560)
        "extra": ["backbone.max_length=64", "strategy.every_steps=80"],
        "frozen_lr": "1e-3",  # configs/text_classification/minilm_frozen.yaml's rate
    },
    "conll": {
        "config": "configs/sequence_labelling/minilm_full.yaml",
        "dev": DATA / "conll2003" / "valid.txt",
        "subset": None,
        "epochs": 1,
        # 439 steps an epoch: one more layer group every 50 steps (all 8 by 400)
        "extra": ["strategy.every_steps=50"],
        "frozen_lr": "1e-3",  # configs/sequence_labelling/minilm_frozen.yaml's rate
    },
}


def sst2_subset(size: int, seed: int, work: Path) -> Path:
    """A seeded sample of SST-2's training rows (the header kept)."""
    lines = (DATA / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    rows = random.Random(seed).sample(lines[1:], size)
    path = work / f"sst2-train-{size}.tsv"
    path.write_text("\n".join([lines[0], *rows]) + "\n", encoding="utf-8")
    return path


def _compare(spec: dict[str, Any], train: Path, out: Path, args: argparse.Namespace, *extra: str):
    command = [
        sys.executable,
        "-m",
        "nlptune",
        "compare",
        spec["config"],
        f"data.train={train}",
        f"data.dev={spec['dev']}",
        f"trainer.epochs={args.epochs or spec['epochs']}",
        "trainer.min_steps=0",
        "strategy.type=gradual",  # the base config's strategy keys are gradual's (every_steps);
        # each combination keeps the keys its strategy takes
        *spec["extra"],
        *extra,
        "--seeds",
        str(args.seeds),
        "-o",
        str(out),
    ]
    print("+", " ".join(command), flush=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(command, cwd=REPO, env=env, check=True)
    report: dict[str, Any] = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    return report


def run_task(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every strategy at the config's learning rate, then frozen again at the rate its own
    config uses (a head alone wants a far higher rate than full fine-tuning); one table."""
    from nlptune.compare_table import draw, markdown

    spec = TASKS[name]
    if spec["subset"]:
        train = sst2_subset(spec["subset"], 0, work)
    else:
        train = DATA / "conll2003" / "train.txt"
    report = _compare(spec, train, work / f"compare-{name}", args, "--strategies", args.strategies)
    if "frozen" in args.strategies.split(","):
        lr = spec["frozen_lr"]
        extra = _compare(
            spec,
            train,
            work / f"compare-{name}-frozen",
            args,
            f"trainer.lr={lr}",
            "--strategies",
            "frozen",
        )
        for row in extra["table"]:
            row["combination"] = f"frozen (lr {lr})"
        report["table"] += extra["table"]
        report["runs"] += extra["runs"]
    results = REPO / "bench" / "results"
    figures = REPO / "bench" / "figures"
    results.mkdir(exist_ok=True)
    figures.mkdir(exist_ok=True)
    (results / f"compare_{name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (results / f"compare_{name}.md").write_text(markdown(report["table"]))
    draw(report["table"], figures / f"compare_{name}.png")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="sst2,conll", help="sst2,conll")
    parser.add_argument("--strategies", default=STRATEGIES)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="override each task's epochs")
    parser.add_argument("--work", default=str(REPO / "bench" / "work"), help="run folders")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    for name in args.tasks.split(","):
        if name not in TASKS:
            parser.error(f"--tasks: unknown task {name!r} (sst2, conll)")
        run_task(name, args, work)
        print((REPO / "bench" / "results" / f"compare_{name}.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
