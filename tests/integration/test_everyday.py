"""Everyday use through the CLI and the Python API: --version, plain ``list`` output, progress
off a terminal, trainer.min_steps and honest warnings, integer and fractional numbers, resume
wall time, the API's messages, predict --keep / ids / --format json, tagging raw text with
offsets and scores, the offline fast-fail, experiment trackers and the model card."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import nlptune
from nlptune import cli

from ..conftest import FIXTURES, REPO, tiny_config

TEXT = "Peter Blackburn lives in Paris, France."
# words the NER fixture tags (POS/NEG spans): a sentence that surely has entities
TAGGED = "The acting was very excellent, but the ending was terrible."


def _write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _ner(model: Path, out: Path, task: dict[str, Any] | None = None, **trainer: Any) -> dict:
    config = tiny_config(
        model,
        out,
        task={"type": "sequence_labelling", **(task or {})},
        trainer={"epochs": 6, "lr": 3e-3, **trainer},
    )
    config["data"] = {
        "train": str(FIXTURES / "ner_train.conll"),
        "dev": str(FIXTURES / "ner_dev.conll"),
        "tag_column": 3,
    }
    return config


@contextlib.contextmanager
def _module_env(factory: pytest.TempPathFactory, **env: str) -> Iterator[None]:
    """What the autouse feature-cache fixture does, for module-scoped runs (and ``env``)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NLPTUNE_CACHE", str(factory.getbasetemp() / "nlptune_cache"))
        for key, value in env.items():
            mp.setenv(key, value)
        yield


