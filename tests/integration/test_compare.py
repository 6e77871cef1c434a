"""``nlptune compare``: every strategy x seed in its own process, a table over seeds, finished
runs reused (so a stopped comparison continues), a failed run reported, not fatal; bad input
is one ``error:`` line before anything trains."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

from nlptune import artefact, cli, sweep
from nlptune.compare import compare
from nlptune.registry import STRATEGIES

from ..conftest import tiny_config


def _config(tiny_bert: Path, tmp_path: Path) -> Path:
    config = tiny_config(tiny_bert, tmp_path / "run", trainer={"max_steps": 2})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _mtimes(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("*/metrics.json")}


def test_compare_tables_seeds_reports_failures_and_reuses_finished_runs(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, out = _config(tiny_bert, tmp_path), tmp_path / "cmp"
    args = ["compare", str(config), "--strategies", "full,frozen", "--seeds", "2", "-o", str(out)]
    # one run's folder is held by another process: that run fails, the others go on
    sweep.claim(out, "compare")
    with artefact.RunLock(out / "frozen-seed2"):
        assert cli.main(args) == 1
    table, err = capsys.readouterr()
    assert "| combination | dev accuracy (mean ± std) |" in table
    rows = [line for line in table.splitlines() if line.startswith(("| full", "| frozen"))]
    assert len(rows) == 2 and "(n=2)" in rows[0] and "(n=1, 1 failed)" in rows[1]
    assert "frozen-seed2: " in err and "in use by another nlptune run" in err
    report = json.loads((out / "compare.json").read_text())
    assert [(r["name"], r["status"]) for r in report["runs"]] == [
        ("full-seed1", "trained"),
        ("full-seed2", "trained"),
        ("frozen-seed1", "trained"),
        ("frozen-seed2", "failed"),
    ]
    full, frozen = report["table"]
    assert full["metric"] == "accuracy" and full["n"] == 2 and "std" in full
    assert frozen["trainable"] < full["trainable"] == full["total"]
    assert all(row["peak_rss_mb"] > 0 and row["wall_seconds"] > 0 for row in report["table"])
    trained = [
        yaml.safe_load((out / r["name"] / "config.yaml").read_text()) for r in report["runs"][:3]
    ]
    assert [(c["strategy"]["type"], c["seed"]) for c in trained] == [
        ("full", 1),
        ("full", 2),
        ("frozen", 1),
    ]
    assert (out / "compare.md").read_text() == table
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"

    # run again without the missing run's folder: only that run trains, the rest are reused
    before = _mtimes(out)
    shutil.rmtree(out / "frozen-seed2")
    result = compare(config, strategies=["full", "frozen"], seeds=2, output_dir=out)
    assert [r["status"] for r in result.runs] == ["reused", "reused", "reused", "trained"]
    assert not result.failed and result.table[1]["n"] == 2
    after = _mtimes(out)
    assert {k: after[k] for k in before} == before and set(after) - set(before) == {"frozen-seed2"}

    # the same folder with another config: refused before training, naming the run
    capsys.readouterr()
    assert cli.main([*args, "trainer.lr=0.01"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "full-seed1 holds a run of another config" in err
    assert "trainer.lr: 0.001 -> 0.01" in err and "\n" not in err
    assert _mtimes(out) == after


@pytest.mark.parametrize(
    ("extra", "sweep_text", "message"),
    [
        (["--strategies", ""], None, "give strategy names separated by commas"),
        (["--strategies", "full,,frozen"], None, "give strategy names separated by commas"),
        (["--strategies", "full,nope"], None, "unknown strategy 'nope'"),
        (["--strategies", "full,ful"], None, "(did you mean 'full'?)"),
        (["--strategies", "full,frozen,full"], None, "names full more than once"),
        (["--seeds", "0"], None, "--seeds 0: give the number of seeds, 1 or more"),
        (["--seeds", "-2"], None, "--seeds -2"),
        ([], "- trainer.lr: [1]\n", "a sweep file maps config keys to lists of values"),
        ([], "trainer.lr: 0.01\n", "trainer.lr: give a list of values to try"),
        ([], "trainer.lr: []\n", "trainer.lr: give a list of values to try"),
        ([], "trainer.lr: [0.1, 0.1]\n", "trainer.lr lists 0.1 more than once"),
        ([], "trainer.lrr: [0.1]\n", "unknown key 'trainer.lrr' (did you mean 'lr'?)"),
        ([], "trainer.lr: [-1]\n", "trainer.lr: Input should be greater than 0"),
        ([], "seed: [1, 2]\n", "seed can't be swept; use --seeds N"),
        ([], "strategy.type: [full, nope]\n", "unknown strategy 'nope'"),
        (["--strategies", "full"], "strategy.type: [frozen]\n", "choose one"),
    ],
)
def test_compare_bad_input_is_one_error_line_before_training(
    tiny_bert: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    sweep_text: str | None,
    message: str,
) -> None:
    config, out = _config(tiny_bert, tmp_path), tmp_path / "cmp"
    args = ["compare", str(config), "-o", str(out), *extra]
    if sweep_text is not None:
        (tmp_path / "sweep.yaml").write_text(sweep_text, encoding="utf-8")
        args += ["--sweep", str(tmp_path / "sweep.yaml")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    if "unknown strategy" in message:
        assert f"known: {', '.join(STRATEGIES.names())}" in err
    assert not out.exists()  # nothing trained, nothing written


def test_compare_refuses_bad_files_and_folders(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tiny_bert, tmp_path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    (tmp_path / "file").write_text("x")
    for args, message in (
        ([str(tmp_path / "nope.yaml")], "config file not found"),
        ([str(config), "-o", str(tmp_path / "file")], "is a file"),
        ([str(config), "-o", str(busy)], "holds files that are not an nlptune compare (notes"),
        ([str(config), "--sweep", str(tmp_path / "none.yaml")], "none.yaml: file not found"),
        ([str(config), "trainer.lr"], "'trainer.lr' is not a key=value override"),
    ):
        assert cli.main(["compare", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert (busy / "notes.txt").read_text() == "mine" and sorted(busy.iterdir()) == [
        busy / "notes.txt"
    ]


def test_sweep_grid_names_each_combination(tiny_bert: Path, tmp_path: Path) -> None:
    from nlptune.compare import _combinations, _grid
    from nlptune.sweep import base_config

    config = _config(tiny_bert, tmp_path)
    (tmp_path / "sweep.yaml").write_text(
        "strategy.type: [full, last_k]\ntrainer.lr: [2e-5, 1.0e-3]\nstrategy.k: [1]\n"
    )
    raw, base = base_config(config)
    grid = _grid(None, tmp_path / "sweep.yaml")
    combos = _combinations(raw, base, grid, 2, tmp_path / "out", "sweep.yaml")
    names = [c.name for c in combos]
    assert names == [
        "full_lr=2e-5_k=1-seed1",
        "full_lr=2e-5_k=1-seed2",
        "full_lr=0.001_k=1-seed1",
        "full_lr=0.001_k=1-seed2",
        "last_k_lr=2e-5_k=1-seed1",
        "last_k_lr=2e-5_k=1-seed2",
        "last_k_lr=0.001_k=1-seed1",
        "last_k_lr=0.001_k=1-seed2",
    ]
    last = combos[-1].config
    assert last.strategy.type == "last_k" and last.strategy.k == 1  # type: ignore[attr-defined]
    assert last.trainer.lr == 1e-3 and last.seed == 2
    assert combos[0].config.trainer.lr == 2e-5  # YAML's 2e-5 is text; the config reads a float
    assert "k" not in combos[0].config.strategy.model_dump()  # full takes no k
