"""Benchmark: how much labelled data pre-training saves (the seed's central claim, measured).

MiniLM (all-MiniLM-L6-v2) fine-tuned on seeded samples of the labelled training data, three ways:

  pretrained  the checkpoint as published
  random      the same architecture and tokenizer with fresh weights  (backbone.init=random)
  adapted     the checkpoint after continued masked-LM pre-training on the task's unlabelled
              training text (configs/masked_lm/minilm_full.yaml; labels ignored)

on SST-2 (accuracy on dev; configs/text_classification/minilm_full.yaml) at 1 %, 10 % and 30 %
of the training set, and CoNLL-2003 NER (entity F1 on valid; configs/sequence_labelling/
minilm_crf.yaml) at 1 % and 10 %, over three seeds (the seed also draws the sample, the same one
for all three ways). Only ``backbone`` keys differ between the ways.

    HF_HUB_OFFLINE=1 python bench/transfer.py                      # everything (hours on 2 cores)
    HF_HUB_OFFLINE=1 python bench/transfer.py --tasks sst2 --fractions 0.01 --seeds 1
    HF_HUB_OFFLINE=1 python bench/transfer.py --report             # table and plot of what is done

Finished cells are kept in the JSON (``--out``) and skipped when the script runs again, so it
can run in parts. The adaptation runs (one per task, in ``--work``) are reused the same way and
resume from their checkpoint when stopped. Each fine-tuning run is its own ``nlptune train``
process with one thread; ``--workers`` run at once. Writes a table, JSON and a PNG of the main
metric against the number of labelled examples (log x).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TASKS: dict[str, dict[str, Any]] = {
    "sst2": {
        "config": "configs/text_classification/minilm_full.yaml",
        "train": DATA / "sst2" / "train.tsv",
        "metric": "accuracy",
        "fractions": "0.01,0.1,0.3",
        # more passes over small samples: 1 %: 10 epochs (220 steps), 10 %: 2, 30 %: 1
        "epochs": {0.01: 10, 0.1: 2, 0.3: 1, 1.0: 1},
        "adapt_epochs": 3,
        "overrides": [],
    },
    "conll": {
        "config": "configs/sequence_labelling/minilm_crf.yaml",
        "train": DATA / "conll2003" / "train.txt",
        "metric": "f1",
        "fractions": "0.01,0.1",
        "epochs": {0.01: 30, 0.1: 5, 0.3: 3, 1.0: 3},
        "adapt_epochs": 5,
        "overrides": ["trainer.eval_samples=1000"],
    },
}
WAYS = ("pretrained", "random", "adapted")


def units(task: str) -> tuple[str, list[str], str]:
    """The training file as (header, units, separator): TSV rows or CoNLL sentences."""
    text = Path(TASKS[task]["train"]).read_text(encoding="utf-8")
    if task == "conll":
        blocks = [b for b in text.split("\n\n") if b.strip() and not b.startswith("-DOCSTART-")]
        return "", blocks, "\n\n"
    lines = text.splitlines()
    return lines[0] + "\n", lines[1:], "\n"


def sample(task: str, fraction: float, seed: int, folder: Path) -> tuple[Path, int]:
    """A sample of the labelled training data, drawn by ``seed`` (shared by the three ways)."""
    head, items, sep = units(task)
    picked = random.Random(1000 + seed).sample(items, max(1, round(fraction * len(items))))
    out = folder / f"{task}-{fraction}-{seed}.{'txt' if task == 'conll' else 'tsv'}"
    if not out.is_file():
        out.write_text(head + sep.join(picked) + "\n", encoding="utf-8")
    return out, len(picked)


def unlabelled(task: str, folder: Path) -> tuple[str, list[str]]:
    """The task's training text without labels, as data for masked_lm: SST-2 through its text
    column, CoNLL-2003 as plain text (a sentence a line, a blank line between documents)."""
    if task == "sst2":
        return str(TASKS[task]["train"]), ["data.text=sentence"]
    out = folder / "conll-train-text.txt"
    if not out.is_file():
        lines = []
        for block in Path(TASKS[task]["train"]).read_text(encoding="utf-8").split("\n\n"):
            if block.startswith("-DOCSTART-"):
                lines.append("")  # a document break
            elif block.strip():
                lines.append(" ".join(row.split()[0] for row in block.splitlines() if row.strip()))
        out.write_text("\n".join(lines).strip() + "\n", encoding="utf-8")
    return str(out), ["data.text=text"]


def nlptune(args: list[str], threads: int) -> dict[str, Any]:
    """Run ``nlptune train`` in its own process; its metrics (the last stdout line)."""
    cmd = [sys.executable, "-m", "nlptune", "train", *args]
    cmd += ["trainer.progress=false", "trainer.tensorboard=false", f"trainer.num_threads={threads}"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-3:], "cmd": cmd}
    metrics: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    metrics["process_seconds"] = round(time.perf_counter() - started, 1)
    metrics["warnings"] = [w for w in done.stderr.splitlines() if w.startswith("warning:")]
    return metrics


def adapt(task: str, work: Path, epochs: float, threads: int) -> tuple[Path, dict[str, Any]]:
    """Continued MLM pre-training of MiniLM on the task's unlabelled training text (reused
    when finished, resumed when stopped)."""
    out = work / f"adapt-{task}"
    if (out / "meta.json").is_file():
        return out / "model", json.loads((out / "metrics.json").read_text())
    text, columns = unlabelled(task, work)
    args = ["configs/masked_lm/minilm_full.yaml", f"data.train={text}", *columns]
    args += [f"trainer.epochs={epochs}", f"output_dir={out}"]
    if (out / "checkpoints").is_dir():
        args.append("--resume")
    print(f"adapting MiniLM to {task} text ({epochs} epochs) -> {out}", flush=True)
    metrics = nlptune(args, threads)
    if "error" in metrics:
        raise SystemExit(f"adaptation failed: {metrics['error']}")
    return out / "model", metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="sst2,conll")
    parser.add_argument("--ways", default=",".join(WAYS))
    parser.add_argument("--fractions", help="override every task's fractions, e.g. 0.01,0.1")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--workers", type=int, default=2, help="fine-tuning runs at once")
    parser.add_argument("--adapt-threads", type=int, default=2, help="threads of an adaptation")
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "nlptune-bench-transfer"))
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "transfer.json"))
    parser.add_argument("--plot", default=str(REPO / "bench" / "figures" / "transfer.png"))
    parser.add_argument("--report", action="store_true", help="only print and plot what is done")
    args = parser.parse_args()
    out, work = Path(args.out), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    saved = json.loads(out.read_text()) if out.is_file() else {}
    runs: dict[str, dict[str, Any]] = {
        r["cell"]: r for r in saved.get("runs", []) if "error" not in r
    }
    adapted: dict[str, Any] = saved.get("adaptation", {})
    lock = threading.Lock()

    def write() -> None:
        # Several invocations (for example one per way) may share --out: merge what the others
        # wrote since, under a lock, then replace the file in one step.
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out.with_name(out.name + ".lock"), "w") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            if out.is_file():
                theirs = json.loads(out.read_text())
                for row in theirs.get("runs", []):
                    runs.setdefault(row["cell"], row)
                for task, info in theirs.get("adaptation", {}).items():
                    adapted.setdefault(task, info)
            table = summarise(list(runs.values()))
            body = {
                "summary": table,
                "adaptation": adapted,
                "runs": sorted(runs.values(), key=_order),
            }
            temporary = out.with_name(out.name + ".tmp")
            temporary.write_text(json.dumps(body, indent=1) + "\n")
            os.replace(temporary, out)

    jobs = [] if args.report else plan(args, runs, work, adapted, write)

    def one(job: tuple[str, dict[str, Any]]) -> None:
        cell, spec = job
        metrics = nlptune(spec.pop("args"), threads=1)
        row = {"cell": cell, **spec, **metrics}
        value = metrics.get("dev", {}).get(TASKS[spec["task"]]["metric"])
        print(f"{cell}: {value} {metrics.get('error', '')}", flush=True)
        with lock:
            if "error" not in metrics:
                runs[cell] = row
                write()

    with ThreadPoolExecutor(max(1, args.workers)) as pool:
        list(pool.map(one, jobs))
    write()
    table = summarise(list(runs.values()))
    print_table(table, adapted)
    plot(table, Path(args.plot))
    print(f"wrote {out} and {args.plot}")


def plan(
    args: argparse.Namespace,
    runs: dict[str, dict[str, Any]],
    work: Path,
    adapted: dict[str, Any],
    write: Any,
) -> list[tuple[str, dict[str, Any]]]:
    """The cells still to run; adapts the backbone first where an ``adapted`` cell needs it."""
    jobs = []
    for task in args.tasks.split(","):
        spec = TASKS[task]
        ways = args.ways.split(",")
        model = None
        if "adapted" in ways:
            model, metrics = adapt(task, work, spec["adapt_epochs"], threads=args.adapt_threads)
            adapted[task] = {"model": str(model), "epochs": spec["adapt_epochs"], **metrics}
            write()
        for fraction in (float(f) for f in (args.fractions or spec["fractions"]).split(",")):
            for seed in (int(s) for s in args.seeds.split(",")):
                data, n = sample(task, fraction, seed, work)
                for way in ways:
                    cell = f"{task}/{fraction}/{way}/{seed}"
                    if cell in runs:
                        continue
                    backbone = {
                        "pretrained": [],
                        "random": ["backbone.init=random"],
                        "adapted": [f"backbone.path={model}"],
                    }[way]
                    folder = work / "runs" / cell.replace("/", "-")
                    overrides = [spec["config"], f"data.train={data}", f"seed={seed}"]
                    epochs = spec["epochs"][fraction]
                    per_epoch = -(-n // 32)  # batch size 32 in both configs
                    every = max(per_epoch, epochs * per_epoch // 5)  # about 5 evaluations
                    overrides += [f"trainer.epochs={epochs}", f"trainer.eval_every={every}"]
                    overrides += ["trainer.min_steps=0"]  # the epochs above, as measured
                    overrides += backbone
                    overrides += [*spec["overrides"], f"output_dir={folder}", "--overwrite"]
                    job = {"task": task, "fraction": fraction, "way": way, "seed": seed}
                    jobs.append((cell, {**job, "examples": n, "args": overrides}))
    return jobs


def _order(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["task"], row["fraction"], WAYS.index(row["way"]), row["seed"])


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for r in sorted(rows, key=_order):
        groups.setdefault((r["task"], r["fraction"], r["way"]), []).append(r)
    table = []
    for (task, fraction, way), members in groups.items():
        values = [r["dev"][TASKS[task]["metric"]] for r in members]
        table.append(
            {
                "task": task,
                "fraction": fraction,
                "examples": members[0]["examples"],
                "way": way,
                "metric": TASKS[task]["metric"],
                "mean": round(statistics.mean(values), 4),
                "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
                "n": len(values),
                "steps": members[0].get("steps"),
                "train_seconds": round(statistics.mean(r["train_seconds"] for r in members), 1),
            }
        )
    return table


def print_table(table: list[dict[str, Any]], adapted: dict[str, Any]) -> None:
    print(f"{'task':6} {'data':>5} {'examples':>8} {'way':11} {'metric':9} {'mean':>7} {'std':>6}"
          f" {'n':>2} {'steps':>6} {'train s':>8}")  # fmt: skip
    for r in table:
        print(
            f"{r['task']:6} {100 * r['fraction']:>4.0f}% {r['examples']:>8} {r['way']:11} "
            f"{r['metric']:9} {100 * r['mean']:>7.2f} {100 * r['std']:>6.2f} {r['n']:>2} "
            f"{r['steps']!s:>6} {r['train_seconds']:>8}"
        )
    for task, info in adapted.items():
        dev = info.get("dev", {})
        print(
            f"adaptation {task}: {info.get('steps')} steps, {info.get('train_seconds')} s, "
            f"dev perplexity {dev.get('perplexity')}"
        )


def plot(table: list[dict[str, Any]], path: Path) -> None:
    """Main metric (mean +- std over seeds) against labelled examples, log x, one panel a task."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot")
        return
    tasks = sorted({r["task"] for r in table}, key=list(TASKS).index)
    if not tasks:
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(5.5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for way in WAYS:
            rows = sorted((r for r in table if r["task"] == task and r["way"] == way),
                          key=lambda r: r["examples"])  # fmt: skip
            if rows:
                ax.errorbar(
                    [r["examples"] for r in rows],
                    [100 * r["mean"] for r in rows],
                    yerr=[100 * r["std"] for r in rows],
                    marker="o",
                    capsize=3,
                    label=way,
                )
        ax.set_xscale("log")
        ax.set_xlabel("labelled training examples" + (" (sentences)" if task == "conll" else ""))
        ax.set_ylabel(f"dev {TASKS[task]['metric']} (%)")
        ax.set_title({"sst2": "SST-2, MiniLM", "conll": "CoNLL-2003 NER, MiniLM + CRF"}[task])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
