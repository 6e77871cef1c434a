"""strategy lora (peft) on tiny models: adapters and head train, the unmerged artefact (adapters +
head + the base model's identity) reloads through the one load path, also in a fresh process,
and refuses a base that is missing or different; ``merge: true`` saves a standard transformers
model. Every option's bad input is one error line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import nlptune
from nlptune import build, cli
from nlptune.errors import ConfigError, ModelError

from ..conftest import (
    REPO,
    TRANSLATE,
    static_config,
    stopped_then_resumed,
    tiny_config,
    translate_config,
)
from ..tasks.test_contract import _config as contract_config

pytest.importorskip("peft")

INPUTS = ["a great film", "awful and boring", "the music was fine", "i loved it"]


def _lora(model: Path, out: Path, **strategy: Any) -> dict[str, Any]:
    config = tiny_config(model, out, trainer={"epochs": 3, "lr": 1e-2})
    config["strategy"] = {"type": "lora", "r": 4, "lr_scale": 1.0, **strategy}
    return config


def test_adapters_learn_at_lr_times_lr_scale(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tiny_config(tiny_bert, tmp_path / "run", trainer={"max_steps": 2, "lr": 1e-4})
    config["strategy"] = {"type": "lora", "r": 4}  # lr_scale 10 by default
    with caplog.at_level("INFO", logger="nlptune"):
        nlptune.train(config)
    groups = [r.getMessage() for r in caplog.records if "optimizer group" in r.getMessage()]
    assert any("lr 0.001," in g and "encoder." in g for g in groups), groups  # adapters
    assert any("lr 0.001," in g and "heads" in g for g in groups), groups
    assert not any("lr 0.0001," in g for g in groups), groups
    caplog.clear()
    config["trainer"]["head_lr"] = 3e-4  # an explicit head rate wins
    with caplog.at_level("INFO", logger="nlptune"):
        nlptune.train(config, overwrite=True)
    groups = [r.getMessage() for r in caplog.records if "optimizer group" in r.getMessage()]
    assert any("lr 0.0003," in g and "heads" in g for g in groups), groups


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path) -> Path:
    """A copy of the tiny BERT that tests may change (the run records where its base was)."""
    folder = tmp_path_factory.mktemp("lora") / "base"
    shutil.copytree(tiny_bert, folder)
    return folder


@pytest.fixture(scope="module")
def lora_run(base: Path) -> tuple[Path, dict[str, Any], Any]:
    out = base.parent / "run"
    config = _lora(base, out)
    return out, config, nlptune.train(config)


def test_only_adapters_and_head_train_and_are_saved(
    lora_run: tuple[Path, dict[str, Any], Any], base: Path
) -> None:
    out, config, result = lora_run
    counts = result.metrics["parameters"]
    assert 0 < counts["trainable"] < counts["total"] / 4
    names = sorted(p.name for p in (out / "model").iterdir())
    for name in ("adapter_config.json", "adapter_model.safetensors", "nlptune_lora.json"):
        assert name in names
    assert "model.safetensors" not in names and "config.json" not in names  # no base weights
    adapters = load_file(str(out / "model" / "adapter_model.safetensors"))
    assert adapters and all(".lora_A." in k or ".lora_B." in k for k in adapters)
    assert all(k.startswith("base_model.model.encoder.layer.") for k in adapters)
    assert {k.split(".")[-3] for k in adapters} == {"query", "value"}  # BERT's default targets
    info = json.loads((out / "model" / "nlptune_lora.json").read_text())
    assert (
        info["bases"][0]["folder"] == str(base.resolve()) and len(info["bases"][0]["sha256"]) == 64
    )
    heads = load_file(str(out / "model" / "nlptune_heads.safetensors"))
    assert heads and all(k.startswith("heads.") for k in heads)

    predictor = nlptune.Predictor.from_dir(out)  # the one load path: base + adapters + head
    assert predictor.evaluate(config["data"]["dev"]) == pytest.approx(
        result.metrics["dev"], abs=1e-6
    )
    restored = dict(predictor.model.named_parameters())
    assert all(torch.equal(restored[k], v) for k, v in heads.items())


def test_an_unmerged_run_predicts_the_same_in_a_fresh_process(
    lora_run: tuple[Path, dict[str, Any], Any], tmp_path: Path
) -> None:
    out = lora_run[0]
    inputs = tmp_path / "in.txt"
    inputs.write_text("\n".join(INPUTS) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "nlptune", "predict", str(out), "--input", str(inputs)],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    theirs = [json.loads(x) for x in result.stdout.splitlines()]
    ours = nlptune.Predictor.from_dir(out).predict(INPUTS)
    assert [r["label"] for r in theirs] == [r["label"] for r in ours]
    assert [r["score"] for r in theirs] == pytest.approx([r["score"] for r in ours], abs=1e-5)


def test_merge_saves_a_standard_model_with_the_same_predictions(
    lora_run: tuple[Path, dict[str, Any], Any], base: Path
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    out, config, result = lora_run
    merged_out = base.parent / "merged"
    merged = nlptune.train(_lora(base, merged_out, merge=True))
    assert merged.metrics["dev"] == pytest.approx(result.metrics["dev"], abs=1e-6)
    names = {p.name for p in (merged_out / "model").iterdir()}
    assert {"config.json", "model.safetensors"} <= names and "adapter_config.json" not in names
    model = AutoModelForSequenceClassification.from_pretrained(merged_out / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(merged_out / "model")
    assert not any("lora" in n for n, _ in model.named_parameters())
    with torch.no_grad():
        probs = model(**tokenizer(INPUTS, return_tensors="pt", padding=True)).logits.softmax(-1)
    unmerged = nlptune.Predictor.from_dir(out).predict(INPUTS)
    assert [model.config.id2label[int(i)] for i in probs.argmax(-1)] == [
        r["label"] for r in unmerged
    ]
    assert probs.max(-1).values.tolist() == pytest.approx([r["score"] for r in unmerged], 1e-4)
    top = pipeline("text-classification", model=model, tokenizer=tokenizer)(INPUTS[0])[0]
    assert top["label"] == unmerged[0]["label"]
    again = nlptune.Predictor.from_dir(merged_out).predict(INPUTS)  # nlptune's load path too
    assert [r["label"] for r in again] == [r["label"] for r in unmerged]
    assert [r["score"] for r in again] == pytest.approx([r["score"] for r in unmerged], abs=1e-5)


def test_a_missing_or_different_base_is_refused(
    lora_run: tuple[Path, dict[str, Any], Any], base: Path, tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "run"
    shutil.copytree(lora_run[0], out)
    moved = base.with_name("base-moved")
    weights = base / "model.safetensors"
    original = weights.read_bytes()
    try:
        state = load_file(str(weights))
        save_file({k: v + 0.01 for k, v in state.items()}, str(weights))
        with pytest.raises(ModelError, match=r"holds other weights .*restore the base model"):
            nlptune.Predictor.from_dir(out)
        base.rename(moved)
        inputs = tmp_path / "in.txt"
        inputs.write_text("a film\n")
        assert cli.main(["predict", str(out), "--input", str(inputs)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), err
        assert "which is not found" in err[0] and "strategy.merge: true" in err[0]
    finally:
        if moved.exists():
            moved.rename(base)
        weights.write_bytes(original)
    nlptune.Predictor.from_dir(out)  # the base is back: loads again


def test_resume_equals_uninterrupted_run(base: Path, tmp_path: Path) -> None:
    def config(out: Path) -> dict[str, Any]:
        run = _lora(base, out)
        run["trainer"].update(epochs=2, save_every=4, eval_every=6)
        return run

    whole = nlptune.train(config(tmp_path / "whole"))

    resumed = stopped_then_resumed(config(tmp_path / "cut"), 7)
    for name in ("adapter_model.safetensors", "nlptune_heads.safetensors"):
        a = load_file(str(tmp_path / "whole" / "model" / name))
        b = load_file(str(tmp_path / "cut" / "model" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["dev"] == whole.metrics["dev"]


def test_an_unmerged_run_is_no_model_to_start_from(
    lora_run: tuple[Path, dict[str, Any], Any], tmp_path: Path
) -> None:
    config = tiny_config(lora_run[0] / "model", tmp_path / "next")
    with pytest.raises(ModelError, match=r"holds LoRA adapters, not a whole model.*merge: true"):
        nlptune.validate(config)


@pytest.mark.parametrize("merge", [False, True], ids=["adapters", "merged"])
@pytest.mark.parametrize("task", ["sentence_pair", "word_sense", "extractive_qa", "masked_lm"])
def test_every_encoder_task_reloads_what_it_measured(
    task: str, merge: bool, tiny_bert: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = contract_config(task, "hf_encoder", tiny_bert, out)
    config["strategy"] = {"type": "lora", "r": 2, "merge": merge}
    result = nlptune.train(config)
    assert (out / "model" / "adapter_model.safetensors").is_file() != merge
    assert nlptune.Predictor.from_dir(out).evaluate(config["data"]["dev"]) == pytest.approx(
        result.metrics["dev"], abs=1e-5
    )


@pytest.mark.parametrize("family", ["t5", "bart", "bert2bert"])
def test_encoder_decoders_adapt_both_stacks(
    family: str, tiny_t5: Path, tiny_bart: Path, translate_bert: Path, tmp_path: Path
) -> None:
    model = {"t5": tiny_t5, "bart": tiny_bart, "bert2bert": translate_bert}[family]
    out = tmp_path / "run"
    config = translate_config(model, out, trainer={"max_steps": 4, "eval_every": 4})
    config["strategy"] = {"type": "lora", "r": 2, "target_modules": None}
    result = nlptune.train(config)
    adapters = load_file(str(out / "model" / "adapter_model.safetensors"))
    leaves = {k.split(".")[-3] for k in adapters}
    assert leaves == {"t5": {"q", "v"}, "bart": {"q_proj", "v_proj"}}.get(
        family, {"query", "value"}
    )
    assert any("decoder" in k for k in adapters) and any("encoder" in k for k in adapters)
    own = load_file(str(out / "model" / "nlptune_heads.safetensors"))
    if family == "bert2bert":  # newly initialised cross-attention trains in full, and is saved
        assert any("crossattention" in k for k in own)
    predictor = nlptune.Predictor.from_dir(out)
    assert predictor.evaluate(str(TRANSLATE / "dev")) == pytest.approx(
        result.metrics["dev"], abs=1e-6
    )


def test_a_merged_seq2seq_model_generates_as_nlptune_predicts(
    tiny_t5: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    out = tmp_path / "run"
    config = translate_config(tiny_t5, out, trainer={"max_steps": 20, "eval_every": 20})
    config["strategy"] = {"type": "lora", "r": 4, "merge": True}
    nlptune.train(config)
    sources = (TRANSLATE / "dev.en").read_text().splitlines()[:3]
    ours = [r["generated_text"] for r in nlptune.Predictor.from_dir(out).predict(sources)]
    model = AutoModelForSeq2SeqLM.from_pretrained(out / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    theirs = []
    for source in sources:
        ids = model.generate(**tokenizer(source, return_tensors="pt"))
        theirs.append(tokenizer.decode(ids[0], skip_special_tokens=True).strip())
    assert theirs == ours


@pytest.mark.parametrize(
    ("strategy", "said"),
    [
        ({"r": 0}, r"strategy\.r: .*greater than or equal to 1"),
        ({"alpha": 0}, r"strategy\.alpha: .*greater than 0"),
        ({"dropout": 1}, r"strategy\.dropout: .*less than 1"),
        ({"target_modules": []}, r"strategy\.target_modules: .*at least 1"),
        (
            {"target_modules": ["query", "qkv"]},
            r"strategy\.target_modules: 'qkv' is no linear layer of this bert model; its linear "
            r"layers are: dense, key, query, value$",
        ),
    ],
)
def test_bad_lora_settings_are_one_error_line(
    strategy: dict[str, Any], said: str, tiny_bert: Path, tmp_path: Path
) -> None:
    config = _lora(tiny_bert, tmp_path / "run", **strategy)
    with pytest.raises(ConfigError, match=said) as info:
        nlptune.validate(config)
    assert "\n" not in str(info.value)


def test_refused_combinations(tiny_bert: Path, glove_file: Path, tmp_path: Path) -> None:
    merge_elsewhere = tiny_config(tiny_bert, tmp_path / "a", strategy={"merge": True})
    with pytest.raises(ConfigError, match=r"unknown key 'strategy\.merge'"):
        nlptune.validate(merge_elsewhere)
    vectors = static_config(glove_file, tmp_path / "b", strategy={"type": "lora"})
    with pytest.raises(
        ConfigError,
        match=r"strategy\.type=lora makes no sense for backbone\.type"
        r"=static_vectors; use full or frozen",
    ):
        nlptune.validate(vectors)
    scratch = _lora(tiny_bert, tmp_path / "c")
    scratch["backbone"]["init"] = "random"
    with pytest.raises(ConfigError, match="adapts pre-trained weights.*use strategy.type full"):
        nlptune.validate(scratch)


def test_without_peft_lora_says_how_to_install_it(
    lora_run: tuple[Path, dict[str, Any], Any],
    tiny_bert: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    path = tmp_path / "lora.yaml"
    path.write_text(json.dumps(_lora(tiny_bert, tmp_path / "run")))
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft fails
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: strategy.type=lora needs peft, which is not installed: pip install 'nlptune[lora]'"
    ]
    with pytest.raises(ModelError, match=r"holds LoRA adapters.*pip install 'nlptune\[lora\]'"):
        build.load_trained(lora_run[0])
