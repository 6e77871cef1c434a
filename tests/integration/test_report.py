"""``nlptune report``: the figures (curves, confusion matrix, per-type F1) and one self-contained
HTML page of a finished run, on tiny BERT runs; every kind of bad input is one ``error:`` line
or a page that says what is missing; the page in headless Chromium (skipped without
/usr/bin/chromium)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nlptune
from nlptune import cli
from nlptune.report import write_report

from ..conftest import FIXTURES, ner_data, one_error_line, tiny_config

pytest.importorskip("matplotlib")
CURVES = ("loss.png", "lr.png", "dev_metric.png")
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def cls_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "cls"
    nlptune.train(tiny_config(tiny_bert, out, trainer={"epochs": 8}))
    return out


@pytest.fixture(scope="module")
def ner_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "ner"
    config = tiny_config(
        tiny_bert, out, task={"type": "sequence_labelling"}, trainer={"epochs": 4, "lr": 3e-3}
    )
    config["data"] = ner_data()
    nlptune.train(config)
    return out


def _image(path: Path) -> tuple[int, int]:
    """The size of a PNG that opens and is not one flat colour."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 20, f"{path.name} is nearly blank"
        return image.size


def _page(out: Path, images: tuple[str, ...]) -> str:
    """index.html, checked: every image embedded and linked, nothing fetched."""
    html = (out / "index.html").read_text(encoding="utf-8")
    for name in images:
        width, height = _image(out / name)
        assert 400 <= width <= 2000 and 200 <= height <= 2000, (name, width, height)
        assert base64.b64encode((out / name).read_bytes()).decode() in html, name
        assert f'href="{name}"' in html, name
    assert not re.search(r"https?://", html) and "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(?!data:image/png;base64,)[^"'>]*//""", html)
    return html


def test_text_classification_report(cls_run: Path, tmp_path: Path) -> None:
    index = write_report(cls_run, tmp_path / "out")
    out = tmp_path / "out"
    assert index == out / "index.html"
    html = _page(out, (*CURVES, "confusion.png"))
    metrics = json.loads((cls_run / "metrics.json").read_text())
    assert f"{metrics['dev']['accuracy']:.4f}" in html and "accuracy (main)" in html
    assert "text_classification" in html and "sentiment_dev.tsv" in html
    assert f"{metrics['steps']} (" in html  # the steps, in the run's identity
    assert "output_dir:" in html  # the config
    assert not (out / "per_type_f1.png").exists()


def test_ner_report_has_per_type_f1(ner_run: Path) -> None:
    write_report(ner_run)  # RUN/report by default
    out = ner_run / "report"
    html = _page(out, (*CURVES, "per_type_f1.png"))
    assert "f1 (main)" in html and "f1_POS" in html and "Dev f1" in html
    assert not (out / "confusion.png").exists()


