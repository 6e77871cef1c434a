"""Benchmark: prediction over real files (streamed, errors in place) against predicting the whole
file in one piece, as `nlptune predict` did before.

1. SemEval-2007 prepositions: a MiniLM word-sense model (configs/word_sense/minilm_semeval.yaml,
   ``--semeval-steps`` steps: the count matters here, not the accuracy) predicts every instance of
   the XML files in ``--semeval-input`` (default: the training set's Source folder, the test set
   not being here) through the XML reader, ids kept; counts written / failed (empty ``<head>``
   instances fail in place) and the key file in the scorer's format.
2. A large file: ``--lines`` lines of SST-2 sentences (cycled) through a text-classification run,
   streamed (4,096 records at a time) and in one piece (the whole file featurized and sorted at
   once, as before); peak RSS and lines/s, each in its own process.
3. Throughput on ``--minilm-lines`` lines with a MiniLM SST-2 model: streamed against one piece.

    HF_HUB_OFFLINE=1 python bench/predict_files.py

Writes a table and JSON (``--out``, default bench/results/predict_files.json).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

CHILD = """
import json, resource, sys, time
from nlptune.predict import Predictor
from nlptune.inputs import records
run, path, out, mode, batch = sys.argv[1:6]
p = Predictor.from_dir(run, batch_size=int(batch))
started = time.perf_counter()
rows = 0
failed = 0
with open(out, "w") as f:
    if mode == "stream":
        it = p.stream_file(path)
    else:  # one piece: every record featurized, sorted and predicted at once (the old path)
        recs = list(records(p.task, path))
        it = p.predict_records(recs, buffer=len(recs) + 1)
    for row in it:
        rows += 1
        failed += "error" in row
        f.write(json.dumps(row) + "\\n")
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": rows, "failed": failed, "seconds": seconds, "peak_rss_mb": peak / 1024}))
"""


def run(cmd: list[str], threads: int = 2) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd[:4])}... failed:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr


def train(config: str, overrides: list[str], out: Path) -> Path:
    if not (out / "meta.json").is_file():
        run([sys.executable, "-m", "nlptune", "train", config, *overrides, f"output_dir={out}",
             "trainer.progress=false", "trainer.tensorboard=false", "--overwrite"])  # fmt: skip
    return out


def predict(run_dir: Path, path: Path, mode: str, batch: int, out: Path) -> dict[str, Any]:
    result = run([sys.executable, "-c", CHILD, str(run_dir), str(path), str(out), mode, str(batch)])
    line = [x for x in result.splitlines() if x.startswith("{")][-1]
    stats: dict[str, Any] = json.loads(line)
    stats["lines_per_s"] = round(stats["rows"] / stats["seconds"], 1)
    return stats


def tiny_bert(work: Path) -> Path:
    """A 2-layer BERT (hidden 32) with MiniLM's tokenizer: model cost next to nothing, so the
    large file measures what prediction itself holds and does."""
    folder = work / "tiny-bert"
    if not (folder / "config.json").is_file():
        from transformers import AutoTokenizer, BertConfig, BertModel

        from nlptune.backbones.packaged import resolve_packaged

        source = resolve_packaged("sentence-transformers/all-MiniLM-L6-v2")
        tokenizer = AutoTokenizer.from_pretrained(str(source))
        config = BertConfig(
            vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=64, max_position_embeddings=512,
        )  # fmt: skip
        BertModel(config).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=str(Path.home() / ".cache" / "nlptune-bench-predict"))
    parser.add_argument("--semeval-steps", type=int, default=30)
    parser.add_argument(
        "--semeval-input", default=str(DATA / "semeval2007_prepositions" / "Train" / "Source")
    )
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--minilm-lines", type=int, default=10_000)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "predict_files.json"))
    parser.add_argument("--cases", default="semeval,large_file,minilm")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="nlptune-bench-predict-"))
    results: dict[str, Any] = {}

    out = Path(args.out)
    if out.is_file():  # cases not run this time keep their last results
        results.update(json.loads(out.read_text()))
    cases = args.cases.split(",")
    if "semeval" in cases:
        results["semeval"] = semeval_case(args, work, tmp)
        print("semeval:", results["semeval"], flush=True)
    sentences = [
        line.split("\t")[0]
        for line in (DATA / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    ]
    models = {
        "large_file": lambda: (tiny(work), args.lines, 1024),
        "minilm": lambda: (sst2_model(work), args.minilm_lines, 64),
    }
    for name in ("large_file", "minilm"):
        if name not in cases:
            continue
        model, lines, batch = models[name]()
        path = tmp / f"{name}.txt"
        path.write_text("\n".join(itertools.islice(itertools.cycle(sentences), lines)) + "\n")
        results[name] = {
            mode: predict(model, path, mode, batch, tmp / f"{name}-{mode}.jsonl")
            for mode in ("stream", "one_piece")
        }
        results[name]["lines"] = lines
        s, o = results[name]["stream"], results[name]["one_piece"]
        results[name]["speed_ratio"] = round(s["lines_per_s"] / o["lines_per_s"], 3)
        print(name, results[name], flush=True)
    report(results, out)


def semeval_case(args: argparse.Namespace, work: Path, tmp: Path) -> dict[str, Any]:
    """SemEval-2007 through the XML reader, ids kept, key file written."""
    semeval = train(
        "configs/word_sense/minilm_semeval.yaml",
        [f"trainer.max_steps={args.semeval_steps}", "trainer.eval_samples=200"],
        work / "semeval",
    )
    key = tmp / "key.txt"
    started = time.perf_counter()
    log = run([sys.executable, "-m", "nlptune", "predict", str(semeval), "--input",
               args.semeval_input, "--format", "semeval", "--output", str(key)])  # fmt: skip
    cli_seconds = time.perf_counter() - started
    summary = [x for x in log.splitlines() if x.startswith("predicted")]
    rows = predict(semeval, Path(args.semeval_input), "stream", 64, tmp / "semeval.jsonl")
    with open(tmp / "semeval.jsonl") as f:
        ids = sum(1 for line in f if json.loads(line).get("id"))
    return {
        "input": args.semeval_input,
        "records": rows["rows"],
        "failed": rows["failed"],
        "with_id": ids,
        "key_lines": len(key.read_text().splitlines()),
        "summary": summary[-1] if summary else None,
        "cli_seconds": round(cli_seconds, 1),
        "lines_per_s": rows["lines_per_s"],
    }


def sst2_model(work: Path) -> Path:
    return train(
        "configs/text_classification/minilm_full.yaml",
        ["trainer.max_steps=30", "data.dev=null"],
        work / "sst2",
    )


def tiny(work: Path) -> Path:
    return train(
        "configs/text_classification/minilm_full.yaml",
        ["trainer.max_steps=2", "data.dev=null", f"backbone.path={tiny_bert(work)}"],
        work / "sst2-tiny",
    )


def report(results: dict[str, Any], out: Path) -> None:
    print(f"\n{'case':12} {'mode':10} {'lines':>8} {'lines/s':>9} {'peak RSS MB':>12}")
    for name in ("large_file", "minilm"):
        for mode in ("stream", "one_piece"):
            r = results[name][mode]
            print(f"{name:12} {mode:10} {r['rows']:>8} {r['lines_per_s']:>9} "
                  f"{r['peak_rss_mb']:>12.0f}")  # fmt: skip
    sem = results["semeval"]
    print(f"semeval: {sem['records']} records, {sem['failed']} failed, {sem['with_id']} with ids, "
          f"{sem['key_lines']} key lines")  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
