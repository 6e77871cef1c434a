"""Benchmark: sequence labelling and word senses with MiniLM on ../shared/data.

Runs the shipped configs (strategy full unless the run name says otherwise), each for
``--epochs`` epochs, and reports the task's main numbers and the time per epoch:

  conll_softmax  CoNLL-2003 train -> valid, entity F1 (softmax head)
  conll_crf      the same with the CRF head
  conll_frozen   CoNLL-2003, strategy frozen        conll_last2   strategy last_k (k=2)
  wnut17         WNUT-17 train -> dev, entity F1
  ud_pos         UD English-EWT train -> dev, UPOS accuracy
  streusle       STREUSLE train -> dev, supersense accuracy (full label, role, function)
  semeval        SemEval-2007 train, 10 % held out per preposition, accuracy

    HF_HUB_OFFLINE=1 python bench/tagging.py --epochs 1
    HF_HUB_OFFLINE=1 python bench/tagging.py --runs conll_softmax,conll_crf --epochs 3

Writes a table and JSON (``--out``, default bench/results/tagging.json).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RUNS = {
    "conll_softmax": ("configs/sequence_labelling/minilm_full.yaml", ["f1"]),
    "conll_crf": ("configs/sequence_labelling/minilm_crf.yaml", ["f1"]),
    "conll_frozen": ("configs/sequence_labelling/minilm_frozen.yaml", ["f1"]),
    "conll_last2": ("configs/sequence_labelling/minilm_last2.yaml", ["f1"]),
    "wnut17": ("configs/sequence_labelling/minilm_wnut17.yaml", ["f1"]),
    "ud_pos": ("configs/sequence_labelling/minilm_pos.yaml", ["accuracy"]),
    "streusle": (
        "configs/word_sense/minilm_full.yaml",
        ["accuracy", "role_accuracy", "function_accuracy"],
    ),
    "semeval": ("configs/word_sense/minilm_semeval.yaml", ["accuracy", "macro_f1"]),
}


def run(name: str, epochs: float | None, work: Path) -> dict[str, Any]:
    import nlptune

    config, keys = RUNS[name]
    overrides = [f"output_dir={work / name}", "trainer.progress=false"]
    if epochs:
        overrides.append(f"trainer.epochs={epochs}")
    result = nlptune.train(REPO / config, overrides, overwrite=True)
    m = result.metrics
    epochs_done = max(m["epochs_done"], 1)
    return {
        "config": config,
        **{k: m["dev"][k] for k in keys},
        "dev": m["dev"],
        "epochs": epochs_done,
        "train_seconds": m["train_seconds"],
        "seconds_per_epoch": round(m["train_seconds"] / epochs_done, 1),
        "examples_per_s": m["train_examples_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--epochs", type=float, default=None, help="override the configs' epochs")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "tagging.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nlptune-tagging-") as tmp:
        for name in args.runs.split(","):
            results[name] = run(name, args.epochs, Path(tmp))
            shown = {
                k: round(v, 4)
                for k, v in results[name].items()
                if k in ("f1", "accuracy", "role_accuracy", "function_accuracy", "macro_f1")
            }
            print(f"[{name}] {shown} {results[name]['seconds_per_epoch']} s/epoch", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))
    print(f"{'run':14} {'metric':>28} {'s/epoch':>8} {'ex/s':>7}")
    for name, r in results.items():
        main_keys = RUNS[name][1]
        shown = " ".join(f"{k}={100 * r[k]:.2f}" for k in main_keys)
        print(f"{name:14} {shown:>28} {r['seconds_per_epoch']:8.1f} {r['examples_per_s']:7.1f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
