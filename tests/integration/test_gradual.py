"""strategy gradual (ULMFiT): the head first, then one layer group more from the top each epoch
or every N steps, with discriminative learning rates; the schedule is logged and followed, and a
run stopped in the middle of it resumes to the same weights as one never stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import nlptune
from nlptune import build
from nlptune.config import load_config
from nlptune.errors import ConfigError
from nlptune.strategies.gradual import ULMFIT_DECAY

from ..conftest import static_config, stopped_then_resumed, tiny_config, translate_config


def _config(model: Path, out: Path, **strategy: Any) -> dict[str, Any]:
    config = tiny_config(model, out, trainer={"epochs": 2, "lr": 5e-3})
    config["strategy"] = {"type": "gradual", **strategy}
    return config


def _events(run: Path, kind: str) -> list[dict[str, Any]]:
    lines = (run / "train_log.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def test_the_schedule_is_logged_and_followed(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="nlptune"):
        nlptune.train(_config(tiny_bert, out, every_steps=5))
    assert (
        "gradual: unfreezes from the top, one group per 5 optimizer steps (layer_lr_decay "
        "0.3846): optimizer step 0: head; optimizer step 5: layer.1; optimizer step 10: "
        "layer.0; optimizer step 15: embeddings" in caplog.text
    )
    plans = [(e["step"], e["stage"]) for e in _events(out, "plan")]
    assert plans == [
        (5, "gradual stage 2 of 4: layer.1"),
        (10, "gradual stage 3 of 4: layer.0"),
        (15, "gradual stage 4 of 4: embeddings"),
    ]
    # discriminative rates: the head at lr, layer 1 at lr/2.6, layer 0 and embeddings at lr/2.6²
    groups = [line for line in caplog.text.splitlines() if "optimizer group" in line]
    rates = {float(line.split("lr ")[1].split(",")[0]) for line in groups}
    assert rates == {5e-3, float(f"{5e-3 * ULMFIT_DECAY:.3g}"), float(f"{5e-3 / 2.6**2:.3g}")}
    assert any("not training yet" in line and "layer.0" in line for line in groups)
    before = load_file(str(tiny_bert / "model.safetensors"))
    after = {
        k.removeprefix("bert."): v
        for k, v in load_file(str(out / "model" / "model.safetensors")).items()
    }
    changed = {k for k, v in before.items() if k in after and not torch.equal(v, after[k])}
    assert any("layer.0." in k for k in changed)
    assert "embeddings.word_embeddings.weight" not in changed  # hf_encoder keeps it fixed


def test_the_head_alone_trains_before_the_first_stage(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    trainer = {"epochs": 4, "max_steps": 6, "lr": 5e-3}
    config = tiny_config(tiny_bert, out, strategy={"type": "gradual"}, trainer=trainer)
    nlptune.train(config)  # 12 steps an epoch: the run ends in stage 1
    before = load_file(str(tiny_bert / "model.safetensors"))
    after = load_file(str(out / "model" / "model.safetensors"))
    assert all(torch.equal(v, after[f"bert.{k}"]) for k, v in before.items() if "pooler" not in k)
    assert not _events(out, "plan")


@pytest.mark.parametrize(
    ("strategy", "stop"),
    [({"every_steps": 3}, 7), ({}, 17)],  # stopped in stage 3 of 4; in epoch 2 (of 3)
    ids=["every_steps", "epochs"],
)
def test_resume_in_the_middle_of_the_schedule_is_exact(
    strategy: dict[str, Any], stop: int, tiny_bert: Path, tmp_path: Path
) -> None:
    trainer = {"epochs": 2 if strategy else 3, "save_every": 5, "eval_every": 6}

    def config(out: Path) -> dict[str, Any]:
        return tiny_config(
            tiny_bert, out, strategy={"type": "gradual", **strategy}, trainer=trainer
        )

    whole = nlptune.train(config(tmp_path / "whole"))

    resumed = stopped_then_resumed(config(tmp_path / "cut"), stop)
    a = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["dev"] == whole.metrics["dev"]
    plans = {
        run: [(e["step"], e["stage"], e["trainable"]) for e in _events(tmp_path / run, "plan")]
        for run in ("whole", "cut")
    }
    assert plans["cut"] == plans["whole"] and len(plans["whole"]) == (3 if strategy else 2)


def test_update_is_a_pure_function_of_epoch_and_step(tiny_bert: Path, tmp_path: Path) -> None:
    run = load_config(_config(tiny_bert, tmp_path / "run", every_steps=2))
    p = build.parts(run)
    build.read_splits(run, p.task)  # the label set
    model, new = build.new_model(p)
    _, first = p.strategy.apply(model, new)
    calls = [(0, 9), (0, 0), (3, 4), (0, 2), (0, 9)]
    seen = [sorted(p.strategy.update(first, e, s).trainable) for e, s in calls]
    assert seen[0] == seen[-1] and seen[1] == sorted(first.trainable)
    assert seen[3] != seen[1] and set(seen[1]) < set(seen[3]) < set(seen[2])


def test_encoder_decoders_unfreeze_both_stacks_from_the_top(tiny_t5: Path, tmp_path: Path) -> None:
    run = load_config(translate_config(tiny_t5, tmp_path / "run", strategy={"type": "gradual"}))
    p = build.parts(run)
    model, new = build.new_model(p)
    p.strategy.apply(model, new)
    stages = [p.strategy.update(None, epoch, 0).stage for epoch in range(5)]  # type: ignore[arg-type]
    assert stages == [
        "gradual stage 1 of 4: top, decoder.top",
        "gradual stage 2 of 4: layer.1, decoder.layer.1",
        "gradual stage 3 of 4: layer.0, decoder.layer.0",
        "gradual stage 4 of 4: word_embeddings",  # T5's shared matrix is also its output layer
        "gradual stage 4 of 4: word_embeddings",
    ]
    out = tmp_path / "trained"
    config = translate_config(tiny_t5, out, strategy={"type": "gradual", "every_steps": 1})
    config["trainer"].update(max_steps=4, eval_every=4)
    result = nlptune.train(config)
    assert [(e["step"], e["stage"]) for e in _events(out, "plan")] == list(
        zip([1, 2, 3], stages[1:4], strict=True)
    )
    assert nlptune.Predictor.from_dir(out).evaluate(config["data"]["dev"]) == pytest.approx(
        result.metrics["dev"], abs=1e-6
    )


@pytest.mark.parametrize(
    ("strategy", "said"),
    [
        ({"every_steps": 0}, r"strategy\.every_steps: .*greater than or equal to 1"),
        ({"layer_lr_decay": 0}, r"strategy\.layer_lr_decay: .*greater than 0"),
        ({"layer_lr_decay": 2.6}, r"strategy\.layer_lr_decay: .*less than or equal to 1"),
        ({"k": 2}, r"unknown key 'strategy\.k'"),
    ],
)
def test_bad_gradual_settings_are_one_error_line(
    strategy: dict[str, Any], said: str, tiny_bert: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=said) as info:
        nlptune.validate(_config(tiny_bert, tmp_path / "run", **strategy))
    assert "\n" not in str(info.value)


def test_static_vectors_refuse_gradual(glove_file: Path, tmp_path: Path) -> None:
    config = static_config(glove_file, tmp_path / "run", strategy={"type": "gradual"})
    with pytest.raises(
        ConfigError,
        match=r"strategy\.type=gradual makes no sense for backbone\.type=static_vectors; use "
        r"full or frozen",
    ):
        nlptune.validate(config)
