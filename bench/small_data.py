"""Benchmark: how many optimizer steps a small labelled data set needs (trainer.min_steps).

MiniLM fine-tuned on small seeded slices, as a new user would: the example configs with only
``data.train`` pointed at the slice, for one epoch (what a short run does), three epochs (the
``trainer.epochs`` default) and with ``trainer.min_steps`` raising the step count:

  SST-2      1,000 sentences  (configs/text_classification/minilm_full.yaml; dev accuracy)
  CoNLL-2003   478 sentences  (configs/sequence_labelling/minilm_full.yaml; dev entity F1)

    HF_HUB_OFFLINE=1 python bench/small_data.py [--seeds 1] [--steps 0,100,200,300]

Each run is its own ``nlptune train`` process (1 thread; ``--workers`` at once), evaluated on
the full dev set once, at the end. Prints a table and writes JSON (finished cells are kept and
skipped when the script runs again). A run whose dev predictions are all one class (or all
``O``) is marked "degenerate", as nlptune's warning says.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transfer import REPO, nlptune, sample, units  # noqa: E402

SLICES = {
    "sst2": ("configs/text_classification/minilm_full.yaml", 1000, "accuracy"),
    "conll": ("configs/sequence_labelling/minilm_full.yaml", 478, "f1"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1")
    parser.add_argument(
        "--steps", default="e1,e3,100,200,300", help="e1/e3: 1 or 3 epochs; N: min_steps=N"
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "nlptune-bench-small"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "small_data.json"))
    args = parser.parse_args()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    done: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    jobs = []
    for task, (config, size, _) in SLICES.items():
        fraction = size / len(units(task)[1])
        for seed in (int(s) for s in args.seeds.split(",")):
            data, n = sample(task, fraction, seed, work)
            for steps in args.steps.split(","):
                cell = f"{task}/{steps}/{seed}"
                if cell in done:
                    continue
                if steps.startswith("e"):
                    how = [f"trainer.epochs={steps[1:]}", "trainer.min_steps=0"]
                else:
                    how = ["trainer.epochs=1", f"trainer.min_steps={steps}"]
                folder = work / "runs" / cell.replace("/", "-")
                overrides = [config, f"data.train={data}", f"seed={seed}", *how]
                overrides += ["trainer.eval_every=100000", f"output_dir={folder}", "--overwrite"]
                jobs.append((cell, task, steps, seed, n, overrides))

    def one(job: tuple[str, str, str, int, int, list[str]]) -> None:
        cell, task, steps, seed, n, overrides = job
        metrics = nlptune(overrides, threads=1)
        row = {"task": task, "steps_setting": steps, "seed": seed, "examples": n, **metrics}
        row["degenerate"] = any("has not learnt the task" in w for w in row.get("warnings", []))
        print(f"{cell}: {metrics.get('dev', {}).get(SLICES[task][2])} {metrics.get('error', '')}")
        if "error" not in metrics:
            done[cell] = row
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(done, indent=1) + "\n")

    with ThreadPoolExecutor(max(1, args.workers)) as pool:
        list(pool.map(one, jobs))
    print(f"{'task':6} {'examples':>8} {'setting':>8} {'steps':>6} {'metric':9} {'value':>7}")
    for row in done.values():
        metric = SLICES[row["task"]][2]
        print(
            f"{row['task']:6} {row['examples']:>8} {row['steps_setting']:>8} {row['steps']:>6} "
            f"{metric:9} {100 * row['dev'][metric]:>7.2f}"
            + ("  degenerate" if row["degenerate"] else "")
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
