"""End-to-end runs on a tiny random BERT: train, save, load with transformers, predict, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import nlptune
from nlptune import cli
from nlptune.errors import NlptuneError

from ..conftest import FIXTURES, tiny_config


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def test_train_saves_a_standard_artefact(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = nlptune.train(tiny_config(tiny_bert, out))
    for name in (
        "config.yaml",
        "labels.json",
        "metrics.json",
        "train_log.jsonl",
        "meta.json",
        "model/config.json",
        "model/model.safetensors",
        "model/tokenizer_config.json",
    ):
        assert (out / name).is_file(), name
    assert (
        not list(out.rglob("*.bin"))
        and not list(out.rglob("*.pt"))
        and not list(out.rglob("*.pkl"))
    )
    assert not (out / "checkpoints").exists()
    assert result.metrics["dev"]["accuracy"] >= 0.75  # the fixture is learnable
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 1 and len(meta["data"]["train"]["sha256"]) == 64
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if r["event"] == "train"]
    assert losses[-1] < losses[0]

    from transformers import AutoModelForSequenceClassification, pipeline

    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert model.config.id2label == {0: "neg", 1: "pos"}
    classify = pipeline("text-classification", model=str(out / "model"), device="cpu")
    texts = ["a great and wonderful film", "a boring , awful plot"]
    theirs = classify(texts)
    ours = nlptune.Predictor.from_dir(out).predict(texts)
    assert [t["label"] for t in theirs] == [o["label"] for o in ours]
    assert [t["score"] for t in theirs] == pytest.approx([o["score"] for o in ours], abs=1e-3)


def test_cli_evaluate_and_predict(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    nlptune.train(tiny_config(tiny_bert, out, trainer={"epochs": 1}))
    capsys.readouterr()
    assert cli.main(["evaluate", str(out), "--data", str(FIXTURES / "sentiment_dev.tsv")]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    saved = json.loads((out / "metrics.json").read_text())["dev"]
    assert metrics == pytest.approx(saved, abs=1e-6)

    inputs = tmp_path / "sentences.txt"
    inputs.write_text("a great film\nawful and boring\n\nthe plot\n")
    preds = tmp_path / "preds.jsonl"
    assert cli.main(["predict", str(out), "--input", str(inputs), "--output", str(preds)]) == 0
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert len(rows) == 4 and all(set(r) == {"label", "score"} for r in rows)
    direct = nlptune.Predictor.from_dir(out).predict(inputs.read_text().splitlines())
    assert [r["label"] for r in rows] == [d["label"] for d in direct]


def test_sentence_pair_regression_and_classification(tiny_bert: Path, tmp_path: Path) -> None:
    data = {
        "train": str(FIXTURES / "pairs_train.tsv"),
        "dev": str(FIXTURES / "pairs_dev.tsv"),
        "text": "sentence1",
        "text_pair": "sentence2",
        "label": "score",
    }
    reg = nlptune.train(
        tiny_config(tiny_bert, tmp_path / "reg", task={"type": "sentence_pair"}, data=data)
    )
    assert set(reg.metrics["dev"]) == {"pearson", "spearman", "mse"}
    assert json.loads((tmp_path / "reg" / "labels.json").read_text())["problem"] == "regression"
    pred = nlptune.Predictor.from_dir(tmp_path / "reg").predict(
        [("the plot was good", "a great film")]
    )
    assert set(pred[0]) == {"score"}

    cls = nlptune.train(
        tiny_config(
            tiny_bert,
            tmp_path / "cls",
            task={"type": "sentence_pair", "metric": "f1"},
            data={**data, "label": "label"},
        )
    )
    assert "f1" in cls.metrics["dev"]
    # a real pair: token type ids mark the second text
    predictor = nlptune.Predictor.from_dir(tmp_path / "cls")
    feats = predictor.task.featurize(predictor.task.read(data["dev"]), predictor.text)
    assert feats.sequences["token_type_ids"][0].max() == 1


def test_multi_label(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "ml"
    data = {
        "train": str(FIXTURES / "multilabel_train.jsonl"),
        "dev": str(FIXTURES / "multilabel_dev.jsonl"),
        "text": "text",
        "label": "labels",
    }
    result = nlptune.train(tiny_config(tiny_bert, out, data=data, trainer={"epochs": 15}))
    assert result.metrics["dev"]["micro_f1"] > 0.5
    pred = nlptune.Predictor.from_dir(out).predict(["the music and the song"])
    assert isinstance(pred[0]["labels"], list)
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert model.config.problem_type == "multi_label_classification"


@pytest.mark.parametrize(
    "strategy",
    [{"type": "frozen"}, {"type": "last_k", "k": 1}, {"type": "full", "layer_lr_decay": 0.8}],
)
def test_strategies_train_only_their_parameters(
    tiny_bert: Path, tmp_path: Path, strategy: dict, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / strategy["type"]
    with caplog.at_level("INFO", logger="nlptune"):
        nlptune.train(
            tiny_config(
                tiny_bert,
                out,
                strategy={**strategy, "freeze_embeddings": True},
                trainer={"epochs": 1},
            )
        )
    assert "parameters train" in caplog.text
    before = load_file(str(tiny_bert / "model.safetensors"))
    after = {k.removeprefix("bert."): v for k, v in _weights(out).items()}
    changed = {k for k, v in before.items() if k in after and not torch.equal(v, after[k])}
    assert "embeddings.word_embeddings.weight" not in changed
    if strategy["type"] == "frozen":
        assert "frozen backbone: outputs computed once" in caplog.text
        assert changed <= {"pooler.dense.weight", "pooler.dense.bias"}
    elif strategy["type"] == "last_k":
        assert changed and all("layer.1." in k or "pooler" in k for k in changed)
    else:
        assert any("layer.0." in k for k in changed)
    metrics = json.loads((out / "metrics.json").read_text())
    counts = metrics["parameters"]
    assert 0 < counts["trainable"] < counts["total"]  # the word embeddings stay fixed
    if strategy["type"] == "frozen":
        assert counts["trainable"] < counts["total"] / 10
    assert metrics["peak_rss_mb"] > 50


def test_resume_equals_uninterrupted_run(tiny_bert: Path, tmp_path: Path) -> None:
    trainer = {"epochs": 2, "save_every": 4, "eval_every": 6}
    whole = nlptune.train(tiny_config(tiny_bert, tmp_path / "whole", trainer=trainer))

    class Stop(Exception):
        pass

    def stop_at_7(state: object) -> None:
        if state.step == 7:  # type: ignore[attr-defined]
            raise Stop

    cut = tiny_config(tiny_bert, tmp_path / "cut", trainer=trainer)
    with pytest.raises(Stop):
        nlptune.train(cut, callbacks=[stop_at_7])
    assert not (tmp_path / "cut" / "meta.json").exists()  # a crashed run never looks finished
    with pytest.raises(NlptuneError, match="not a finished run"):
        nlptune.Predictor.from_dir(tmp_path / "cut")
    with pytest.raises(NlptuneError, match="--resume"):
        nlptune.train(cut)
    resumed = nlptune.train(cut, resume=True)
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["dev"] == whole.metrics["dev"]
    assert resumed.metrics["best_step"] == whole.metrics["best_step"]


def test_second_run_hits_the_feature_cache(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tiny_config(
        tiny_bert, tmp_path / "a", trainer={"max_steps": 2}, data={"cache_dir": str(tmp_path / "c")}
    )
    with caplog.at_level("INFO", logger="nlptune"):
        nlptune.train(config)
        assert "train: 96 examples (tokenized and cached)" in caplog.text
        caplog.clear()
        nlptune.train({**config, "output_dir": str(tmp_path / "b")})
        assert "train: 96 examples (feature cache hit)" in caplog.text
