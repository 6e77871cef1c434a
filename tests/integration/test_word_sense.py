"""Word-sense task on STREUSLE- and SemEval-format fixtures with a tiny BERT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nlptune
from nlptune.data.wsd import read_semeval, read_streusle

from ..conftest import FIXTURES, tiny_config


def test_readers() -> None:
    targets = read_streusle(str(FIXTURES / "streusle_train.conllulex"))
    assert {e.label for e in targets} >= {"p.Locus", "p.Goal", "p.Topic|p.Theme"}
    mwe = [e for e in targets if e.label == "p.Circumstance|p.Locus"]
    assert mwe and all(len(e.target) == 2 and e.lemma == "in the" for e in mwe)
    xml = read_semeval(str(FIXTURES / "semeval"))
    assert len(xml) == 80 and {e.lemma for e in xml} == {"with", "in"}
    e = xml[0]
    assert e.words[e.target[0]] == e.lemma and "&" in e.words  # entities are decoded


def _config(model: Path, out: Path, train: str, dev: str, **extra: object) -> dict:
    config = tiny_config(
        model, out, task={"type": "word_sense", **extra}, trainer={"epochs": 8, "lr": 3e-3}
    )
    config["data"] = {"train": train, "dev": dev}
    return config


@pytest.mark.parametrize("strategy", ["full", "frozen", "last_k"])
def test_streusle_trains_with_role_and_function_accuracy(
    tiny_bert: Path, tmp_path: Path, strategy: str
) -> None:
    out = tmp_path / "ws"
    config = _config(
        tiny_bert,
        out,
        str(FIXTURES / "streusle_train.conllulex"),
        str(FIXTURES / "streusle_dev.conllulex"),
    )
    config["strategy"] = {"type": strategy, **({"k": 1} if strategy == "last_k" else {})}
    result = nlptune.train(config)
    dev = result.metrics["dev"]
    assert set(dev) == {"accuracy", "macro_f1", "role_accuracy", "function_accuracy"}
    assert dev["role_accuracy"] >= dev["accuracy"] and dev["function_accuracy"] >= dev["accuracy"]
    if strategy == "full":
        assert dev["accuracy"] > 0.6
    assert (out / "model" / "sense_head.safetensors").is_file()
    predictor = nlptune.Predictor.from_dir(out)
    pred = predictor.predict(["the film <head>in</head> the music"])[0]
    assert pred["label"] == "p.Locus" or pred["label"] in predictor.task.labels


def test_candidate_masking_restricts_to_the_lemmas_senses(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "sem"
    path = str(FIXTURES / "semeval")
    nlptune.train(_config(tiny_bert, out, path, path, candidates=True))
    state = json.loads((out / "labels.json").read_text())
    assert set(state["lemma_senses"]) == {"with", "in"}
    predictor = nlptune.Predictor.from_dir(out)
    for row in predictor.predict(
        [{"words": ["the", "music", "with", "the", "cast"], "target": [2], "lemma": "with"}]
    ):
        allowed = {state["labels"][i] for i in state["lemma_senses"]["with"]}
        assert row["label"] in allowed
    unseen = predictor.predict([{"words": ["to", "the", "film"], "target": [0]}])[0]
    assert unseen["label"] in state["labels"]  # back-off: every sense


def test_hold_out_by_lemma_keeps_every_dev_sense_in_train() -> None:
    from nlptune.build import hold_out

    examples = read_semeval(str(FIXTURES / "semeval"))
    train, dev = hold_out(examples, 0.1, seed=3)
    assert len(dev) == 8 and len(train) == 72  # 10 % of each of the two 40-instance lemmas
    assert {e.lemma for e in dev} == {"with", "in"}
    assert {e.label for e in dev} <= {e.label for e in train}
    assert hold_out(examples, 0.1, seed=3) == (train, dev)  # seeded


def test_semeval_instance_with_empty_head_is_skipped_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "x.xml"
    path.write_text(
        '<lexelt item="at"><instance id="a1"><answer instance="a1" senseid="1"/>'
        "<context>we met <head>at</head> noon</context></instance>"
        '<instance id="a2"><answer instance="a2" senseid="1"/>'
        "<context>we met at noon <head></head></context></instance></lexelt>"
    )
    with caplog.at_level("WARNING", logger="nlptune"):
        examples = read_semeval(str(path))
    assert [e.words for e in examples] == [("we", "met", "at", "noon")]
    assert "instance a2: empty <head>, instance skipped" in caplog.text
