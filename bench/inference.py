"""Benchmark: nlptune's Predictor against transformers' ``pipeline()`` (or the plain batched loop a
user would write where ``pipeline()`` lacks the task) on the same saved model, on CPU.

Four tasks, a quick MiniLM (all-MiniLM-L6-v2) model each, trained once and cached under
``bench/work/inference/`` (the SST-2 and CoNLL-2003 runs of ``bench/compare.py`` are reused when
``bench/work/compare-*/full-seed1`` holds them):

- ``text_classification``: SST-2 dev (872 sentences); ``pipeline("text-classification")``.
- ``token_classification``: CoNLL-2003 valid (3,250 sentences, given as words);
  ``pipeline("token-classification", is_split_into_words=True)``, each word tagged with its
  first subword's tag (nlptune's rule; the pipeline's ``aggregation_strategy="first"`` would
  split words such as ``ex-England`` at punctuation); tag sequences compared per sentence.
- ``extractive_qa``: the first ``--qa-questions`` (500) questions of SQuAD v1.1 dev. transformers
  5 has no question-answering pipeline, so the other side is a plain loop: the fast tokenizer
  with the run's max_length / doc_stride (overflowing windows), AutoModelForQuestionAnswering,
  32 questions a batch in input order, the best span (start <= end, at most max_answer_length
  tokens, inside the context) over every window; answers compared as strings.
- ``word_sense``: STREUSLE 4.7.1 dev targets. No pipeline either (the head pools the target's
  subwords): a plain loop over the same loaded network, 32 examples a batch in input order,
  ``is_split_into_words`` tokenization, the target mask from ``word_ids()``, and the task's own
  per-lemma candidate restriction; senses compared.

``pipeline()`` runs at its default (one input at a time) and with ``batch_size=--batch`` (32),
the faster counting; the plain loops use batches of ``--batch``. nlptune runs at the run's
evaluation batch, length-sorted. After a short warm-up the sides take turns, ``--repeat``
(3) times, the best time of each counting (the load of a shared machine moves), in one
process with
``torch.set_num_threads(--threads)`` (2). Both sides run fp32; nlptune also runs under bf16
autocast where the CPU supports it, reported with how many predictions flip against fp32.

    HF_HUB_OFFLINE=1 python bench/inference.py                 # trains what is missing first
    HF_HUB_OFFLINE=1 python bench/inference.py --quick         # a small subset of each
    HF_HUB_OFFLINE=1 python bench/inference.py --tasks text_classification,extractive_qa

Prints a table and writes JSON (``--out``, default bench/results/inference.json).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from machine import cpu_name

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
WORK = REPO / "bench" / "work"
TASKS = ("text_classification", "token_classification", "extractive_qa", "word_sense")
MINILM = "sentence-transformers/all-MiniLM-L6-v2"

# per task: a reusable run, and the config + overrides that train one when it is missing
TRAIN: dict[str, tuple[Path, str, list[str]]] = {
    "text_classification": (
        WORK / "compare-sst2" / "full-seed1",
        "configs/text_classification/minilm_full.yaml",
        ["trainer.max_steps=300", "backbone.max_length=64"],
    ),
    "token_classification": (
        WORK / "compare-conll" / "full-seed1",
        "configs/sequence_labelling/minilm_full.yaml",
        ["trainer.max_steps=300"],
    ),
    "extractive_qa": (
        WORK / "inference" / "qa",
        "configs/extractive_qa/minilm_full.yaml",
        [
            "trainer.max_steps=20",
            "trainer.batch_size=16",
            "backbone.max_length=256",
            "task.doc_stride=64",
        ],
    ),
    "word_sense": (
        WORK / "inference" / "word_sense",
        "configs/word_sense/minilm_full.yaml",
        ["trainer.max_steps=25"],
    ),
}


def run_dir(task: str) -> Path:
    """The task's trained run: reused when saved, else trained (a few minutes on CPU)."""
    reuse, config, overrides = TRAIN[task]
    if (reuse / "meta.json").is_file():
        return reuse
    out = WORK / "inference" / task
    if not (out / "meta.json").is_file():
        print(f"training {task} into {out} ...", file=sys.stderr, flush=True)
        cmd = [sys.executable, "-m", "nlptune", "train", config, *overrides]
        cmd += [f"output_dir={out}", "trainer.progress=false", "trainer.eval_samples=64"]
        cmd += ["trainer.report_to=[]", "seed=1", "--overwrite"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        subprocess.run(cmd, cwd=REPO, env=env, check=True)
    return out


# -- data --------------------------------------------------------------------------------------
def sst2(limit: int | None) -> list[str]:
    with open(DATA / "sst2" / "dev.tsv", encoding="utf-8") as f:
        rows = [r["sentence"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    return rows[:limit]


def conll(limit: int | None) -> list[list[str]]:
    sentences: list[list[str]] = []
    words: list[str] = []
    with open(DATA / "conll2003" / "valid.txt", encoding="utf-8") as f:
        for line in [*f, ""]:
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if words:
                    sentences.append(words)
                words = []
                continue
            words.append(fields[0])
    return sentences[:limit]


def squad(limit: int | None) -> list[dict[str, str]]:
    with open(DATA / "squad" / "squad-v1.1-dev.json", encoding="utf-8") as f:
        data = json.load(f)["data"]
    rows = [
        {"id": q["id"], "question": q["question"], "context": p["context"]}
        for a in data
        for p in a["paragraphs"]
        for q in p["qas"]
    ]
    return rows[:limit]


def streusle(predictor: Any, limit: int | None) -> list[Any]:
    path = DATA / "streusle" / "streusle.ud_dev.conllulex"
    examples = [e for e in predictor.task.read(str(path), labelled=False) if hasattr(e, "words")]
    return examples[:limit]


# -- the other side ----------------------------------------------------------------------------
def hf_text_classification(model_dir: Path, texts: list[str], batch: int) -> list[str]:
    from transformers import pipeline

    pipe = pipeline("text-classification", model=str(model_dir), device="cpu", dtype="float32")
    return [r["label"] for r in pipe(texts, batch_size=batch)]


def hf_token_classification(model_dir: Path, sentences: list[list[str]], batch: int) -> list[Any]:
    """Word tags from the pipeline's token predictions: each word gets its first subword's tag
    (nlptune's rule; the pipeline's own aggregation would split words such as ``ex-England``
    at punctuation, which word-level CoNLL input never does)."""
    from transformers import pipeline

    pipe = pipeline("token-classification", model=str(model_dir), device="cpu", dtype="float32")
    out = []
    tokens = pipe(sentences, batch_size=batch, is_split_into_words=True)
    for words, found in zip(sentences, tokens, strict=True):
        by_start = {}
        for t in found:  # tokens tagged other than O, with offsets in the joined sentence
            by_start.setdefault(t["start"], t["entity"])
        tags, pos = [], 0
        for w in words:  # each word's first character in the words joined by spaces
            tags.append(by_start.get(pos, "O"))
            pos += len(w) + 1
        out.append(tags)
    return out


def hf_question_answering(
    model_dir: Path, rows: list[dict[str, str]], batch: int, config: Any, task: Any
) -> list[str]:
    import numpy as np
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForQuestionAnswering.from_pretrained(str(model_dir)).eval()
    max_len, stride = config.backbone.max_length, task.doc_stride
    longest = task.max_answer_length
    answers = []
    with torch.inference_mode():
        for i in range(0, len(rows), batch):
            part = rows[i : i + batch]
            enc = tokenizer(
                [r["question"] for r in part],
                [r["context"] for r in part],
                truncation="only_second",
                max_length=max_len,
                stride=stride,
                return_overflowing_tokens=True,
                return_offsets_mapping=True,
                padding=True,
                return_tensors="pt",
            )
            owner = enc.pop("overflow_to_sample_mapping").tolist()
            offsets = enc.pop("offset_mapping").numpy()
            out = model(**enc)
            starts, ends = out.start_logits.numpy(), out.end_logits.numpy()
            best: dict[int, tuple[float, str]] = {}
            for w, q in enumerate(owner):
                context = np.array([s == 1 for s in enc.sequence_ids(w)])
                s_log = np.where(context, starts[w], -np.inf)
                e_log = np.where(context, ends[w], -np.inf)
                score = s_log[:, None] + e_log[None, :]
                t = np.arange(len(s_log))
                allowed = (t[None, :] >= t[:, None]) & (t[None, :] - t[:, None] < longest)
                score = np.where(allowed, score, -np.inf)
                s, e = np.unravel_index(int(score.argmax()), score.shape)
                value = float(score[s, e])
                text = part[q]["context"][offsets[w][s][0] : offsets[w][e][1]]
                if q not in best or value > best[q][0]:
                    best[q] = (value, text)
            answers.extend(best[q][1] for q in range(len(part)))
    return answers


def hf_word_sense(predictor: Any, examples: list[Any], batch: int) -> list[str]:
    """A plain loop over the same network: input order, fixed batches, no length sorting."""
    import numpy as np
    import torch

    tokenizer = predictor.text.tokenizer
    task, model = predictor.task, predictor.model
    senses: list[str] = []
    with torch.inference_mode():
        for i in range(0, len(examples), batch):
            part = examples[i : i + batch]
            enc = tokenizer(
                [list(e.words) for e in part],
                is_split_into_words=True,
                truncation=True,
                max_length=predictor.config.backbone.max_length,
                padding=True,
                return_tensors="pt",
            )
            mask = torch.zeros_like(enc["input_ids"])
            for row, e in enumerate(part):
                target = set(e.target)
                for t, w in enumerate(enc.word_ids(row)):
                    mask[row, t] = int(w is not None and w in target)
            logits = model(**enc, target_mask=mask)["logits"].float().numpy()
            logits = task._restrict(logits, part)
            senses.extend(task.labels[int(j)] for j in np.argmax(logits, axis=1))
    return senses


# -- measuring ---------------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def agree(a: Sequence[Any], b: Sequence[Any]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / max(len(a), 1)


def bench_task(
    task: str, limit: int | None, qa_limit: int, batch: int, bf16: bool, repeat: int
) -> dict:
    import torch

    from nlptune.predict import Predictor
    from nlptune.training.runtime import autocast_for

    run = run_dir(task)
    predictor = Predictor.from_dir(run, device="cpu")
    model_dir = run / "model"
    cpu = torch.device("cpu")
    if task == "text_classification":
        inputs: list[Any] = sst2(limit)
        mine = lambda rows: [r["label"] for r in rows]  # noqa: E731
        theirs = lambda n, b: hf_text_classification(model_dir, inputs[:n], b)  # noqa: E731
        baseline, unit = "pipeline('text-classification')", "sentences"
    elif task == "token_classification":
        sentences = conll(limit)
        inputs = [{"words": w} for w in sentences]
        mine = lambda rows: [r["tags"] for r in rows]  # noqa: E731
        theirs = lambda n, b: hf_token_classification(model_dir, sentences[:n], b)  # noqa: E731
        baseline = "pipeline('token-classification', is_split_into_words=True)"
        unit = "sentences"
    elif task == "extractive_qa":
        inputs = squad(qa_limit if limit is None else min(limit, qa_limit))
        mine = lambda rows: [r["answer"] for r in rows]  # noqa: E731
        config, qa = predictor.config, predictor.task
        theirs = lambda n, b: hf_question_answering(model_dir, inputs[:n], b, config, qa)  # noqa: E731
        baseline, unit = "plain loop (AutoModelForQuestionAnswering, batch 32)", "questions"
    else:
        inputs = streusle(predictor, limit)
        mine = lambda rows: [r["label"] for r in rows]  # noqa: E731
        theirs = lambda n, b: hf_word_sense(predictor, inputs[:n], b)  # noqa: E731
        baseline, unit = "plain loop (same network, batch 32)", "targets"
    warm = min(16, len(inputs))
    fp32, low_precision = autocast_for("fp32", cpu), autocast_for("bf16", cpu)
    for context in (fp32, low_precision) if bf16 else (fp32,):
        predictor.autocast = context
        predictor.predict(inputs[:warm])
    # pipeline(): its default (one input at a time) and batches of ``batch``, the faster
    # counting; the plain loops: batches of ``batch``
    sizes = (1, batch) if baseline.startswith("pipeline") else (batch,)
    theirs(warm, batch)
    n = len(inputs)
    best: dict[str, float] = {}
    outputs: dict[str, Any] = {}

    def measure(name: str, fn: Callable[[], Any]) -> None:
        got, took = timed(fn)
        outputs[name] = got
        best[name] = min(best.get(name, float("inf")), took)

    def ours() -> Any:
        return mine(predictor.predict(inputs))

    for _ in range(repeat):  # interleaved, best of each: a shared machine's load moves
        predictor.autocast = fp32
        measure("nlptune", ours)
        for size in sizes:
            measure(f"batch {size}", lambda size=size: theirs(n, size))
        if bf16:
            predictor.autocast = low_precision
            measure("nlptune bf16", ours)
    faster = min(sizes, key=lambda size: best[f"batch {size}"])
    seconds, other_seconds = best["nlptune"], best[f"batch {faster}"]
    mine_out, other = outputs["nlptune"], outputs[f"batch {faster}"]
    result: dict[str, Any] = {
        "task": task,
        "run": str(run.relative_to(REPO)) if run.is_relative_to(REPO) else str(run),
        "unit": unit,
        "examples": n,
        "baseline": baseline,
        "repeat": repeat,
        "nlptune_batch": predictor.batch_size,
        "nlptune_per_s": round(n / seconds, 1),
        "baseline_per_s": round(n / other_seconds, 1),
        "baseline_per_s_by_batch": {s: round(n / best[f"batch {s}"], 1) for s in sizes},
        "speedup": round(other_seconds / seconds, 2),
        "identical": round(agree(mine_out, other), 5),
        "differ": sum(x != y for x, y in zip(mine_out, other, strict=True)),
    }
    if bf16:
        low, low_seconds = outputs["nlptune bf16"], best["nlptune bf16"]
        result.update(
            nlptune_bf16_per_s=round(n / low_seconds, 1),
            speedup_bf16=round(other_seconds / low_seconds, 2),
            bf16_flips_vs_fp32=sum(x != y for x, y in zip(mine_out, low, strict=True)),
            bf16_identical_to_baseline=round(agree(low, other), 5),
        )
    return result


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| task | examples | nlptune fp32 /s | baseline /s | speed-up | identical "
        "| nlptune bf16 /s | bf16 speed-up | bf16 flips |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r['task']} | {r['examples']:,} {r['unit']} | {r['nlptune_per_s']:,} "
            f"| {r['baseline_per_s']:,} | {r['speedup']}x | {100 * r['identical']:.2f} % "
            f"({r['differ']} differ) | {r.get('nlptune_bf16_per_s', '-')} "
            f"| {r.get('speedup_bf16', '-')}{'x' if 'speedup_bf16' in r else ''} "
            f"| {r.get('bf16_flips_vs_fp32', '-')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"some of {', '.join(TASKS)}")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 64 examples a task")
    parser.add_argument("--limit", type=int, help="at most this many examples a task")
    parser.add_argument("--qa-questions", type=int, default=500)
    parser.add_argument(
        "--repeat", type=int, default=3, help="interleaved runs a side; the best counts"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32, help="the baseline's batch size")
    parser.add_argument("--no-bf16", action="store_true", help="skip nlptune's bf16 run")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "inference.json"))
    args = parser.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        parser.error(f"--tasks: unknown {', '.join(unknown)} (choose from {', '.join(TASKS)})")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    from nlptune.training.runtime import bf16_supported

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    bf16 = not args.no_bf16 and bf16_supported(torch.device("cpu"))
    limit = 64 if args.quick else args.limit
    results = []
    for task in tasks:
        result = bench_task(task, limit, args.qa_questions, args.batch, bf16, args.repeat)
        print(json.dumps(result), flush=True)
        results.append(result)
    print(table(results))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "threads": args.threads,
        "quick": args.quick,
        "cpu": cpu_name(),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "results": results,
    }
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
