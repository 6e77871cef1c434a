"""Extractive QA end to end on a tiny BERT: windows, training, artefact, pipeline, predict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import nlptune
from nlptune import cli

from ..conftest import FIXTURES, tiny_config


def _qa_config(model: Path, out: Path, version: str, **trainer: object) -> dict:
    config = tiny_config(
        model,
        out,
        task={"type": "extractive_qa", "doc_stride": 8},
        backbone={"max_length": 32},
        trainer={"epochs": 4, "lr": 3e-3, **trainer},
    )
    config["data"] = {
        "train": str(FIXTURES / f"squad_{version}_train.json"),
        "dev": str(FIXTURES / f"squad_{version}_dev.json"),
    }
    return config


@pytest.mark.parametrize("strategy", ["full", "frozen"])
def test_v1_trains_saves_and_loads_in_the_pipeline(
    tiny_bert: Path, tmp_path: Path, strategy: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "qa"
    config = _qa_config(tiny_bert, out, "v1")
    config["strategy"]["type"] = strategy
    result = nlptune.train(config)
    dev = result.metrics["dev"]
    assert set(dev) == {"exact", "f1", "total"} and dev["total"] == 48
    assert json.loads((out / "labels.json").read_text())["version"] == "v1"

    from transformers import AutoModelForQuestionAnswering, AutoTokenizer
    from transformers.pipelines import SUPPORTED_TASKS

    model = AutoModelForQuestionAnswering.from_pretrained(out / "model")
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    context = "the music was bad . the film was great ."
    logits = model(**tokenizer("what was the film", context, return_tensors="pt"))
    assert logits.start_logits.shape == logits.end_logits.shape
    if "question-answering" in SUPPORTED_TASKS:  # transformers 5.x removed this pipeline
        from transformers import pipeline

        qa = pipeline("question-answering", model=str(out / "model"), device="cpu")
        assert "answer" in qa(question="what was the film", context=context)

    inputs = tmp_path / "q.jsonl"
    inputs.write_text(json.dumps({"question": "what was the film", "context": context}) + "\n")
    capsys.readouterr()
    assert cli.main(["predict", str(out), "--input", str(inputs)]) == 0
    row = json.loads(capsys.readouterr().out.strip())
    assert set(row) == {"answer", "start", "end", "score"}
    assert context[row["start"] : row["end"]] == row["answer"]
    bad = json.dumps({"question": "what was the film", "id": "q2"})
    inputs.write_text(bad + "\n" + json.dumps({"question": "the film?", "context": context}))
    assert cli.main(["predict", str(out), "--input", str(inputs)]) == 1  # a record failed
    first, second = (json.loads(x) for x in capsys.readouterr().out.splitlines())
    assert first["line"] == 1 and first["id"] == "q2" and "no context" in first["error"]
    assert "answer" in second
    assert cli.main(["predict", str(out), "--input", str(inputs), "--strict"]) == 2
    assert "q.jsonl:1: no context" in capsys.readouterr().err


def test_v2_tunes_and_saves_the_no_answer_threshold(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "qa2"
    result = nlptune.train(_qa_config(tiny_bert, out, "v2"))
    dev = result.metrics["dev"]
    for key in ("HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_f1_thresh"):
        assert key in dev
    saved = json.loads((out / "labels.json").read_text())
    assert saved["version"] == "v2" and saved["null_threshold"] >= dev["best_f1_thresh"]
    predictor = nlptune.Predictor.from_dir(out)
    assert predictor.task.null_threshold == saved["null_threshold"]
    evaluated = predictor.evaluate(str(FIXTURES / "squad_v2_dev.json"))
    assert evaluated["f1"] == pytest.approx(dev["best_f1"], abs=1e-3)  # the tuned threshold
    pred = predictor.predict([{"question": "what was the film", "context": "the plot was bad ."}])
    assert set(pred[0]) == {"answer", "start", "end", "score"}
