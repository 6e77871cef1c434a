"""Benchmark: text-to-text with encoder-decoders warm-started from MiniLM, against the same
architecture from random weights, on the same step budget.

Runs (each in its own subprocess):

  mt-warm     Multi30k en->de (../shared/data/multi30k, train -> val), bert2bert from
              all-MiniLM-L6-v2 (configs/text_to_text/minilm_bert2bert_full.yaml)
  mt-scratch  the same architecture and settings, every weight random
  qa-warm     generative SQuAD v1.1 (question + context -> answer), bert2bert from MiniLM
              (configs/text_to_text/minilm_bert2bert_squad.yaml), EM/F1
  qa-scratch  the same from random weights
  mt-ckpt     (with --seq2seq PATH) Multi30k with a pre-trained seq2seq checkpoint (T5, BART...)

Each reports dev BLEU/chrF (sacreBLEU, with signatures) or EM/F1 on the whole dev set, training
time, and the dev curve on the ``trainer.eval_samples`` sample (a PNG of BLEU against steps for
warm vs scratch). For mt-warm it also times generation over the dev set: nlptune's
length-sorted, batched predict against a plain ``model.generate`` loop over unsorted batches of
the same size (sentences/s), and checks that both give the same text.

    HF_HUB_OFFLINE=1 python bench/text_to_text.py --steps 250 --qa-steps 120 --evals 3

Writes a table, JSON (``--out``, default bench/results/text_to_text.json) and
bench/results/text_to_text_bleu.png.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CONFIGS = {
    "mt": REPO / "configs/text_to_text/minilm_bert2bert_full.yaml",
    "qa": REPO / "configs/text_to_text/minilm_bert2bert_squad.yaml",
}


def random_copy(dest: Path) -> Path:
    """all-MiniLM-L6-v2's architecture and tokenizer with freshly initialised weights."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from nlptune.backbones.hf_paths import resolve_model_path

    source = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(source)).save_pretrained(dest)
    AutoTokenizer.from_pretrained(source).save_pretrained(dest)
    return dest


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import nlptune

    task, init = spec["variant"].split("-")
    work = Path(spec["work"])
    overrides = [
        f"output_dir={work}/run",
        f"trainer.max_steps={spec['steps']}",
        f"trainer.eval_every={spec['eval_every']}",
        "trainer.progress=false",
        "trainer.tensorboard=false",
        f"trainer.eval_samples={spec['eval_samples']}",
        f"seed={spec['seed']}",
    ]
    if task == "mt":
        overrides += [
            f"data.train={spec['data']}/multi30k/train",
            f"data.dev={spec['data']}/multi30k/val",
        ]
    else:
        overrides += [
            f"data.train={spec['data']}/squad/squad-v1.1-train.json",
            f"data.dev={spec['data']}/squad/squad-v1.1-dev.json",
        ]
    if init == "scratch":
        overrides.append(f"backbone.path={random_copy(work / 'random_minilm')}")
    elif init == "ckpt":
        overrides += [f"backbone.path={spec['checkpoint']}", "task.lowercase=false"]
    started = time.perf_counter()
    metrics = nlptune.train(CONFIGS[task], overrides, overwrite=True).metrics
    out: dict[str, Any] = {
        "steps": metrics["steps"],
        "train_seconds": metrics["train_seconds"],
        "train_examples_per_s": metrics["train_examples_per_s"],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "dev": metrics["dev"],
        "curve": [
            (e["step"], e.get("bleu"), e.get("f1"))
            for e in map(json.loads, (work / "run" / "train_log.jsonl").read_text().splitlines())
            if e.get("event") == "eval"
        ],
    }
    if spec["variant"] == "mt-warm":
        out["generation"] = generation_speed(work / "run", Path(spec["data"]) / "multi30k")
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return out


