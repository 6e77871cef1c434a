"""Errors a user can cause end in one clear message and exit code 2, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from nlptune import cli

from ..conftest import FIXTURES, one_error_line, tiny_config


def _config(tmp_path: Path, model: Path, **sections: object) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_config(model, tmp_path / "out", **sections)))
    return str(path)


@pytest.mark.parametrize(
    ("body", "override", "message"),
    [
        (None, "data.train=missing.tsv", "data file not found: missing.tsv"),
        (
            "sentence\tlabel\nfine film\tpos\nbad\tneg\textra\n",
            None,
            r"bad.tsv:3: expected 2 fields, found 3",
        ),
        (
            None,
            "data.text=sentnce",
            r"no column 'sentnce' \(did you mean 'sentence'\?\); columns are: sentence, label",
        ),
        ("sentence\tlabel\n", None, "bad.tsv: no examples"),
        (
            None,
            "trainer.batchsize=4",
            r"unknown key 'trainer.batchsize' \(did you mean 'batch_size'\?\)",
        ),
        (None, "backbone.path=./no/such/model", "backbone.path ./no/such/model: no such folder"),
        (None, "strategy.k=2", "unknown key 'strategy.k'"),
    ],
)
def test_bad_input_gives_one_message(
    tiny_bert: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    body: str | None,
    override: str | None,
    message: str,
) -> None:
    overrides = [override] if override else []
    if body is not None:
        (tmp_path / "bad.tsv").write_text(body)
        overrides.append(f"data.train={tmp_path / 'bad.tsv'}")
    config = _config(tmp_path, tiny_bert)
    for command in (["validate", config, *overrides], ["train", config, *overrides]):
        line = one_error_line(command, capsys)
        assert re.search(message, line), line
    assert not (tmp_path / "out" / "meta.json").exists()


def test_dev_label_never_seen_in_training(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence\tlabel\ngood film\tpos\nso so\tmeh\n")
    line = one_error_line(["train", _config(tmp_path, tiny_bert), f"data.dev={dev}"], capsys)
    assert (
        f"{dev}:3: label 'meh' never occurs in the training data (known labels: neg, pos)" in line
    )


def test_encoder_decoder_does_not_fit_classification(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import T5Config

    t5 = tmp_path / "t5"
    T5Config(d_model=16, num_layers=1, num_heads=2, d_ff=32, vocab_size=64).save_pretrained(t5)
    line = one_error_line(["train", _config(tmp_path, tiny_bert), f"backbone.path={t5}"], capsys)
    assert "is an encoder-decoder (t5)" in line


def test_missing_run_and_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(
        ["evaluate", str(tmp_path / "nope"), "--data", str(FIXTURES / "sentiment_dev.tsv")], capsys
    )
    assert "run directory not found" in line
    line = one_error_line(["predict", str(tmp_path), "--input", str(tmp_path / "none.txt")], capsys)
    assert "input file not found" in line


def test_finished_run_is_not_overwritten(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, tiny_bert, trainer={"max_steps": 1})
    assert cli.main(["train", config]) == 0
    line = one_error_line(["train", config], capsys)
    assert "already holds a finished run; pass --overwrite" in line
    assert cli.main(["train", config, "--overwrite"]) == 0
