"""docs/extending.md's worked examples, registered through entry points, train and reload."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import nlptune
from nlptune.errors import ConfigError

from ..conftest import FIXTURES, tiny_config, toy_vocab


def _toy(vocab: Path, out: Path, **sections: object) -> dict:
    config = tiny_config(vocab, out, **sections)
    config["backbone"] = {"type": "toy_bag", "path": str(vocab), "dim": 24, "max_length": 32}
    return config


@pytest.mark.usefixtures("toy_plugin")
def test_toy_backbone_classifies_and_tags(tmp_path: Path) -> None:
    vocab = toy_vocab(tmp_path)
    result = nlptune.train(_toy(vocab, tmp_path / "tc", trainer={"epochs": 15, "lr": 1e-2}))
    assert result.metrics["dev"]["accuracy"] >= 0.7  # bags of learned embeddings separate it
    predictor = nlptune.Predictor.from_dir(tmp_path / "tc")
    assert predictor.evaluate(str(FIXTURES / "sentiment_dev.tsv")) == pytest.approx(
        result.metrics["dev"], abs=1e-6
    )
    assert (tmp_path / "tc" / "model" / "vocab.txt").is_file()

    data = {"train": str(FIXTURES / "ner_train.conll"), "dev": str(FIXTURES / "ner_dev.conll")}
    tagged = nlptune.train(
        _toy(
            vocab,
            tmp_path / "ner",
            task={"type": "sequence_labelling"},
            data={**data, "tag_column": 3},
            trainer={"epochs": 10, "lr": 1e-2},
        )
    )
    assert tagged.metrics["dev"]["f1"] > 0.3
    rows = nlptune.Predictor.from_dir(tmp_path / "ner").predict(["the music was very good"])
    assert len(rows[0]["tags"]) == 5


@pytest.mark.usefixtures("toy_plugin")
def test_toy_backbone_refuses_a_head_it_cannot_feed(tmp_path: Path) -> None:
    config = _toy(
        toy_vocab(tmp_path), tmp_path / "qa", task={"type": "extractive_qa", "doc_stride": 8}
    )
    config["data"] = {"train": str(FIXTURES / "squad_v1_train.json")}
    with pytest.raises(ConfigError, match="can't feed the span head.*use backbone.type hf_encoder"):
        nlptune.validate(config)


@pytest.mark.usefixtures("toy_plugin")
def test_toy_task_on_a_transformers_encoder(tiny_bert: Path, tmp_path: Path) -> None:
    rows = []
    for line in (FIXTURES / "sentiment_train.tsv").read_text().splitlines()[1:]:
        text, label = line.split("\t")
        rows.append({"text": text, "score": float(text.count("good") + (label == "pos"))})
    for name, part in (("train", rows[:80]), ("dev", rows[80:])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    config = tiny_config(tiny_bert, tmp_path / "score", task={"type": "toy_score"})
    config["data"] = {"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "dev.jsonl")}
    result = nlptune.train(config)
    assert set(result.metrics["dev"]) == {"pearson", "spearman", "mse"}
    assert result.metrics["dev"]["pearson"] > 0.3
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "score" / "model")
    assert model.config.problem_type == "regression" and model.config.num_labels == 1
    (pred,) = nlptune.Predictor.from_dir(tmp_path / "score").predict(["a good film"])
    assert set(pred) == {"score"}


@pytest.mark.usefixtures("toy_plugin")
def test_toy_strategy_switches_plan_and_resumes_exactly(
    tiny_bert_no_dropout: Path, tmp_path: Path
) -> None:
    strategy = {"type": "head_first", "head_epochs": 1, "freeze_embeddings": False}
    trainer = {"epochs": 2, "save_every": 5}  # 12 steps an epoch; no dev: the last weights stay
    key = "encoder.layer.0.output.dense.weight"
    original = load_file(str(tiny_bert_no_dropout / "model.safetensors"))[key]
    moved: dict[int, bool] = {}

    def watch(state: object) -> None:  # checkpoints (every 5 steps) hold every planned weight
        step = state.step  # type: ignore[attr-defined]
        if step in (10, 15):
            saved = load_file(
                str(tmp_path / "whole" / "checkpoints" / "last" / "model.safetensors")
            )
            moved[step] = not torch.equal(saved[f"encoder.base.{key}"], original)

    whole = tiny_config(
        tiny_bert_no_dropout, tmp_path / "whole", strategy=strategy, trainer=trainer
    )
    whole["data"]["dev"] = None
    nlptune.train(whole, callbacks=[watch])
    assert moved == {10: False, 15: True}  # the encoder joins after the first epoch

    class Stop(Exception):
        pass

    def stop_at_16(state: object) -> None:
        if state.step == 16:  # type: ignore[attr-defined]
            raise Stop

    cut = {**whole, "output_dir": str(tmp_path / "cut")}
    with pytest.raises(Stop):
        nlptune.train(cut, callbacks=[stop_at_16])
    nlptune.train(cut, resume=True)
    a = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(original, a[f"bert.{key}"])  # the encoder did train
