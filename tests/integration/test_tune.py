"""``nlptune tune``: an Optuna search over a space file whose study (SQLite) resumes, prunes
trials that lag, and ends with a best config that ``nlptune train`` takes; bad input is one
``error:`` line before any trial."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import nlptune
from nlptune import artefact, cli
from nlptune.errors import NlptuneError
from nlptune.tune import tune

from ..conftest import tiny_config

optuna = pytest.importorskip("optuna")

SPACE = """\
trainer.lr: {type: float, low: 1e-4, high: 1e-2, log: true}
strategy.type: {type: categorical, choices: [full, last_k]}
strategy.k: {type: int, low: 1, high: 2}
"""


def _files(tiny_bert: Path, tmp_path: Path, space: str = SPACE) -> tuple[Path, Path]:
    config = tiny_config(tiny_bert, tmp_path / "run", trainer={"max_steps": 4, "eval_every": 2})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    (tmp_path / "space.yaml").write_text(space, encoding="utf-8")
    return path, tmp_path / "space.yaml"


def _trials(out: Path) -> list[dict[str, str]]:
    with open(out / "trials.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_tune_searches_resumes_and_writes_a_best_config(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, space = _files(tiny_bert, tmp_path)
    out = tmp_path / "search"
    args = ["tune", str(config), "--space", str(space), "--trials", "3", "-o", str(out)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("best: trial ") and "dev accuracy" in printed
    assert f"nlptune train {out / 'best.yaml'}" in printed
    rows = _trials(out)
    assert [r["state"] for r in rows] == ["complete"] * 3
    assert all(1e-4 <= float(r["trainer.lr"]) <= 1e-2 for r in rows)
    assert all(int(r["evaluations"]) == 2 for r in rows)  # reported at steps 2 and 4
    assert (out / "study.sqlite3").is_file()
    assert all(artefact.is_complete(out / f"trial-{n}") for n in range(3))
    first = (out / "trial-0" / "metrics.json").stat().st_mtime_ns

    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["output_dir"] == str(out / "best")
    chosen = next(r for r in rows if printed.startswith(f"best: trial {r['number']},"))
    assert best["trainer"]["lr"] == pytest.approx(float(chosen["trainer.lr"]))
    assert best["strategy"]["type"] == chosen["strategy.type"]
    assert nlptune.validate(out / "best.yaml")["strategy"] == chosen["strategy.type"]

    # a process killed during a trial left it running, with a half-made run folder
    study = optuna.load_study(study_name="nlptune", storage=f"sqlite:///{out / 'study.sqlite3'}")
    killed = study.ask()
    artefact.start_run(out / f"trial-{killed.number}", "task: {}\n")
    assert cli.main([*args[:-4], "--trials", "5", "-o", str(out)]) == 0
    rows = _trials(out)
    assert [r["state"] for r in rows] == ["complete"] * 3 + ["fail"] + ["complete"] * 2
    assert rows[3]["error"] == "interrupted" and not (out / "trial-3").exists()
    assert (out / "trial-0" / "metrics.json").stat().st_mtime_ns == first  # not trained again

    # enough trials: nothing runs; another config in the same folder: refused
    assert cli.main([*args[:-4], "--trials", "4", "-o", str(out)]) == 0
    assert len(_trials(out)) == 6
    capsys.readouterr()
    assert cli.main([*args, "trainer.max_steps=6"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "holds a search of another config" in err
    assert "trainer.max_steps: 4 -> 6" in err and "\n" not in err


class PruneTrialOne(optuna.pruners.BasePruner):  # type: ignore[misc]
    """Prunes trial 1 at its first evaluation, never the others."""

    def prune(self, study: Any, trial: Any) -> bool:
        return bool(trial.number == 1)


def test_tune_prunes_a_lagging_trial_and_removes_its_run(tiny_bert: Path, tmp_path: Path) -> None:
    config, space = _files(tiny_bert, tmp_path, "trainer.lr: {type: float, low: 1e-4, high: 1e-2}")
    out = tmp_path / "search"
    result = tune(config, space, 3, output_dir=out, pruner=PruneTrialOne())
    rows = _trials(out)
    assert [r["state"] for r in rows] == ["complete", "pruned", "complete"]
    assert rows[1]["evaluations"] == "1"  # pruned at its first evaluation
    assert not (out / "trial-1").exists()  # nothing half-written left behind
    assert result.counts == {"complete": 2, "pruned": 1}
    assert result.best_trial in (0, 2) and set(result.best_params) == {"trainer.lr"}

    # every trial pruned: the search says there is no best, in one error line
    with pytest.raises(NlptuneError, match="no trial of .* completed"):
        tune(
            config,
            space,
            2,
            output_dir=tmp_path / "all",
            pruner=optuna.pruners.ThresholdPruner(lower=2.0),
        )
    assert [r["state"] for r in _trials(tmp_path / "all")] == ["pruned", "pruned"]


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("- trainer.lr\n", "a space file maps config keys to distributions"),
        ("trainer.lr: 0.1\n", "trainer.lr: give a mapping with a type"),
        ("trainer.lr: {type: normal}\n", "type must be float, int or categorical"),
        ("trainer.lr: {type: float, low: 1e-3, high: 1e-4}\n", "low (0.001) must be below high"),
        ("trainer.lr: {type: float, low: 0.1, high: 0.1}\n", "must be below high"),
        ("trainer.lr: {type: float, low: 0, high: 1, log: true}\n", "log needs low above 0"),
        ("trainer.lr: {type: float, low: a, high: 1}\n", "low must be a number, got 'a'"),
        ("trainer.lr: {type: float, high: 1}\n", "float needs low"),
        ("trainer.lr: {type: float, low: 0.1, high: 1, lgo: true}\n", "not 'lgo' (did you mean"),
        ("trainer.lr: {type: float, low: 0.1, high: 1, log: yes please}\n", "log must be true"),
        ("trainer.lr: {type: float, low: 0.1, high: 1, log: true, step: 0.1}\n", "not both"),
        ("trainer.batch_size: {type: int, low: 2.5, high: 8}\n", "must be a whole number"),
        ("trainer.batch_size: {type: int, low: 2, high: 8, step: 0}\n", "step must be above 0"),
        ("strategy.type: {type: categorical}\n", "categorical needs a list of choices"),
        ("strategy.type: {type: categorical, choices: [full, full]}\n", "more than once"),
        ("strategy.type: {type: categorical, choices: [full, nope]}\n", "unknown strategy 'nope'"),
        ("trainer.lrr: {type: float, low: 0.1, high: 1}\n", "unknown key 'trainer.lrr'"),
        ("trainer.lr: {type: float, low: -1, high: 1}\n", "trainer.lr: Input should be greater"),
        ("strategy.k: {type: int, low: 1, high: 2}\n", "unknown key 'strategy.k'"),
        ("output_dir: {type: categorical, choices: [a]}\n", "'output_dir' can't be searched"),
    ],
)
def test_tune_bad_space_is_one_error_line_before_any_trial(
    tiny_bert: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    space: str,
    message: str,
) -> None:
    config, path = _files(tiny_bert, tmp_path, space)
    out = tmp_path / "search"
    assert (
        cli.main(["tune", str(config), "--space", str(path), "--trials", "2", "-o", str(out)]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert str(path) in err
    assert not out.exists()


def test_tune_bad_arguments_and_folders(
    tiny_bert: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, space = _files(tiny_bert, tmp_path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    (tmp_path / "file").write_text("x")
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / ".nlptune-tune").write_text("{}")
    (tmp_path / "study" / "study.sqlite3").write_text("not a database")
    common = ["--space", str(space), "--trials"]
    for args, message in (
        ([str(tmp_path / "nope.yaml"), *common, "2"], "config file not found"),
        ([str(config), *common, "0"], "--trials 0: give the number of trials, 1 or more"),
        ([str(config), *common, "-3"], "--trials -3"),
        (
            [str(config), "--space", str(tmp_path / "none.yaml"), "--trials", "2"],
            "none.yaml: file not found",
        ),
        ([str(config), *common, "2", "-o", str(tmp_path / "file")], "is a file"),
        ([str(config), *common, "2", "-o", str(busy)], "not an nlptune tune (notes.txt)"),
        ([str(config), *common, "2", "-o", str(tmp_path / "study")], "can't open the study"),
        ([str(config), *common, "2", "data.dev=null"], "tune scores trials on a dev set"),
    ):
        assert cli.main(["tune", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]

    monkeypatch.setitem(sys.modules, "optuna", None)  # not installed
    assert cli.main(["tune", str(config), *common, "2", "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: nlptune tune needs Optuna: pip install 'nlptune[tune]'"
