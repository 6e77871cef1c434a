"""A run folder is nlptune's alone: nothing else is ever deleted or replaced, one process writes
it, and --resume continues only the run it started as (same config, same data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import nlptune
from nlptune import artefact
from nlptune.errors import NlptuneError

from ..conftest import FIXTURES, tiny_config

TRAINER = {"epochs": 2, "save_every": 4, "eval_every": 6}


class Stop(Exception):
    pass


def _stop_at(step: int):  # type: ignore[no-untyped-def]
    def callback(state: object) -> None:
        if state.step == step:  # type: ignore[attr-defined]
            raise Stop

    return callback


def _cut_run(model: Path, out: Path, **sections: object) -> dict:
    """A run stopped at step 7 (its last checkpoint at step 4)."""
    config = tiny_config(model, out, trainer=dict(TRAINER), **sections)
    with pytest.raises(Stop):
        nlptune.train(config, callbacks=[_stop_at(7)])
    return config


def test_folders_that_are_not_runs_are_never_touched(tiny_bert: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    (mine / "model").mkdir()
    (mine / "model" / "weights.bin").write_text("not nlptune's")
    config = tiny_config(tiny_bert, mine, trainer={"max_steps": 2})
    for overwrite in (False, True):
        with pytest.raises(NlptuneError, match="not an nlptune run"):
            nlptune.train(config, overwrite=overwrite)
    assert (mine / "notes.txt").read_text() == "my notes"
    assert (mine / "model" / "weights.bin").read_text() == "not nlptune's"
    assert not (mine / "config.yaml").exists() and not (mine / "labels.json").exists()
    # the training data inside the output folder: refused too, the data kept
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(FIXTURES / "sentiment_train.tsv", data / "train.tsv")
    inside = tiny_config(tiny_bert, data, trainer={"max_steps": 2})
    inside["data"]["train"] = str(data / "train.tsv")
    with pytest.raises(NlptuneError, match="not an nlptune run"):
        nlptune.train(inside, overwrite=True)
    assert (data / "train.tsv").is_file()
    # a file as output_dir
    with pytest.raises(NlptuneError, match="is a file"):
        nlptune.train(tiny_config(tiny_bert, mine / "notes.txt", trainer={"max_steps": 2}))


def test_overwrite_removes_only_what_a_run_wrote(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, trainer={"max_steps": 2})
    nlptune.train(config)
    assert (out / artefact.MARKER).is_file()
    (out / "my-analysis.ipynb").write_text("{}")
    nlptune.train(config, overwrite=True)
    assert (out / "my-analysis.ipynb").read_text() == "{}"
    assert artefact.is_complete(out)


def test_resume_of_a_finished_run_is_refused_and_it_still_loads(
    tiny_bert: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, trainer={"max_steps": 2})
    nlptune.train(config)
    with pytest.raises(NlptuneError, match="finished run, nothing to resume"):
        nlptune.train(config, resume=True)
    assert artefact.is_complete(out)
    nlptune.Predictor.from_dir(out)  # still a finished run


def test_resume_before_the_first_checkpoint_starts_again(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, trainer={"epochs": 1})
    with pytest.raises(Stop):
        nlptune.train(config, callbacks=[_stop_at(1)])  # before any checkpoint
    with caplog.at_level("INFO", logger="nlptune"):
        nlptune.train(config, resume=True)
    assert "stopped before its first checkpoint; starting it from step 0" in caplog.text
    assert artefact.is_complete(out)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NlptuneError, match="holds no run to resume"):
        nlptune.train({**config, "output_dir": str(empty)}, resume=True)


def test_one_writer_per_run_folder(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with artefact.RunLock(out), pytest.raises(NlptuneError, match="in use by another"):
        nlptune.train(tiny_config(tiny_bert, out, trainer={"max_steps": 2}))
    nlptune.train(tiny_config(tiny_bert, out, trainer={"max_steps": 2}))  # released: it runs


def test_resume_refuses_another_config_or_data(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = _cut_run(tiny_bert, out)
    changed = json.loads(json.dumps(config))
    changed["trainer"]["lr"] = 5e-4
    with pytest.raises(NlptuneError, match=r"trainer\.lr: 0\.001 -> 0\.0005"):
        nlptune.train(changed, resume=True)
    safe = json.loads(json.dumps(config))
    safe["trainer"]["num_threads"] = 2  # how fast, not what: allowed
    data = tmp_path / "train.tsv"
    shutil.copy(FIXTURES / "sentiment_train.tsv", data)
    moved = json.loads(json.dumps(config))
    moved["data"]["train"] = str(data)
    with pytest.raises(NlptuneError, match="data.train"):
        nlptune.train(moved, resume=True)  # another path is another config
    # the same path with other bytes: the data check
    config2 = _cut_run(tiny_bert, tmp_path / "run2", data={"train": str(data)})
    with open(data, "a", encoding="utf-8") as f:
        f.write("an extra sentence\tpos\n")
    with pytest.raises(NlptuneError, match=r"data\.train .*changed since the run started"):
        nlptune.train(config2, resume=True)
    result = nlptune.train(safe, resume=True)
    assert result.metrics["steps"] == 24
    events = [
        (record["event"], record["step"])
        for record in map(json.loads, (out / "train_log.jsonl").read_text().splitlines())
    ]
    assert ("eval", 6) in events  # evaluated before the stop (checkpoint at 4) and after resume
    assert len(events) == len(set(events)), "a resumed run logs each step once"


def test_settings_that_make_no_step_are_refused_not_hung(tiny_bert: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_bert, tmp_path / "run", trainer={"batch_size": 8, "grad_accum": 16})
    with pytest.raises(NlptuneError, match="grad_accum=16 is more than trainer.batch_size=8"):
        nlptune.validate(config)


def test_a_crash_during_the_final_save_is_finished_by_resume(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, trainer=dict(TRAINER))
    real = artefact.write_json

    def crash(path: Path, value: object) -> None:
        if path.name == "metrics.json":
            raise Stop  # the process dies with the model written, metrics and meta not
        real(path, value)

    monkeypatch.setattr(artefact, "write_json", crash)
    with pytest.raises(Stop):
        nlptune.train(config)
    monkeypatch.undo()
    assert not artefact.is_complete(out)
    with pytest.raises(NlptuneError, match="--resume"):
        nlptune.train(config)  # points to --resume, which finishes it
    result = nlptune.train(config, resume=True)
    assert artefact.is_complete(out) and result.metrics["steps"] == 24
    assert not (out / ".staging").exists()
    nlptune.Predictor.from_dir(out)


def test_a_damaged_feature_cache_is_rebuilt_never_used(
    tiny_bert: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("NLPTUNE_CACHE", str(cache))
    config = tiny_config(tiny_bert, tmp_path / "run", trainer={"max_steps": 4})
    first = nlptune.train(config)
    entries = sorted((cache / "features").glob("*.npz"))
    assert len(entries) == 2  # train and dev
    # one entry truncated, the other with a byte flipped inside an array (its zip still opens)
    entries[0].write_bytes(entries[0].read_bytes()[:100])
    import numpy as np

    with np.load(entries[1]) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["lengths"] = arrays["lengths"] + 1
    with open(entries[1], "wb") as f:
        np.savez(f, **arrays)
    second = nlptune.train(config, overwrite=True)
    damaged = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(damaged) == 2
    assert second.metrics["dev"] == first.metrics["dev"]
    # a cache that can't be written: a warning, and the run goes on
    caplog.clear()
    monkeypatch.setenv("NLPTUNE_CACHE", str(tmp_path / "cache-file"))
    (tmp_path / "cache-file").write_text("a file where a folder should be")
    third = nlptune.train(config, overwrite=True)
    assert any("not cached" in r.getMessage() for r in caplog.records)
    assert third.metrics["dev"] == first.metrics["dev"]


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("truncate weights", "can't load the trained model"),
        ("delete weights", "can't load the trained model"),
        ("pickle only", "no file named model.safetensors"),
        ("weights of another shape", "can't load the trained model"),
        ("labels not JSON", "labels.json: can't read the run's labels"),
        ("labels missing", "labels.json: can't read the run's labels"),
        ("labels a list", "not the run's labels"),
        ("config not YAML", r"config.yaml:\d+: not valid YAML"),
    ],
)
def test_a_damaged_run_folder_is_one_error_line(
    tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory, damage: str, says: str
) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    root = tmp_path_factory.getbasetemp() / "damaged-source"
    if not artefact.is_complete(root):
        nlptune.train(tiny_config(tiny_bert, root, trainer={"max_steps": 2}))
    run = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(root, run)
    weights = run / "model" / "model.safetensors"
    if damage == "truncate weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "delete weights":
        weights.unlink()
    elif damage == "pickle only":
        weights.unlink()
        torch.save({"bert.embeddings.word_embeddings.weight": torch.zeros(2, 2)},
                   run / "model" / "pytorch_model.bin")  # fmt: skip
    elif damage == "weights of another shape":
        state = load_file(str(weights))
        name = next(k for k in state if k.endswith("word_embeddings.weight"))
        state[name] = torch.zeros(3, 3)
        save_file(state, str(weights))
    elif damage == "labels not JSON":
        (run / "labels.json").write_text('{"labels": 3')
    elif damage == "labels missing":
        (run / "labels.json").unlink()
    elif damage == "labels a list":
        (run / "labels.json").write_text("[1, 2]")
    elif damage == "config not YAML":
        (run / "config.yaml").write_text("task:\n  type: [a\n")
    with pytest.raises(NlptuneError, match=says) as info:
        nlptune.Predictor.from_dir(run)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"backbone": {"max_length": 100000}}, "more than the 64 positions"),
        ({"task": {"type": "text_classification", "metric": "nonsense"}}, "not a metric of"),
        ({"task": {"type": "text_classification", "metric": "mse"}}, "not a metric of single"),
        ({"task": {"type": ["a"]}}, "task.type must be a name"),
        ({"trainer": {"lr": "abc"}}, "trainer.lr"),
    ],
)
def test_validate_catches_bad_values_before_weights_load(
    tiny_bert: Path, tmp_path: Path, change: dict, says: str
) -> None:
    config = tiny_config(tiny_bert, tmp_path / "run")
    for section, values in change.items():
        config[section] = {**config.get(section, {}), **values}
    with pytest.raises(NlptuneError, match=says):
        nlptune.validate(config)


def test_a_full_disk_leaves_no_half_written_output(
    tiny_bert: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import errno

    from nlptune import cli, outputs

    out = tmp_path / "run"
    nlptune.train(tiny_config(tiny_bert, out, trainer={"max_steps": 2}))
    inputs = tmp_path / "in.txt"
    inputs.write_text("a charming story\nquite tedious\n")
    target = tmp_path / "preds" / "p.jsonl"
    target.parent.mkdir()
    target.write_text("the previous predictions\n")
    real = outputs.Writer.write

    def full(self: outputs.Writer, row: dict) -> None:
        if self.rows >= 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, row)

    monkeypatch.setattr(outputs.Writer, "write", full)
    code = cli.main(["predict", str(out), "--input", str(inputs), "--output", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device" in err and "Traceback" not in err
    assert target.read_text() == "the previous predictions\n"  # untouched, not half-written
    assert [p.name for p in target.parent.iterdir()] == ["p.jsonl"]  # no temporary file left