@pytest.fixture(scope="module")
def cls_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One sentiment run through ``nlptune train``, progress on, stderr not a terminal, a plain
    progress line at every update; tensorboard on (the default)."""
    root = tmp_path_factory.mktemp("cls")
    config = tiny_config(
        tiny_bert,
        root / "run",
        trainer={"epochs": 1, "eval_batch_size": 8, "progress": True, "tensorboard": True},
    )
    out, err = io.StringIO(), io.StringIO()
    with (
        _module_env(tmp_path_factory, NLPTUNE_PROGRESS_SECONDS="0"),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        code = cli.main(["train", str(_write(root / "run.yaml", config))])
    assert code == 0, err.getvalue()
    metrics = json.loads(out.getvalue().strip().splitlines()[-1])
    return {"run": root / "run", "err": err.getvalue(), "metrics": metrics}


@pytest.fixture(scope="module")
def ner_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ner") / "run"
    with _module_env(tmp_path_factory):
        nlptune.train(_ner(tiny_bert, out))
    return out


@pytest.fixture(scope="module")
def crf_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crf") / "run"
    with _module_env(tmp_path_factory):
        nlptune.train(_ner(tiny_bert, out, {"crf": True, "word_split": "whitespace"}))
    return out


# --- 1, 2: --version and nlptune list ----------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"nlptune {nlptune.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", nlptune.__version__)


def _cells(line: str) -> list[tuple[int, str]]:
    """A listed line's cells (separated by two or more spaces) with where each starts."""
    return [(m.start(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", line)]


def test_list_keys_is_plain_aligned_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "keys"]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert len(lines) > 50
    assert "``" not in text and ":class:" not in text and ":meth:" not in text
    from nlptune.config import iter_keys

    keys = [k for k, _, _, _ in iter_keys()]
    starts = [line for line in lines if not line.startswith(" ")]
    assert [line.split()[0] for line in starts] == keys  # every key, one row each
    type_at = {_cells(line)[1][0] for line in starts if len(line.split()[0]) < 32}
    assert len(type_at) == 1, type_at  # the type column starts at one offset
    (type_at_,) = type_at
    assert type_at_ == max(len(k) for k in keys) + 2
    # defaults: one column (under it on the next line where the type was too wide), YAML
    defaults: dict[str, str] = {}
    default_at = set()
    for i, line in enumerate(lines):
        if line.startswith(" "):
            continue
        cells = _cells(line)
        if len(cells) >= 3:
            at, cell = cells[2]
        else:  # a wide type: the default starts the next line
            at, cell = _cells(lines[i + 1])[0]
        default_at.add(at)
        defaults[cells[0][1]] = cell
    assert len(default_at) == 1, default_at
    for key, shown in defaults.items():
        assert not re.search(r"\b(None|True|False)\b", shown), (key, shown)
    assert defaults["task.metric"] == "null"
    assert defaults["trainer.progress"] == "true"
    assert defaults["trainer.keep_checkpoints"] == "false"
    assert defaults["trainer.min_steps"] == "300"
    assert defaults["trainer.report_to"] == "[tensorboard]"


def test_list_tasks_is_plain(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "tasks"]) == 0
    text = capsys.readouterr().out
    assert "sequence_labelling" in text and "text_classification" in text
    assert "``" not in text and not re.search(r":[a-z]+:`", text) and "`" not in text
    lines = text.splitlines()
    doc_at = {_cells(line)[1][0] for line in lines}
    assert len(doc_at) == 1  # the descriptions start in one column


def test_list_keys_into_a_closed_pipe_ends_quietly() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for reader in ("head -1", "true"):
        done = subprocess.run(
            f"set -o pipefail; '{sys.executable}' -m nlptune list keys | {reader}",
            shell=True,
            executable="/bin/bash",
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
        assert "Exception ignored" not in done.stderr
        if reader == "head -1":
            assert done.stdout.startswith("task.type ") and done.stdout.count("\n") == 1


# --- 3: progress --------------------------------------------------------------------------------


def test_progress_off_a_terminal_is_plain_lines(cls_run: dict[str, Any]) -> None:
    err = cls_run["err"]
    assert "\r" not in err
    steps = re.findall(r"^training: step (\d+) of 12 \((\d+)%\)", err, flags=re.M)
    assert len(steps) >= 5
    assert all(round(100 * int(n) / 12) == int(p) for n, p in steps)
    assert [int(n) for n, _ in steps] == sorted(int(n) for n, _ in steps)
    assert re.search(r"^training: step \d+ of 12 .* left", err, flags=re.M)
    assert re.search(r"^evaluating dev: example (8|16) of 24 \(\d+%\)", err, flags=re.M)
    assert "Writing model shards" not in err  # transformers' save bar stays quiet
    assert "done: dev accuracy" in err


def test_evaluate_shows_progress_off_a_terminal(
    cls_run: dict[str, Any], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NLPTUNE_PROGRESS_SECONDS", "0")
    data = FIXTURES / "sentiment_dev.tsv"
    assert cli.main(["evaluate", str(cls_run["run"]), "--data", str(data)]) == 0
    captured = capsys.readouterr()
    assert re.search(r"^evaluating sentiment_dev\.tsv: example \d+ of 24", captured.err, re.M)
    assert "\r" not in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1]) == pytest.approx(
        cls_run["metrics"]["dev"], abs=1e-6
    )


# --- 4: min_steps and the short-run warning -----------------------------------------------------


def test_min_steps_adds_epochs_and_says_so(
    tiny_bert: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NLPTUNE_PROGRESS_SECONDS", "0")
    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, trainer={"epochs": 1, "min_steps": 30})
    assert cli.main(["train", str(_write(tmp_path / "run.yaml", config))]) == 0
    captured = capsys.readouterr()
    metrics = json.loads(captured.out.strip().splitlines()[-1])
    assert metrics["steps"] == 30
    assert metrics["epochs_done"] == pytest.approx(2.5)
    assert "trainer.min_steps=30" in captured.err and "training 30 steps" in captured.err
    assert "warning: this run makes only 30 optimizer steps" in captured.err
    # trainer.progress=false: no progress lines, even with a line asked for every update
    assert "training: step" not in captured.err and "evaluating dev:" not in captured.err
    # trainer.tensorboard=false: no event files
    assert not (out / "tensorboard").exists()


def test_max_steps_overrides_min_steps_and_stops_mid_epoch(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tiny_config(tiny_bert, tmp_path / "run", trainer={"max_steps": 5, "min_steps": 30})
    with caplog.at_level("INFO", logger="nlptune"):
        result = nlptune.train(config)
    assert result.metrics["steps"] == 5
    assert "trainer.min_steps=30" not in caplog.text
    assert "warning: this run makes only 5 optimizer steps" in caplog.text
    assert result.metrics["epochs_done"] == pytest.approx(5 / 12, abs=1e-4)  # 12 steps an epoch
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["epochs_done"] == pytest.approx(5 / 12, abs=1e-4)


def test_short_run_warned_and_whole_epochs(cls_run: dict[str, Any]) -> None:
    assert (
        "warning: this run makes only 12 optimizer steps (96 examples, batch 8)" in (cls_run["err"])
    )
    assert cls_run["metrics"]["steps"] == 12 and cls_run["metrics"]["epochs_done"] == 1.0


# --- 5: degenerate predictions ---------------------------------------------------------------


def test_one_class_predictions_are_warned(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tiny_config(tiny_bert, tmp_path / "run", trainer={"lr": 1e-9, "max_steps": 3})
    with caplog.at_level("INFO", logger="nlptune"):
        nlptune.train(config)
    warnings = [r.getMessage() for r in caplog.records if "has not learnt the task" in r.message]
    assert len(warnings) == 1, caplog.text
    assert warnings[0].startswith("warning: on the dev set, the model predicts '")
    assert "for all 24 examples" in warnings[0] and "trainer.lr" in warnings[0]


def test_all_o_tagging_is_warned_and_words_scored_is_an_integer(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    config = _ner(tiny_bert, out, lr=1e-9, max_steps=3)
    with caplog.at_level("INFO", logger="nlptune"):
        result = nlptune.train(config)
    assert "warning: on the dev set, the model tags every word 'O'" in caplog.text
    scored = result.metrics["dev"]["words_scored"]
    assert isinstance(scored, int) and not isinstance(scored, bool) and scored == 234
    saved = json.loads((out / "metrics.json").read_text())["dev"]["words_scored"]
    assert isinstance(saved, int) and saved == 234
    assert '"words_scored": 234,' in (out / "metrics.json").read_text()  # not 234.0
    caplog.clear()
    with caplog.at_level("INFO", logger="nlptune"):
        dev = nlptune.Predictor.from_dir(out).evaluate(str(FIXTURES / "ner_dev.conll"))
    assert isinstance(dev["words_scored"], int)
    assert "ner_dev.conll, the model tags every word 'O'" in caplog.text


def test_a_learnt_task_is_not_warned(ner_run: Path) -> None:
    metrics = json.loads((ner_run / "metrics.json").read_text())
    assert metrics["dev"]["f1"] > 0.3
    assert isinstance(metrics["dev"]["words_scored"], int)


# --- 6: resume: where it resumes, wall time over both processes -------------------------------


def test_resume_says_where_and_wall_seconds_span_both_processes(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, trainer={"epochs": 3, "save_every": 6, "eval_every": 12})

    def stop(state: Any) -> None:
        if state.step == 3:
            time.sleep(1.0)  # time the first process spends before its checkpoint
        if state.step == 6:  # right after the checkpoint of step 6
            raise KeyboardInterrupt

    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        nlptune.train(config, callbacks=[stop])
    first = time.perf_counter() - started
    state = json.loads((out / "checkpoints" / "last" / "state.json").read_text())
    assert state["step"] == 6 and state["wall_seconds"] >= 1.0
    assert state["wall_seconds"] <= first
    with caplog.at_level("INFO", logger="nlptune"):
        started = time.perf_counter()
        result = nlptune.train(config, resume=True)
        second = time.perf_counter() - started
    assert re.search(r"resuming from step 6 of 36\b", caplog.text), caplog.text
    wall = result.metrics["wall_seconds"]
    assert result.metrics["steps"] == 36 and result.metrics["epochs_done"] == 3.0
    assert wall > second  # more than the resumed process alone
    assert wall >= state["wall_seconds"]
    assert wall >= first
    assert wall <= state["wall_seconds"] + second + 0.05
    assert json.loads((out / "metrics.json").read_text())["wall_seconds"] == wall


def test_wall_seconds_count_the_interrupted_process_setup(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: after --resume, wall_seconds "covers every process of the run". The first
    process's featurizing (made slow here, as a large data set's is) is part of it."""
    from nlptune import build

    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, trainer={"epochs": 3, "save_every": 6, "eval_every": 12})
    featurize = build.featurize

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)  # for each split: 1 s of featurizing in all
        return featurize(*args, **kwargs)

    def stop(state: Any) -> None:
        if state.step == 6:  # right after the checkpoint of step 6
            raise KeyboardInterrupt

    monkeypatch.setattr(build, "featurize", slow)
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        nlptune.train(config, callbacks=[stop])
    first = time.perf_counter() - started
    monkeypatch.setattr(build, "featurize", featurize)
    saved = json.loads((out / "checkpoints" / "last" / "state.json").read_text())
    result = nlptune.train(config, resume=True)
    assert saved["wall_seconds"] >= 1.0, saved  # the first process's featurizing counts
    assert result.metrics["wall_seconds"] >= first - 0.25, (result.metrics, first)


# --- 7: nlptune.train() shows its messages where logging is not set up --------------------------


def test_python_api_shows_messages_once(tiny_bert: Path, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "import nlptune\n"
        "from tests.conftest import tiny_config\n"
        "model, out = Path(sys.argv[1]), Path(sys.argv[2])\n"
        "for name in ('a', 'b'):\n"
        "    nlptune.train(tiny_config(model, out / name, trainer={'max_steps': 2}))\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "NLPTUNE_CACHE": str(tmp_path / "cache"),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, str(tiny_bert), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    summaries = re.findall(
        r"^done: dev accuracy [\d.]+ \(best step 2\), 2 steps", done.stderr, re.M
    )
    assert len(summaries) == 2, done.stderr  # each run once: one handler, never two
    assert f"saved to {tmp_path / 'a'}" in done.stderr
    assert "warning: this run makes only 2 optimizer steps" in done.stderr
    assert done.stdout == ""


# --- 8: predict --keep, ids, --format json ----------------------------------------------------


def _predict(capsys: pytest.CaptureFixture[str], run: Path, source: Path, *more: str) -> Any:
    code = cli.main(["predict", str(run), "--input", str(source), *more])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_predict_keep_from_json_lines(
    cls_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    items = [
        {"id": "r1", "text": "a great film", "extra": {"k": [1, 2]}, "label": "pos"},
        {"id": 7, "text": "awful and boring", "extra": "x", "label": "neg"},
        {"text": "the plot", "extra": None},
    ]
    source.write_text("".join(json.dumps(x) + "\n" for x in items))
    code, out, err = _predict(capsys, cls_run["run"], source, "--keep", "extra,label")
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == 3
    assert [r.get("id") for r in rows] == ["r1", "7", None]
    assert [r["extra"] for r in rows] == [{"k": [1, 2]}, "x", None]
    # a kept field named like a prediction field: input_<name>, the prediction as it was
    assert [r["input_label"] for r in rows] == ["pos", "neg", None]
    assert all(r["label"] in ("neg", "pos") and 0 <= r["score"] <= 1 for r in rows)
    # without --keep: the id only
    code, out, _ = _predict(capsys, cls_run["run"], source)
    first = json.loads(out.splitlines()[0])
    assert code == 0 and set(first) == {"id", "label", "score"}


def test_predict_ids_and_keep_from_a_table(
    cls_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tsv = tmp_path / "in.tsv"
    tsv.write_text("id\tsentence\tsource\nt1\ta great film\tweb\nt2\tawful and boring\tbook\n")
    code, out, err = _predict(capsys, cls_run["run"], tsv, "--keep", "source")
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert [(r["id"], r["source"]) for r in rows] == [("t1", "web"), ("t2", "book")]
    csv = tmp_path / "in.csv"
    csv.write_text('id,sentence\nc1,a great film\nc2,"awful, and boring"\n')
    code, out, err = _predict(capsys, cls_run["run"], csv)
    assert code == 0, err
    assert [json.loads(x)["id"] for x in out.splitlines()] == ["c1", "c2"]
    # a column that is not there: named, with the ones that are
    code, out, err = _predict(capsys, cls_run["run"], tsv, "--keep", "source,missing")
    assert code == 2 and out == ""
    assert "--keep missing" in err and "no column 'missing'" in err and "sentence" in err


def test_predict_keep_refused_for_plain_text(
    cls_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    txt = tmp_path / "in.txt"
    txt.write_text("a great film\n")
    code, out, err = _predict(capsys, cls_run["run"], txt, "--keep", "id")
    assert code == 2 and out == ""
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--keep" in errors[0] and "plain text" in errors[0]
    assert "Traceback" not in err
    with pytest.raises(SystemExit) as stop:  # argparse refuses an empty field name
        cli.main(["predict", str(cls_run["run"]), "--input", str(txt), "--keep", "a,,b"])
    assert stop.value.code == 2
    assert "field names separated by commas" in capsys.readouterr().err


def test_predict_format_json_keyed_by_id(
    cls_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    items = [
        {"id": "a", "text": "a great film"},
        {"text": "no id here"},
        {"id": "a", "text": "awful and boring"},
        {"id": "b", "text": "the plot"},
    ]
    source.write_text("".join(json.dumps(x) + "\n" for x in items))
    target = tmp_path / "out.json"
    code, out, err = _predict(
        capsys, cls_run["run"], source, "--format", "json", "--output", str(target)
    )
    assert code == 0, err
    text = target.read_text()
    assert text.count("\n") == 1
    data = json.loads(text)
    assert list(data) == ["a", "record-2", "a#2", "b"]
    assert all(set(v) == {"label", "score"} for v in data.values())  # the id is the key
    assert "1 records repeat an earlier id" in err and "id#2" in err
    lines = [json.loads(x) for x in
             _predict(capsys, cls_run["run"], source)[1].splitlines()]  # fmt: skip
    assert [data[k]["label"] for k in ("a", "record-2", "a#2", "b")] == [r["label"] for r in lines]


# --- 9: tagging raw text ---------------------------------------------------------------------


def _check_row(text: str, row: dict[str, Any]) -> None:
    assert len(row["offsets"]) == len(row["words"]) == len(row["tags"])
    for word, (start, end) in zip(row["words"], row["offsets"], strict=True):
        assert text[start:end] == word
    for ent in row["entities"]:
        assert text[ent["start"] : ent["end"]] == ent["text"]
        assert ent["start"] == row["offsets"][ent["start_word"]][0]
        assert ent["end"] == row["offsets"][ent["end_word"] - 1][1]


def test_tagging_raw_text_ptb_words_offsets_scores(ner_run: Path, tmp_path: Path) -> None:
    predictor = nlptune.Predictor.from_dir(ner_run)
    rows = predictor.predict([TEXT, TAGGED])
    assert rows[0]["words"] == ["Peter", "Blackburn", "lives", "in", "Paris", ",", "France", "."]
    assert rows[1]["words"][3:6] == ["very", "excellent", ","]
    entities = [e for row in rows for e in row["entities"]]
    assert entities, rows  # the trained tagger finds the fixture's entities
    for text, row in zip([TEXT, TAGGED], rows, strict=True):
        _check_row(text, row)
        for ent in row["entities"]:
            assert isinstance(ent["score"], float) and 0.0 <= ent["score"] <= 1.0
    # the same through files: {"text"} in JSON Lines, a sentence a line in .txt
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": "s1", "text": TAGGED}) + "\n")
    (row,) = predictor.stream_file(str(source))
    assert row["id"] == "s1" and row["words"] == rows[1]["words"]
    assert row["entities"] == rows[1]["entities"]
    # a list of words keeps them as given: no offsets into a text
    (given,) = predictor.predict([["Paris,", "France."]])
    assert given["words"] == ["Paris,", "France."] and "offsets" not in given


def test_tagging_raw_text_whitespace_split_with_crf(crf_run: Path) -> None:
    predictor = nlptune.Predictor.from_dir(crf_run)
    rows = predictor.predict([TEXT, TAGGED])
    assert rows[0]["words"] == ["Peter", "Blackburn", "lives", "in", "Paris,", "France."]
    assert "excellent," in rows[1]["words"]
    entities = [e for row in rows for e in row["entities"]]
    assert entities, rows
    for text, row in zip([TEXT, TAGGED], rows, strict=True):
        _check_row(text, row)
        for ent in row["entities"]:
            assert 0.0 < ent["score"] <= 1.0


# --- 10: an uncached hub id without network fails fast ---------------------------------------


def test_offline_hub_id_fails_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    for key in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    (tmp_path / "hub").mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    config = tiny_config(Path("unused"), tmp_path / "run")
    config["backbone"]["path"] = "someone/not-cached-model"
    path = _write(tmp_path / "run.yaml", config)
    for command in ("validate", "train"):
        started = time.perf_counter()
        code = cli.main([command, str(path)])
        seconds = time.perf_counter() - started
        err = capsys.readouterr().err
        assert code == 2, err
        assert seconds < 10
        assert "someone/not-cached-model" in err and "can't be reached" in err
        assert "127.0.0.1:9" in err and "huggingface-cli download" in err
    assert not (tmp_path / "run" / "meta.json").exists()


def test_a_hub_id_in_the_local_cache_loads_offline(tiny_bert: Path, tmp_path: Path) -> None:
    """``owner/name`` found in the hub cache (the layout huggingface_hub writes) is used, not
    taken for a missing local folder."""
    import shutil

    hub = tmp_path / "hub"
    repo = hub / "models--someone--tiny-bert"
    snapshot = repo / "snapshots" / ("0" * 40)
    shutil.copytree(tiny_bert, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    config = tiny_config(Path("someone/tiny-bert"), tmp_path / "run", trainer={"max_steps": 2})
    path = _write(tmp_path / "run.yaml", config)
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}  # read at import
    done = subprocess.run(
        [sys.executable, "-m", "nlptune", "train", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "meta.json").is_file()


# --- 11: trackers -----------------------------------------------------------------------------


def test_mlflow_gets_metrics_and_params(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow")
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file://{store}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    out = tmp_path / "mlrun"
    config = tiny_config(tiny_bert, out, trainer={"max_steps": 3, "report_to": ["mlflow"]})
    result = nlptune.train(config)
    runs = [p.parent for p in store.glob("*/*/meta.yaml")]
    assert len(runs) == 1, list(store.rglob("*"))
    (run,) = runs
    accuracy = (run / "metrics" / "eval" / "accuracy").read_text().split()
    assert float(accuracy[1]) == pytest.approx(result.metrics["dev"]["accuracy"], abs=1e-6)
    assert int(accuracy[2]) == 3  # logged at step 3
    assert (run / "metrics" / "train" / "loss").is_file()
    assert (run / "params" / "trainer.lr").read_text() == "0.001"
    assert (run / "params" / "task.type").read_text() == "text_classification"
    experiment = yaml.safe_load((run.parent / "meta.yaml").read_text())
    assert experiment["name"] == "mlrun"  # named after the run folder
    assert not (out / "tensorboard").exists()  # not asked for (tiny_config: tensorboard off)


def test_a_tracker_that_fails_to_start_is_one_error_line(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "bogus://nowhere")
    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, trainer={"max_steps": 2, "report_to": ["mlflow"]})
    path = _write(tmp_path / "run.yaml", config)
    assert cli.main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "trainer.report_to: mlflow could not start" in errors[0], err
    assert "Traceback" not in err and not (out / "metrics.json").exists()
    # fixed, the same command trains (the stopped run is no obstacle)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"file://{tmp_path / 'mlruns'}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert cli.main(["train", str(path)]) == 0, capsys.readouterr().err
    assert (out / "metrics.json").is_file()


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_a_tracker_not_installed_is_one_error_line(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, trainer={"report_to": ["wandb"], "max_steps": 2})
    path = _write(tmp_path / "run.yaml", config)
    for command in ("validate", "train"):
        assert cli.main([command, str(path)]) == 2
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, err
        assert "wandb" in errors[0] and "pip install wandb" in errors[0]
        assert "Traceback" not in err
    assert not (out / "metrics.json").exists()


def test_tensorboard_by_default(cls_run: dict[str, Any]) -> None:
    events = list((cls_run["run"] / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)


# --- 12: the model card -----------------------------------------------------------------------


def test_model_card(cls_run: dict[str, Any]) -> None:
    run = cls_run["run"]
    text = (run / "model" / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    end = text.index("\n---\n", 4)
    front = yaml.safe_load(text[4:end])
    body = text[end + 5 :]
    assert front["pipeline_tag"] == "text-classification"
    assert "nlptune" in front["tags"] and "text_classification" in front["tags"]
    assert front["library_name"] == "transformers"
    assert "base_model" not in front  # a local folder is no hub id
    metrics = json.loads((run / "metrics.json").read_text())
    (index,) = front["model-index"]
    assert index["name"] == "run"
    (result,) = index["results"]
    assert result["dataset"]["split"] == "dev" and result["dataset"]["name"] == "sentiment_dev.tsv"
    shown = {m["type"]: m["value"] for m in result["metrics"]}
    assert shown["accuracy"] == metrics["dev"]["accuracy"]
    assert shown == metrics["dev"]
    meta = json.loads((run / "meta.json").read_text())
    for split in ("train", "dev"):
        assert meta["data"][split]["sha256"] in body
    labels = json.loads((run / "labels.json").read_text())["labels"]
    assert labels == ["neg", "pos"] and "2 labels: `neg`, `pos`" in body
    assert "AutoModelForSequenceClassification" in body
    assert f"{metrics['steps']} optimizer steps" in body
    config = yaml.safe_load(body.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert config["trainer"]["epochs"] == 1 and config["task"]["type"] == "text_classification"
    # the card does not stop transformers loading the folder
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(run / "model")
    assert model.config.id2label == {0: "neg", 1: "pos"}