def generation_speed(folder: Path, data: Path, rounds: int = 2) -> dict[str, Any]:
    """Dev-set generation: nlptune's predict (length-sorted batches) vs a plain generate loop
    over unsorted batches of the same size, same model, same generation config; the two
    alternate ``rounds`` times and the best time of each counts."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from nlptune.predict import Predictor

    with gzip.open(data / "val.en.gz", "rt", encoding="utf-8") as f:
        sources = [line.strip() for line in f]
    predictor = Predictor.from_dir(folder)
    batch = predictor.batch_size
    model = AutoModelForSeq2SeqLM.from_pretrained(folder / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(folder / "model")

    def plain_loop() -> list[str]:
        out: list[str] = []
        with torch.inference_mode():
            for i in range(0, len(sources), batch):
                enc = tokenizer(
                    sources[i : i + batch],
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=predictor.config.backbone.max_length,
                )
                out += tokenizer.batch_decode(model.generate(**enc), skip_special_tokens=True)
        return out

    times: dict[str, list[float]] = {"plain": [], "ours": []}
    for _ in range(rounds):
        t = time.perf_counter()
        plain = plain_loop()
        times["plain"].append(time.perf_counter() - t)
        t = time.perf_counter()
        ours = [p["generated_text"] for p in predictor.predict(sources)]
        times["ours"].append(time.perf_counter() - t)
    ours_s, plain_s = min(times["ours"]), min(times["plain"])
    same = sum(a == b.strip() for a, b in zip(ours, plain, strict=True))
    return {
        "sentences": len(sources),
        "batch_size": batch,
        "nlptune_sentences_per_s": round(len(sources) / ours_s, 2),
        "plain_generate_sentences_per_s": round(len(sources) / plain_s, 2),
        "speedup": round(plain_s / ours_s, 2),
        "identical_outputs": same,
        "seconds": times,
    }


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, task, metric, index in ((axes[0], "mt", "BLEU", 1), (axes[1], "qa", "F1", 2)):
        for name, r in results.items():
            if name.startswith(task) and isinstance(r, dict) and r.get("curve"):
                steps = [c[0] for c in r["curve"]]
                values = [c[index] for c in r["curve"]]
                ax.plot(steps, values, marker="o", label=name)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel(f"dev {metric} (eval sample)")
        ax.set_title("Multi30k en->de" if task == "mt" else "generative SQuAD v1.1")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="mt-warm,mt-scratch,qa-warm,qa-scratch")
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps for mt runs")
    parser.add_argument("--qa-steps", type=int, default=300, help="optimizer steps for qa runs")
    parser.add_argument("--evals", type=int, default=4, help="dev evaluations per run")
    parser.add_argument("--eval-samples", type=int, default=200, help="dev sample while training")
    parser.add_argument("--seq2seq", default=None, help="a pre-trained seq2seq checkpoint path")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/text_to_text.json")
    parser.add_argument(
        "--generation-run", type=Path, help="only time generation with this finished mt run"
    )
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generation_run:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        print(json.dumps(generation_speed(args.generation_run, args.data_dir / "multi30k")))
        return
    if args.worker:
        spec = json.loads(args.worker.read_text())
        args.worker.with_suffix(".out.json").write_text(json.dumps(run(spec)))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    variants = [v for v in args.variants.split(",") if v] + (["mt-ckpt"] if args.seq2seq else [])
    results: dict[str, Any] = {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nlptune-t2t-") as tmp:
        for variant in variants:
            work = Path(tmp) / variant
            work.mkdir()
            steps = args.steps if variant.startswith("mt") else args.qa_steps
            spec = {
                "variant": variant,
                "steps": steps,
                "eval_every": max(1, steps // args.evals),
                "seed": args.seed,
                "eval_samples": args.eval_samples,
                "work": str(work),
                "data": str(args.data_dir.resolve()),
                "checkpoint": args.seq2seq,
            }
            (work / "spec.json").write_text(json.dumps(spec))
            print(f"[{variant}] {steps} steps ...", flush=True)
            with open(args.out.with_suffix(f".{variant}.log"), "w") as f:
                subprocess.run(
                    [sys.executable, __file__, "--worker", str(work / "spec.json")],
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    check=True,
                    cwd=REPO,
                )
            results[variant] = json.loads((work / "spec.out.json").read_text())
            print(f"[{variant}] {json.dumps(results[variant])}", flush=True)
            args.out.write_text(json.dumps(results, indent=2))
    plot(results, args.out.with_name("text_to_text_bleu.png"))
    print(
        f"{'variant':11} {'steps':>5} {'train_s':>8} {'ex/s':>6} {'BLEU':>6} {'chrF':>6} "
        f"{'EM':>6} {'F1':>6}"
    )
    for name, r in results.items():
        d = r["dev"]
        print(
            f"{name:11} {r['steps']:5} {r['train_seconds']:8.1f} {r['train_examples_per_s']:6.1f} "
            f"{d['bleu']:6.2f} {d['chrf']:6.2f} {d.get('exact', float('nan')):6.2f} "
            f"{d.get('f1', float('nan')):6.2f}"
        )
    gen = results.get("mt-warm", {}).get("generation")
    if gen:
        print(
            f"generation over {gen['sentences']} dev sentences, batch {gen['batch_size']}: "
            f"nlptune {gen['nlptune_sentences_per_s']}/s, plain generate "
            f"{gen['plain_generate_sentences_per_s']}/s ({gen['speedup']}x), identical "
            f"{gen['identical_outputs']}/{gen['sentences']}"
        )
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
