"""The contract every registered task meets on every backbone family that can feed its heads.

For each task x family: train a few steps on a fixture, save, load in a fresh Predictor and get
the metrics the run measured (the same predictions); prediction output follows input order;
outputs stream so that a task reading several items per example gets them in order; the run
serves over HTTP and exports to ONNX with the same outputs. A family
that cannot feed a task's heads is refused at config time (checked, not skipped).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import nlptune
from nlptune.errors import ConfigError
from nlptune.registry import BACKBONES, TASKS

from ..conftest import FIXTURES, REPO, tiny_config, toy_vocab

DATA: dict[str, dict[str, Any]] = {
    "text_classification": {
        "train": "sentiment_train.tsv",
        "dev": "sentiment_dev.tsv",
        "text": "sentence",
    },
    "sentence_pair": {
        "train": "pairs_train.tsv",
        "dev": "pairs_dev.tsv",
        "text": "sentence1",
        "text_pair": "sentence2",
    },
    "sequence_labelling": {"train": "ner_train.conll", "dev": "ner_dev.conll", "tag_column": 3},
    "word_sense": {"train": "streusle_train.conllulex", "dev": "streusle_dev.conllulex"},
    "extractive_qa": {"train": "squad_v1_train.json", "dev": "squad_v1_dev.json"},
    "masked_lm": {"train": "corpus/train.txt", "dev": "corpus/dev.txt"},
    "text_to_text": {
        "train": "translate/train",
        "dev": "translate/dev",
        "source_lang": "en",
        "target_lang": "de",
    },
}
TASK_SETTINGS = {"extractive_qa": {"doc_stride": 8}, "text_to_text": {"max_target_length": 16}}
FAMILIES = ["hf_encoder", "hf_seq2seq", "toy_bag", "static_vectors"]
# a small BiLSTM with character features: the family's most complex path
STATIC = {"hidden": 16, "chars": "cnn", "min_count": 1, "dropout": 0.1}


def test_every_builtin_task_has_a_contract_case() -> None:
    builtin = {n for n, cls in TASKS if cls.__module__.startswith("nlptune.")}
    assert builtin == set(DATA), "add the new task to tests/tasks/test_contract.py DATA"


def _config(task: str, family: str, model: Path, out: Path, **extra: Any) -> dict[str, Any]:
    data = {k: (str(FIXTURES / v) if k in ("train", "dev") else v) for k, v in DATA[task].items()}
    config = tiny_config(
        model,
        out,
        task={"type": task, **TASK_SETTINGS.get(task, {})},
        trainer={"max_steps": 6, "eval_every": 3, "lr": 5e-3},
        **extra,
    )
    config["data"] = data
    if family != "hf_encoder":
        config["backbone"] = {"type": family, "path": str(model), "max_length": 32}
    if family == "static_vectors":
        config["backbone"].update(STATIC, max_length=128)  # pieces: a word and its characters
    return config


@pytest.fixture
def model_for(
    tiny_bert: Path, tiny_t5: Path, glove_file: Path, toy_plugin: Path, tmp_path: Path
) -> Any:
    models = {"hf_encoder": tiny_bert, "hf_seq2seq": tiny_t5, "static_vectors": glove_file}
    return lambda family: models[family] if family in models else toy_vocab(tmp_path)


def _shown(rows: list[dict[str, Any]]) -> str:
    """Predictions as text with scores rounded (batch composition moves the last digits)."""

    def rounded(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 4)
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rounded(v) for v in value]
        return value

    return json.dumps(rounded(rows), sort_keys=True)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("task", sorted(DATA))
def test_train_save_load_predict(task: str, family: str, model_for: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = _config(task, family, model_for(family), out)
    heads = {spec.kind for spec in TASKS.get(task)(max_length=32).heads().values()}
    if not heads <= BACKBONES.get(family).head_kinds:
        with pytest.raises(ConfigError, match="can't feed"):
            nlptune.validate(config)
        return
    result = nlptune.train(config)
    assert result.metrics["steps"] == 6

    predictor = nlptune.Predictor.from_dir(out)  # a fresh Predictor: the one load path
    dev = config["data"]["dev"]
    assert predictor.evaluate(dev) == pytest.approx(result.metrics["dev"], abs=1e-6)

    examples = predictor.task.read(dev, labelled=False)
    features = predictor._featurize(examples, labelled=False)
    order = [i for i, _ in predictor._stream(features)]
    assert sorted(order) == list(range(len(features)))  # every item scored once
    if not predictor.task.eval_by_length:  # the items of one example arrive together, in order
        owner = [int(m[0]) for m in features.meta["example"]]
        runs = [owner[i] for k, i in enumerate(order) if k == 0 or owner[order[k - 1]] != owner[i]]
        assert len(runs) == len(set(runs))  # each example's items in one consecutive run
        assert all(
            order[k] < order[k + 1]
            for k in range(len(order) - 1)
            if owner[order[k]] == owner[order[k + 1]]
        )

    rows = predictor.predict(examples)
    assert len(rows) == len(examples)
    backwards = predictor.predict(examples[::-1])
    assert _shown(backwards[::-1]) == _shown(rows)  # output follows input order
    _check_serving(predictor, out)
    _check_export(out, family, tmp_path / "onnx")


def _check_serving(predictor: Any, run: Path) -> None:
    """``nlptune serve`` answers the task's own example input (one and a list) as
    ``Predictor.predict`` does."""
    pytest.importorskip("httpx")  # FastAPI's TestClient needs it
    testclient = pytest.importorskip("fastapi.testclient")
    from nlptune.serve import Limits
    from nlptune.serve_app import create_app

    with testclient.TestClient(create_app(predictor, run, Limits())) as client:
        example = client.get("/info").json()["example"]
        one = client.post("/predict", json=example)
        assert one.status_code == 200, one.text
        many = client.post("/predict", json=[example, example])
        assert many.status_code == 200 and len(many.json()) == 2, many.text


def _check_export(run: Path, family: str, out: Path) -> None:
    """``nlptune export --format onnx``: on the run's dev set the ONNX runner's outputs (labels,
    tags, answers, generated text) are PyTorch's and so are the metrics; a family nlptune does
    not ship (a plugin) is refused with a reason."""
    if importlib.util.find_spec("onnx") is None or importlib.util.find_spec("onnxruntime") is None:
        return  # export is an extra: nlptune[onnx]
    from nlptune import onnx_export
    from nlptune.errors import NlptuneError

    if family not in onnx_export.FAMILIES:
        with pytest.raises(NlptuneError, match="ONNX export supports the model families"):
            onnx_export.export(run, out)
        return
    check = onnx_export.export(run, out)["check"]
    assert check["examples"] > 0 and check["same_outputs"] == 1.0, check
    assert check["max_abs_diff"] < 1e-3, check
    ours, theirs = check["pytorch"]["metrics"], check["onnx"]["metrics"]
    assert ours.keys() == theirs.keys()
    for key, value in ours.items():
        if isinstance(value, float):
            assert theirs[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
        else:
            assert theirs[key] == value, key


@pytest.mark.parametrize("family", ["hf_encoder", "toy_bag", "static_vectors"])
def test_predict_in_a_fresh_process(family: str, model_for: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    nlptune.train(_config("text_classification", family, model_for(family), out))
    inputs = tmp_path / "in.txt"
    inputs.write_text("a great film\nawful and boring\nthe music\n")
    # the plugin is on sys.path (the toy_plugin fixture), so the child process finds it too
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-m", "nlptune", "predict", str(out), "--input", str(inputs)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    theirs = [json.loads(x) for x in result.stdout.splitlines()]
    ours = nlptune.Predictor.from_dir(out).predict(inputs.read_text().splitlines())
    assert _shown(theirs) == _shown(ours)


@pytest.mark.parametrize("family", ["hf_encoder", "toy_bag", "static_vectors"])
@pytest.mark.parametrize(
    "strategy",
    [
        {"type": "full"},
        {"type": "frozen"},
        {"type": "last_k", "k": 1},
        {"type": "gradual", "every_steps": 2},
        {"type": "lora", "r": 2},
        {"type": "lora", "r": 2, "merge": True},
    ],
    ids=["full", "frozen", "last_k", "gradual", "lora", "lora_merged"],
)
def test_strategies(strategy: dict[str, Any], family: str, model_for: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = _config("sequence_labelling", family, model_for(family), out)
    config["strategy"] = {"freeze_embeddings": False, **strategy}
    name = strategy["type"]
    if family == "static_vectors" and name in ("last_k", "gradual", "lora"):  # refused
        with pytest.raises(ConfigError, match="makes no sense.*use full or frozen"):
            nlptune.validate(config)
        return
    if family == "toy_bag" and name == "lora":  # no linear layers to adapt: refused
        with pytest.raises(ConfigError, match="use backbone.type hf_encoder or hf_seq2seq"):
            nlptune.validate(config)
        return
    if name == "lora":
        pytest.importorskip("peft")
    result = nlptune.train(config)
    predictor = nlptune.Predictor.from_dir(out)
    assert predictor.evaluate(config["data"]["dev"]) == pytest.approx(
        result.metrics["dev"], abs=1e-6
    )
    if name == "lora":  # adapters (merged or not) export like any run
        _check_export(out, family, tmp_path / "onnx")