def test_cli_replaces_an_earlier_report_and_keeps_other_files(
    cls_run: Path, ner_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert cli.main(["report", str(cls_run), "-o", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["report"] == str(out / "index.html")
    assert set(summary["files"]) == {"index.html", *CURVES, "confusion.png"}
    (out / "notes.txt").write_text("mine")
    assert cli.main(["report", str(ner_run), "-o", str(out)]) == 0
    assert (out / "per_type_f1.png").is_file() and not (out / "confusion.png").exists()
    assert (out / "notes.txt").read_text() == "mine"


def _copy(run: Path, tmp_path: Path, name: str = "run") -> Path:
    copy = tmp_path / name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report"))
    return copy


def test_bad_input_is_one_error_line(
    cls_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "not found" in one_error_line(["report", str(tmp_path / "nope")], capsys)
    (plain := tmp_path / "plain").mkdir()
    (plain / "data.txt").write_text("x")
    assert "not an nlptune run" in one_error_line(["report", str(plain)], capsys)
    unfinished = _copy(cls_run, tmp_path, "unfinished")
    (unfinished / "meta.json").unlink()
    (unfinished / "metrics.json").unlink()
    assert "not a finished run" in one_error_line(["report", str(unfinished)], capsys)
    (a_file := tmp_path / "taken.html").write_text("x")
    assert "is a file" in one_error_line(["report", str(cls_run), "-o", str(a_file)], capsys)
    assert a_file.read_text() == "x"
    assert "not an nlptune report (data.txt)" in one_error_line(
        ["report", str(cls_run), "-o", str(plain)], capsys
    )
    assert sorted(p.name for p in plain.iterdir()) == ["data.txt"]
    missing = tmp_path / "missing.tsv"
    assert "--data" in one_error_line(["report", str(cls_run), "--data", str(missing)], capsys)
    (unseen := tmp_path / "unseen.tsv").write_text("sentence\tlabel\na fine film\tmeh\n")
    line = one_error_line(["report", str(cls_run), "--data", str(unseen)], capsys)
    assert "unseen.tsv:2: label 'meh' never occurs in the training data" in line
    damaged = _copy(cls_run, tmp_path, "damaged")
    (damaged / "metrics.json").write_text("{not json")
    assert "metrics.json" in one_error_line(["report", str(damaged)], capsys)


def test_without_matplotlib_one_error_line(
    cls_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    line = one_error_line(["report", str(cls_run), "-o", str(tmp_path / "out")], capsys)
    assert "pip install 'nlptune[report]'" in line
    assert not (tmp_path / "out").exists()


def test_damaged_or_empty_log_still_gives_a_page(
    cls_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _copy(cls_run, tmp_path)
    log = run / "train_log.jsonl"
    lines = log.read_text().splitlines()
    lines[1:1] = ['{"event": "train", "step": 3, "loss": 0.5', "[1, 2]"]
    log.write_text("\n".join(lines) + "\n")
    assert cli.main(["report", str(run)]) == 0
    err = capsys.readouterr().err
    assert f"{log}: skipped 2 line(s) that are not log records (line 2, 3)" in err
    html = _page(run / "report", (*CURVES, "confusion.png"))
    assert "skipped 2 damaged line(s) (line 2, 3)" in html

    log.write_text("")
    assert cli.main(["report", str(run)]) == 0
    assert "holds no training steps" in capsys.readouterr().err
    html = _page(run / "report", ("confusion.png",))
    assert not any((run / "report" / name).exists() for name in CURVES)  # the old ones went
    assert "holds no training steps" in html and "No dev-metric curve" in html


def test_dev_set_not_here_then_data_given(cls_run: Path, tmp_path: Path) -> None:
    import yaml

    run = _copy(cls_run, tmp_path, "a <b>&run")
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["dev"] = str(tmp_path / "gone.tsv")
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    write_report(run)
    html = _page(run / "report", CURVES)
    assert "gone.tsv is not here" in html and "--data FILE" in html
    assert "accuracy (main)" in html  # the task, made without the model
    assert "a &lt;b&gt;&amp;run" in html and "<b>&run" not in html  # escaped
    write_report(run, data=FIXTURES / "sentiment_dev.tsv")
    assert (run / "report" / "confusion.png").is_file()


def test_dev_figures_of_every_prediction_shape() -> None:
    from types import SimpleNamespace as NS

    from nlptune.report_dev import TOP, confusion, dev_figure, figure_of

    labels = [f"L{i}" for i in range(40)]
    gold = [labels[i % 40] for i in range(400)] + ["L0"] * 50
    big = confusion(gold, gold, labels, "target")
    assert big.kind == "confusion" and len(big.labels) == TOP and big.labels[0] == "L0"
    assert "30 most frequent of 40 labels" in big.note and int(big.matrix.sum()) < len(gold)

    task = NS(labels=["a", "b", "c"])
    multi = figure_of(
        task,
        [NS(label=("a", "b")), NS(label=("c",))],
        [{"labels": ["a"]}, {"labels": ["c", "b"]}],
    )
    assert multi.file == "per_label_f1.png" and multi.values == [1.0, 0.0, 1.0]
    scores = figure_of(
        NS(labels=[]), [NS(label=1.5), NS(label=3.0)], [{"score": 1.0}, {"score": 2.5}]
    )
    assert scores.kind == "scatter" and scores.gold == [1.5, 3.0]
    pos = figure_of(
        NS(labels=["DET", "NOUN"], is_bio=False),
        [NS(tags=("DET", "NOUN"))],
        [{"tags": ["DET", "DET"]}],
    )
    assert pos.kind == "confusion" and pos.matrix.tolist() == [[1, 0], [1, 0]]
    for kind in ("extractive_qa", "text_to_text", "masked_lm"):
        figure, task = dev_figure(Path("."), {"task": {"type": kind}}, None)
        assert not figure.kind and "metrics" in figure.note and task is None


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs chromium (Debian package)")
def test_page_in_headless_chromium(ner_run: Path, tmp_path: Path) -> None:
    from PIL import Image

    out = tmp_path / "report"
    write_report(ner_run, out)
    shots = Path(os.environ.get("NLPTUNE_SCREENSHOTS", tmp_path))
    shot = shots / "report_ner.png"
    shot.unlink(missing_ok=True)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
    ]
    url = (out / "index.html").resolve().as_uri()
    subprocess.run([str(CHROMIUM), *flags, url], capture_output=True, timeout=120, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    with Image.open(shot) as image:
        assert image.size == (1200, 2000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 100  # text, plots and bars, not a blank page
        top = image.convert("L").crop((0, 0, 1200, 120)).getextrema()
        assert top[0] < 80  # the dark heading is drawn


def test_training_again_with_overwrite_clears_the_old_report(
    tiny_bert: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = tiny_config(tiny_bert, out, trainer={"max_steps": 2})
    nlptune.train(config)
    write_report(out)
    assert (out / "report" / "index.html").is_file()
    (out / "notes.txt").write_text("mine")
    nlptune.train(config, overwrite=True)
    assert not (out / "report").exists()  # it described the old run
    assert (out / "notes.txt").read_text() == "mine"
