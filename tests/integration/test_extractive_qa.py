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


@pytest.mark.parametrize("strategy", ["full", "last_k", "frozen", "lora"])
def test_gradient_checkpointing_gives_the_same_run(
    tiny_bert_no_dropout: Path, tmp_path: Path, strategy: str, caplog: pytest.LogCaptureFixture
) -> None:
    """trainer.gradient_checkpointing recomputes the layers in the backward pass: the same
    gradients, so the same metrics, with every strategy that backpropagates into the backbone
    (frozen without a cache: the backbone runs each step, nothing of it trains)."""
    metrics = {}
    for on in (False, True):
        config = _qa_config(
            tiny_bert_no_dropout, tmp_path / str(on), "v1", epochs=2, gradient_checkpointing=on
        )
        config["strategy"] = {
            "full": {"type": "full", "freeze_embeddings": False},
            "last_k": {"type": "last_k", "k": 1},
            "frozen": {"type": "frozen", "cache": False},
            "lora": {"type": "lora", "r": 4, "lr_scale": 1.0},
        }[strategy]
        with caplog.at_level("INFO", logger="nlptune"):
            caplog.clear()
            metrics[on] = nlptune.train(config).metrics
        assert ("layers recompute in the backward pass" in caplog.text) == on
    assert metrics[True]["steps"] == metrics[False]["steps"]
    for key, value in metrics[False]["dev"].items():
        assert metrics[True]["dev"][key] == pytest.approx(value, abs=1e-5), key


def test_gradient_checkpointing_needs_transformer_layers(
    glove_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Static word vectors have no layers to recompute: one error line naming the option."""
    import yaml

    from ..conftest import one_error_line, static_config

    config = static_config(glove_file, tmp_path / "out", trainer={"gradient_checkpointing": True})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    for command in ("validate", "train"):  # found before any weights load
        line = one_error_line([command, str(path)], capsys)
        assert "trainer.gradient_checkpointing" in line and "static_vectors" in line
    assert not (tmp_path / "out").exists()


def test_featurizing_in_chunks_gives_the_same_features(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Examples are tokenized a chunk at a time (bounded memory): the same windows, labels,
    offsets and owners as one call over all of them."""
    import numpy as np
    from transformers import AutoTokenizer

    from nlptune.backbones.hf_text import HFTextEncoder
    from nlptune.tasks import extractive_qa

    task = extractive_qa.ExtractiveQA(max_length=32, doc_stride=8)
    examples = task.read(str(FIXTURES / "squad_v1_train.json"))
    text = HFTextEncoder(AutoTokenizer.from_pretrained(tiny_bert))
    whole = task.featurize(examples, text)
    monkeypatch.setattr(extractive_qa, "FEATURIZE_CHUNK", 3)
    chunked = task.featurize(examples, text)
    assert len(whole) == len(chunked) > len(examples)  # some contexts need several windows
    for group in ("sequences", "meta"):
        a, b = getattr(whole, group), getattr(chunked, group)
        assert set(a) == set(b)
        for name in a:
            assert all(np.array_equal(x, y) for x, y in zip(a[name], b[name], strict=True))
    for name, value in whole.values.items():
        assert np.array_equal(value, chunked.values[name])
    assert np.array_equal(whole.lengths, chunked.lengths)
