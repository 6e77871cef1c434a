"""`nlptune predict` streams a file a chunk at a time: the output is the same bytes whatever the
chunk size, a bad record in a later chunk still ends in one `error:` line naming file and line
with no half-written output, and memory stays flat as the file grows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import nlptune
from nlptune import cli

from ..conftest import FIXTURES, REPO
from ..tasks.test_contract import _config

TASKS = ("text_classification", "sequence_labelling", "extractive_qa")


@pytest.fixture(scope="module")
def runs(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for task in TASKS:
        run = tmp_path_factory.mktemp(task) / "run"
        config = _config(task, "hf_encoder", tiny_bert, run)
        config["trainer"].update(max_steps=2, eval_every=2)
        nlptune.train(config)
        out[task] = run
    return out


def _text_lines(path: Path) -> Path:
    """40 sentences of many lengths (so that sorted batches differ with the chunk)."""
    words = [
        line.split("\t")[0]
        for line in (FIXTURES / "sentiment_train.tsv").read_text().splitlines()[1:]
    ]
    lines = [" ".join(words[i % len(words)] for i in range(n, n + 1 + n % 5)) for n in range(40)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _squad_lines(path: Path) -> Path:
    """The SQuAD fixture's questions as JSON Lines of {id, question, context}."""
    data = json.loads((FIXTURES / "squad_v1_dev.json").read_text())["data"]
    rows = [
        {"id": q["id"], "question": q["question"], "context": p["context"]}
        for a in data
        for p in a["paragraphs"]
        for q in p["qas"]
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


CASES = [  # task, input, --format
    ("text_classification", "lines.txt", "jsonl"),
    ("sequence_labelling", "ner_dev.conll", "conll"),
    ("sequence_labelling", "ner_dev.conll", "jsonl"),
    ("extractive_qa", "squad_v1_dev.json", "squad"),
    ("extractive_qa", "squad.jsonl", "jsonl"),
]


@pytest.mark.parametrize(("task", "name", "fmt"), CASES)
def test_the_output_is_the_same_bytes_whatever_the_chunk(
    task: str, name: str, fmt: str, runs: dict[str, Path], tmp_path: Path
) -> None:
    if name == "lines.txt":
        source = _text_lines(tmp_path / name)
    elif name == "squad.jsonl":
        source = _squad_lines(tmp_path / name)
    else:
        source = FIXTURES / name
    written = {}
    # one input a batch: the same arithmetic for every record whatever the chunk, so the
    # bytes compare (with larger batches the batch composition moves the scores' last digits)
    for chunk in ("7", "1000"):
        out = tmp_path / f"out{chunk}.{fmt}"
        argv = ["predict", str(runs[task]), "--input", str(source), "--output", str(out)]
        assert cli.main([*argv, "--format", fmt, "--chunk", chunk, "--batch-size", "1"]) == 0
        written[chunk] = out.read_bytes()
    assert written["7"] == written["1000"]
    records = len(written["7"].decode().splitlines())
    assert fmt != "jsonl" or records >= 30  # every record, not just one chunk's
    # batches of 4 sorted by length within chunks of 7: the same predictions
    predictor = nlptune.Predictor.from_dir(runs[task], batch_size=4)
    small = list(predictor.stream_file(str(source), buffer=7))
    whole = list(predictor.stream_file(str(source), buffer=1000))
    assert [_decision(r) for r in small] == [_decision(r) for r in whole]
    for a, b in zip(small, whole, strict=True):
        assert a.get("score", 0.0) == pytest.approx(b.get("score", 0.0), abs=1e-5)


def _decision(row: dict[str, object]) -> object:
    """What a record's prediction decides (no scores): its label, tags or answer span."""
    keys = ("id", "label", "tags", "answer", "start", "end", "error")
    return {k: row[k] for k in keys if k in row}


def test_a_bad_line_in_a_later_chunk_fails_whole(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    lines = [json.dumps({"text": f"a good film number {i}"}) for i in range(60)]
    lines[44] = "{not json"  # line 45: the 7th chunk of 7
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    argv = ["predict", str(runs["text_classification"]), "--input", str(source)]
    argv += ["--output", str(out), "--chunk", "7", "--batch-size", "2"]
    capsys.readouterr()
    assert cli.main([*argv, "--strict"]) == 2
    err = capsys.readouterr().err
    errors = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {source}:45: not valid JSON")
    assert not out.exists() and os.listdir(tmp_path) == ["in.jsonl"]  # nothing half-written
    out.write_text("kept\n")
    assert cli.main([*argv, "--strict"]) == 2
    assert out.read_text() == "kept\n" and sorted(os.listdir(tmp_path)) == ["in.jsonl", "out.jsonl"]
    # without --strict: the bad record in its place, every other one predicted
    assert cli.main(argv) == 1
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 60 and [i for i, r in enumerate(rows) if "error" in r] == [44]
    assert rows[44]["line"] == 45


def test_memory_stays_flat_as_the_file_grows(runs: dict[str, Path], tmp_path: Path) -> None:
    """In one child process, the peak RSS after predicting 4,000 lines and then 40,000 (chunks
    of 512) barely moves: 10x the input, not 10x the memory (one chunk for the whole file grows
    by about 100 MB here)."""
    sizes = (4_000, 40_000)
    for lines in sizes:
        (tmp_path / f"in{lines}.txt").write_text(
            "a good film\nthe plot was dull and long\n" * (lines // 2)
        )
    code = f"""
import resource, sys
from nlptune import cli
for lines in {sizes}:
    argv = ["predict", {str(runs["text_classification"])!r}, "--batch-size", "128"]
    argv += ["--chunk", "512"]
    argv += ["--input", f"{tmp_path}/in{{lines}}.txt", "--output", f"{tmp_path}/out{{lines}}.jsonl"]
    assert cli.main(argv) == 0
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    small, large = (int(x) for x in done.stdout.split()[-2:])
    for lines in sizes:
        with open(tmp_path / f"out{lines}.jsonl", "rb") as f:
            assert sum(1 for _ in f) == lines
    print(f"peak RSS: {small} KiB after 4,000 lines, {large} KiB after 40,000 more")
    assert large - small < 12_000, (small, large)  # KiB


@pytest.mark.parametrize(("value", "said"), [("0", "must be at least 1"), ("x", "not a whole")])
def test_a_bad_chunk_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, said: str
) -> None:
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit) as stop:
        cli.main(["predict", str(tmp_path), "--input", str(tmp_path / "in.txt"),
                  "--output", str(out), "--chunk", value])  # fmt: skip
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "argument --chunk" in err and said in err
    assert not out.exists()
