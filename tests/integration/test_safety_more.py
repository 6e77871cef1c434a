"""Nothing outside nlptune's own files is ever replaced, and what a user gets wrong (a path, a
damaged file, a value) ends in one NlptuneError, never a traceback or a silent misreading."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest

import nlptune
from nlptune import artefact, cli
from nlptune.errors import ConfigError, ModelError, NlptuneError

from ..conftest import tiny_config, translate_config

TRAINER = {"epochs": 2, "save_every": 4, "eval_every": 6}


class Stop(Exception):
    pass


@pytest.fixture(scope="module")
def finished(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run, copied by each test that changes it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    nlptune.train(tiny_config(tiny_bert, out, trainer={"max_steps": 2}))
    return out


def _copy(run: Path, tmp_path: Path, name: str = "run") -> Path:
    shutil.copytree(run, tmp_path / name)
    return tmp_path / name


def _predict(run: Path, inputs: Path, output: str, capsys: pytest.CaptureFixture[str]) -> str:
    """``nlptune predict`` to ``output``; its stderr (one ``error:`` line when it failed)."""
    code = cli.main(["predict", str(run), "--input", str(inputs), "--output", output])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 2), err
    return err


def _inputs(tmp_path: Path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("a gripping film\na dull film\n", encoding="utf-8")
    return path


def test_predict_writes_through_fifos_and_symlinks_never_over_them(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = _inputs(tmp_path)
    # a FIFO: written straight through (a reader gets the predictions), never replaced
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so the writer's open works
    try:
        _predict(finished, inputs, str(fifo), capsys)
        got = os.read(reader, 1 << 16).decode()
    finally:
        os.close(reader)
    assert fifo.is_fifo() and len(got.splitlines()) == 2 and '"label"' in got
    # a symlink to a file: the file gets the predictions, the link stays a link
    target = tmp_path / "target.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    _predict(finished, inputs, str(link), capsys)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(target.read_text().splitlines()) == 2
    # a symlink to nothing yet: its target is made, the link stays
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to(tmp_path / "later" / "made.jsonl")
    _predict(finished, inputs, str(dangling), capsys)
    assert dangling.is_symlink() and (tmp_path / "later" / "made.jsonl").is_file()
    # a symlink loop: one error line
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert "error: --output" in _predict(finished, inputs, str(loop), capsys)
    assert loop.is_symlink()


def test_predict_output_dash_is_stdout(
    finished: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    inputs = _inputs(tmp_path)
    assert cli.main(["predict", str(finished), "--input", str(inputs), "--output", "-"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 2 and '"label"' in out
    assert not (tmp_path / "-").exists()


def test_predict_never_writes_over_a_run(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _copy(finished, tmp_path)
    inputs = _inputs(tmp_path)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    link = tmp_path / "link.json"
    link.symlink_to(run / "labels.json")
    for output in [
        run / "labels.json",
        run / "model" / "config.json",
        run / "config.yaml",
        run / "meta.json",
        run / "model" / "new-file.json",
        link,
    ]:
        err = _predict(run, inputs, str(output), capsys)
        assert f"is part of the nlptune run {run}" in err, err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    # a file of the user's own beside the run's entries is fine
    _predict(run, inputs, str(run / "predictions.jsonl"), capsys)
    assert len((run / "predictions.jsonl").read_text().splitlines()) == 2
    nlptune.Predictor.from_dir(run)


def test_paths_that_are_not_utf8_are_one_error(
    tiny_bert: Path, finished: Path, tmp_path: Path
) -> None:
    odd = os.fsdecode(b"run\xff")  # a name the file system holds, not UTF-8
    config = tiny_config(tiny_bert, tmp_path / odd)
    with pytest.raises(ConfigError, match=r"output_dir: '.*run\\xff' is not valid UTF-8"):
        nlptune.train(config)
    assert not (tmp_path / odd).exists()
    model = tmp_path / os.fsdecode(b"bert\xff")
    shutil.copytree(tiny_bert, model)
    config = tiny_config(model, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"backbone.path: .* is not valid UTF-8"):
        nlptune.validate(config)
    run = _copy(finished, tmp_path, odd)
    with pytest.raises(NlptuneError, match="not valid UTF-8"):
        nlptune.Predictor.from_dir(run)


def test_a_model_folder_without_tokenizer_files_is_refused(
    tiny_bert: Path, finished: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(tiny_bert, bare)
    for name in ("tokenizer.json", "vocab.txt"):
        (bare / name).unlink(missing_ok=True)  # tokenizer_config.json stays: not a vocabulary
    out = tmp_path / "out"
    with pytest.raises(ModelError, match=f"backbone.path {bare}: the folder has no tokenizer"):
        nlptune.train(tiny_config(bare, out, trainer={"max_steps": 2}))
    assert not out.exists()
    # the trained run's model/ the same
    run = _copy(finished, tmp_path)
    for name in ("tokenizer.json", "vocab.txt"):  # transformers 4.x saves both
        (run / "model" / name).unlink(missing_ok=True)
    with pytest.raises(ModelError, match="model/: the folder has no tokenizer files"):
        nlptune.Predictor.from_dir(run)


def _cut_run(model: Path, out: Path, at: int = 7) -> dict:
    """A run stopped at step ``at`` (7: its last checkpoint at step 4, before the first
    evaluation at 6; 9: at step 8, the best weights of step 6 beside it)."""
    config = tiny_config(model, out, trainer=dict(TRAINER))

    def stop(state: object) -> None:
        if state.step == at:  # type: ignore[attr-defined]
            raise Stop

    with pytest.raises(Stop):
        nlptune.train(config, callbacks=[stop])
    return config


@pytest.mark.parametrize("damaged", ["model.safetensors", "optimizer.safetensors", "state.json"])
def test_a_damaged_checkpoint_is_said_and_an_older_one_used(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, damaged: str
) -> None:
    out = tmp_path / "run"
    config = _cut_run(tiny_bert, out)
    last = out / "checkpoints" / "last"
    shutil.copytree(last, last.with_name("last.old"))  # an interrupted swap's backup
    path = last / damaged
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    result = nlptune.train(config, resume=True)
    assert result.metrics["steps"] == 24 and artefact.is_complete(out)
    said = [r.getMessage() for r in caplog.records if "older intact checkpoint" in r.getMessage()]
    assert said and "is damaged" in said[0] and damaged in said[0]


def test_a_damaged_checkpoint_without_an_older_one_points_to_overwrite(
    tiny_bert: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = _cut_run(tiny_bert, out)
    weights = out / "checkpoints" / "last" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(NlptuneError, match=r"checkpoint at step 4 .* is damaged.*--overwrite"):
        nlptune.train(config, resume=True)
    nlptune.train(config, overwrite=True)
    assert artefact.is_complete(out)


def test_damaged_best_weights_are_found_before_resuming(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = _cut_run(tiny_bert, out, at=9)
    weights = out / "checkpoints" / "best" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(NlptuneError, match=r"best weights so far .*step 6.* damaged.*--overwrite"):
        nlptune.train(config, resume=True)


def test_labels_out_of_order_or_weights_not_finite_are_refused_at_load(
    finished: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    run = _copy(finished, tmp_path)
    labels = json.loads((run / "labels.json").read_text())
    labels["labels"] = labels["labels"][::-1]
    (run / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(ModelError, match=r"labels.json names the labels pos, neg .*id2label"):
        nlptune.Predictor.from_dir(run)
    run = _copy(finished, tmp_path, "nan")
    weights = run / "model" / "model.safetensors"
    state = load_file(str(weights))
    name = next(k for k in state if k.endswith("classifier.weight"))
    state[name][0, 0] = float("nan")
    save_file(state, str(weights), metadata={"format": "pt"})
    with pytest.raises(ModelError, match="hold nan or inf"):
        nlptune.Predictor.from_dir(run)


def test_a_loss_that_is_not_finite_stops_training(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    trainer = {"max_steps": 30, "lr": 1e30, "max_grad_norm": None, "log_every": 5}
    config = tiny_config(tiny_bert, out, trainer=trainer)
    with pytest.raises(NlptuneError, match=r"not finite .* at step \d+.*lower trainer\.lr"):
        nlptune.train(config)
    assert not artefact.is_complete(out) and not (out / "checkpoints" / "last").exists()


def test_a_cache_entry_copied_over_another_key_is_rebuilt(
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
    shutil.copy(entries[0], entries[1])  # a valid entry (its checksum matches) under another key
    caplog.clear()
    second = nlptune.train(config, overwrite=True)
    said = [r.getMessage() for r in caplog.records if "another key" in r.getMessage()]
    assert len(said) == 1
    assert second.metrics["dev"] == first.metrics["dev"]


def test_a_cache_that_cannot_be_written_says_not_cached(
    tiny_bert: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "cache-file").write_text("a file where a folder should be")
    monkeypatch.setenv("NLPTUNE_CACHE", str(tmp_path / "cache-file"))
    caplog.set_level(logging.INFO, logger="nlptune")
    nlptune.train(tiny_config(tiny_bert, tmp_path / "run", trainer={"max_steps": 2}))
    messages = [r.getMessage() for r in caplog.records]
    assert any("train: 96 examples (tokenized, not cached)" in m for m in messages), messages
    assert not any("tokenized and cached" in m for m in messages)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"seed": True}, "seed: Input should be a valid integer"),
        ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
        ({"seed": 2**32}, "seed: Input should be less than or equal to 4294967295"),
        ({"trainer": {"lr": float("inf")}}, "trainer.lr: Input should be a finite number"),
        ({"trainer": {"lr": float("nan")}}, "trainer.lr: Input should be a finite number"),
        ({"trainer": {"head_lr": float("inf")}}, "trainer.head_lr: .* finite number"),
        ({"trainer": {"weight_decay": float("inf")}}, "trainer.weight_decay: .* finite"),
        ({"trainer": {"warmup_ratio": float("nan")}}, "trainer.warmup_ratio: .* finite"),
        ({"trainer": {"max_grad_norm": float("inf")}}, "trainer.max_grad_norm: .* finite"),
        ({"data": {"dev_fraction": float("nan")}}, "data.dev_fraction: .* finite"),
        ({"output_dir": ""}, "output_dir is empty"),
        ({"output_dir": "  "}, "output_dir is empty"),
        ({"task": {"type": ""}}, r"task.type must be a name \(nlptune list tasks\), got ''"),
    ],
)
def test_validate_refuses_values_that_break_training(
    tiny_bert: Path, tmp_path: Path, change: dict, says: str
) -> None:
    config = tiny_config(tiny_bert, tmp_path / "run")
    for key, value in change.items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    with pytest.raises(ConfigError, match=says):
        nlptune.validate(config)


def test_epochs_may_be_infinite_with_max_steps(tiny_bert: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_bert, tmp_path / "run", trainer={"epochs": float("inf")})
    with pytest.raises(ConfigError, match="trainer.epochs must be finite"):
        nlptune.validate(config)
    config["trainer"]["max_steps"] = 3
    nlptune.validate(config)


def test_text_to_text_float_keys_must_be_finite(tiny_t5: Path, tmp_path: Path) -> None:
    for key in ("length_penalty", "label_smoothing"):
        config = translate_config(tiny_t5, tmp_path / "run", task={key: float("nan")})
        with pytest.raises(ConfigError, match=f"task.{key}: Input should be a finite number"):
            nlptune.validate(config)


def test_a_dangling_symlink_as_output_dir_is_one_error(tiny_bert: Path, tmp_path: Path) -> None:
    link = tmp_path / "run"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(NlptuneError, match="is a symlink to .*nowhere, which does not exist"):
        nlptune.train(tiny_config(tiny_bert, link, trainer={"max_steps": 2}))
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()
