"""What keeps the host out of the way: batches built ahead on a thread (identical runs),
static shapes and torch.compile, and the speed and memory a run reports."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import nlptune
from nlptune.training.prefetch import Prefetch

from ..conftest import ner_data, one_error_line, tiny_config


def test_prefetch_keeps_order_raises_in_place_and_stops() -> None:
    built: list[int] = []

    def build(x: int) -> int:
        built.append(x)
        if x == 5:
            raise ValueError("bad item 5")
        return x * x

    for depth in (0, 1, 3):
        built.clear()
        seen = []
        with pytest.raises(ValueError, match="bad item 5"), Prefetch(build, range(10), depth) as p:
            for item, value in p:
                seen.append((item, value))
        assert seen == [(i, i * i) for i in range(5)], depth  # the items before the bad one
    # leaving early stops the thread: it builds at most `depth` more, then nothing
    built.clear()
    with Prefetch(lambda x: (time.sleep(0.01), x)[1], range(1000), 2) as p:
        for item, _ in p:
            if item == 3:
                break
    assert not any(t.name == "nlptune-prefetch" for t in threading.enumerate())


def _losses(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    return [r for r in rows if r["event"] in ("train", "eval")]


def test_prefetch_changes_nothing_and_speed_is_logged(tiny_bert: Path, tmp_path: Path) -> None:
    """Batches built on the thread give the same run, bit for bit (dropout on), as batches built
    inline; every logged step has examples/s, tokens/s and peak memory; so has metrics.json."""
    metrics, logs = [], []
    for depth in (0, 2):
        out = tmp_path / f"p{depth}"
        config = tiny_config(
            tiny_bert, out, trainer={"max_steps": 30, "eval_every": 15, "prefetch": depth}
        )
        metrics.append(nlptune.train(config).metrics)
        logs.append(_losses(out))
    assert metrics[0]["dev"] == metrics[1]["dev"]
    keep = ("loss", "lr", "accuracy")
    assert [{k: r.get(k) for k in keep} for r in logs[0]] == [
        {k: r.get(k) for k in keep} for r in logs[1]
    ]
    train = [r for r in logs[1] if r["event"] == "train"]
    assert train and all(
        r["examples_per_s"] > 0 and r["tokens_per_s"] > r["examples_per_s"] for r in train
    )
    assert all(r["peak_rss_mb"] > 50 for r in train)
    m = metrics[1]
    assert m["train_tokens_per_s"] > m["train_examples_per_s"] > 0
    assert m["peak_rss_mb"] >= train[-1]["peak_rss_mb"]


def test_static_shapes_and_compile_train_the_same(
    tiny_bert_no_dropout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lengths padded to multiples of 16 and a compiled forward (dynamo's eager backend here:
    inductor's first compile takes minutes on a CPU) give the run of plain dynamic padding."""
    compiled: list[Any] = []
    real = torch.compile

    def eager_compile(model: Any, **kwargs: Any) -> Any:
        compiled.append(model)
        return real(model, backend="eager", **kwargs)

    monkeypatch.setattr(torch, "compile", eager_compile)
    runs = []
    for name, extra in (("plain", {}), ("static", {"pad_to_multiple_of": 16, "compile": True})):
        config = tiny_config(
            tiny_bert_no_dropout,
            tmp_path / name,
            trainer={"max_steps": 24, "eval_every": 12, **extra},
        )
        runs.append((nlptune.train(config).metrics, _losses(tmp_path / name)))
    assert len(compiled) == 1
    (plain, plain_log), (static, static_log) = runs
    for key, value in plain["dev"].items():
        assert static["dev"][key] == pytest.approx(value, abs=1e-5), key
    for a, b in zip(plain_log, static_log, strict=True):
        if "loss" in a:
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)


def test_static_shapes_with_cached_frozen_states(tiny_bert: Path, tmp_path: Path) -> None:
    """A frozen tagger trains its head on stored token states: padded to multiples of 16, the
    states come as wide as the batch, and the run equals plain dynamic padding."""
    runs = []
    for name, extra in (("plain", {}), ("static", {"pad_to_multiple_of": 16})):
        config = tiny_config(
            tiny_bert,
            tmp_path / name,
            task={"type": "sequence_labelling"},
            strategy={"type": "frozen"},
            trainer={"max_steps": 12, "eval_every": 6, **extra},
        )
        config["data"] = ner_data()
        runs.append(nlptune.train(config).metrics)
    plain, static = runs
    for key, value in plain["dev"].items():
        assert static["dev"][key] == pytest.approx(value, abs=1e-5), key


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.prefetch=-1", "trainer.prefetch"),
        ("trainer.pad_to_multiple_of=0", "trainer.pad_to_multiple_of"),
        ("trainer.compile=sometimes", "trainer.compile"),
        ("trainer.gradient_checkpointing=maybe", "trainer.gradient_checkpointing"),
    ],
)
def test_bad_speed_settings_are_one_error_line(
    tiny_bert: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    override: str,
    key: str,
) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tiny_bert, tmp_path / "out")))
    line = one_error_line(["validate", str(path), override], capsys)
    assert key in line


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_bf16_pinned_prefetch_and_compile(tiny_bert_no_dropout: Path, tmp_path: Path) -> None:
    """On a GPU: pinned batches copied without blocking give the run of batches built inline;
    static shapes with inductor's torch.compile train to close metrics; peak GPU memory is
    reported."""
    runs = []
    for name, extra in (
        ("inline", {"prefetch": 0}),
        ("ahead", {"prefetch": 2}),
        ("compiled", {"pad_to_multiple_of": 16, "compile": True}),
    ):
        config = tiny_config(
            tiny_bert_no_dropout,
            tmp_path / name,
            trainer={"max_steps": 24, "eval_every": 12, "precision": "bf16", **extra},
        )
        runs.append(nlptune.train(config).metrics)
    inline, ahead, compiled = runs
    assert inline["dev"] == ahead["dev"]
    for key, value in inline["dev"].items():
        assert compiled["dev"][key] == pytest.approx(value, abs=0.05), key
    assert all(m["peak_gpu_mb"] > 0 for m in runs)
