"""``nlptune export --format onnx``: the ONNX runner's task outputs equal PyTorch's on the dev
set (identical labels, tags, answers; model outputs within 1e-3) for classification, tagging and
QA; CRF taggers (Viterbi in the runner), static-vector networks, beam search on
encoder-decoders; int8 quantisation; runs that can't be exported are refused with a reason; the
export folder loads with plain onnxruntime + the tokenizer (the documented snippet). Every task
and family is also exported in the contract suite (tests/tasks/test_contract.py)."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

import nlptune
from nlptune import cli
from nlptune.predict import Predictor

from ..conftest import FIXTURES, ner_data, static_config, tiny_config, translate_config

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from nlptune import onnx_export, onnx_runner  # noqa: E402


def _ner_config(model: Path, out: Path, **task: Any) -> dict[str, Any]:
    config = tiny_config(
        model,
        out,
        task={"type": "sequence_labelling", **task},
        trainer={"epochs": 4, "lr": 3e-3},
    )
    config["data"] = ner_data()
    return config


def _qa_config(model: Path, out: Path) -> dict[str, Any]:
    config = tiny_config(
        model, out, task={"type": "extractive_qa", "doc_stride": 8}, trainer={"epochs": 2}
    )
    config["data"] = {
        "train": str(FIXTURES / "squad_v2_train.json"),
        "dev": str(FIXTURES / "squad_v2_dev.json"),
    }
    return config


def _pair_config(model: Path, out: Path) -> dict[str, Any]:
    config = tiny_config(model, out, task={"type": "sentence_pair"}, trainer={"epochs": 2})
    config["data"] = {
        "train": str(FIXTURES / "pairs_train.tsv"),
        "dev": str(FIXTURES / "pairs_dev.tsv"),
        "text": "sentence1",
        "text_pair": "sentence2",
        "label": "label",
    }
    return config


def _sense_config(model: Path, out: Path) -> dict[str, Any]:
    config = tiny_config(model, out, task={"type": "word_sense"}, trainer={"epochs": 2})
    config["data"] = {
        "train": str(FIXTURES / "streusle_train.conllulex"),
        "dev": str(FIXTURES / "streusle_dev.conllulex"),
    }
    return config


CONFIGS = {
    "text_classification": lambda m, o: tiny_config(m, o, trainer={"epochs": 2}),
    "sentence_pair": _pair_config,
    "sequence_labelling": _ner_config,
    "extractive_qa": _qa_config,
    "word_sense": _sense_config,
    "crf": lambda m, o: _ner_config(m, o, crf=True, subword_pooling="mean"),
}


@pytest.mark.parametrize("task", list(CONFIGS))
def test_onnx_outputs_equal_pytorch_on_the_dev_set(
    task: str, tiny_bert: Path, tmp_path: Path
) -> None:
    result = nlptune.train(CONFIGS[task](tiny_bert, tmp_path / "run"))
    summary = onnx_export.export(result.output_dir, tmp_path / "onnx", int8=True)
    assert summary["task"] == task.replace("crf", "sequence_labelling")
    assert "model.onnx" in summary["files"]
    check = summary["check"]  # on the run's dev set
    assert check["examples"] > 0 and check["same_outputs"] == 1.0
    assert check["max_abs_diff"] < 1e-3
    assert check["onnx"]["metrics"] == check["pytorch"]["metrics"]
    assert "onnx_int8" in check and 0 <= check["int8_same_outputs"] <= 1
    # the runner's rows are what nlptune predict writes, scores within 1e-4
    reference = Predictor.from_dir(result.output_dir, device="cpu")
    runner = onnx_runner.load(tmp_path / "onnx")
    dev = str(CONFIGS[task](tiny_bert, tmp_path)["data"]["dev"])
    want, got = reference.predict_file(dev), runner.predict_file(dev)
    assert len(want) == len(got) > 0
    for a, b in zip(want, got, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float):
                assert b[key] == pytest.approx(a[key], abs=1e-4)
            elif key != "entities":
                assert a[key] == b[key]


def test_dynamic_batch_and_length_with_plain_onnxruntime(tiny_bert: Path, tmp_path: Path) -> None:
    """The documented snippet: onnxruntime, the tokenizer and labels.json, no nlptune."""
    result = nlptune.train(tiny_config(tiny_bert, tmp_path / "run", trainer={"epochs": 1}))
    out = tmp_path / "onnx"
    onnx_export.export(result.output_dir, out, check="none")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
    session = ort.InferenceSession(str(out / "model.onnx"))
    labels = json.loads((out / "labels.json").read_text())["labels"]
    reference = Predictor.from_dir(result.output_dir, device="cpu")
    for texts in (["good"], ["a very good film indeed and more words here", "bad", "the end"]):
        enc = tokenizer(texts, padding=True, return_tensors="np")
        feeds = {i.name: enc[i.name].astype("int64") for i in session.get_inputs()}
        (logits,) = session.run(["logits"], feeds)
        assert logits.shape == (len(texts), len(labels))
        predicted = [labels[i] for i in logits.argmax(-1)]
        assert predicted == [row["label"] for row in reference.predict(texts)]


def test_refused_exports_and_cli(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.yaml").write_text("task: {type: text_classification}\n")
    assert cli.main(["export", str(half), "-o", str(tmp_path / "y")]) == 2
    assert "not a finished run" in capsys.readouterr().err

    run = nlptune.train(tiny_config(tiny_bert, tmp_path / "run", trainer={"epochs": 1}))
    out = tmp_path / "onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert cli.main(["export", str(run.output_dir), "--format", "onnx", "-o", str(out)]) == 0
    assert json.loads(printed.getvalue())["check"]["same_outputs"] == 1.0
    assert cli.main(["export", str(run.output_dir), "-o", str(out), "--check", "none"]) == 2
    assert "add --overwrite" in capsys.readouterr().err
    args = ["export", str(run.output_dir), "-o", str(out), "--check", "none", "--overwrite"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(args) == 0
    with pytest.raises(nlptune.errors.NlptuneError, match="export with --int8"):
        onnx_runner.load(out, int8=True)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert cli.main(["export", str(run.output_dir), "-o", str(tmp_path / "z")]) == 2
    assert "pip install 'nlptune[onnx]'" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["bart", "bert2bert"])
def test_beam_search_on_encoder_decoders_gives_pytorchs_ids(
    family: str, tiny_bart: Path, translate_bert: Path, tmp_path: Path
) -> None:
    """Beam search with a length penalty and an n-gram ban, and the int8 graphs: the runner
    generates the ids transformers' generate() does (the check compares them as numbers)."""
    model = {"bart": tiny_bart, "bert2bert": translate_bert}[family]
    task = {"num_beams": 3, "no_repeat_ngram_size": 2, "length_penalty": 1.3}
    config = translate_config(model, tmp_path / "run", task=task, trainer={"max_steps": 8})
    run = nlptune.train(config).output_dir
    summary = onnx_export.export(run, tmp_path / "onnx", int8=True)
    assert {"encoder.onnx", "decoder.onnx", "encoder.int8.onnx"} <= set(summary["files"])
    check = summary["check"]
    assert check["same_outputs"] == 1.0 and check["max_abs_diff"] == 0.0, check
    assert "int8_same_outputs" in check
    sources = ["A man plays a guitar .", "Two dogs run .", "x"]
    want = Predictor.from_dir(run, device="cpu").predict(sources)
    assert onnx_runner.load(tmp_path / "onnx").predict(sources) == want


def test_static_vectors_with_a_character_lstm_and_a_crf(glove_file: Path, tmp_path: Path) -> None:
    config = static_config(glove_file, tmp_path / "run", backbone={"chars": "lstm"})
    config["task"] = {"type": "sequence_labelling", "crf": True}
    config["trainer"].update(epochs=3)
    config["data"] = ner_data()
    run = nlptune.train(config).output_dir
    check = onnx_export.export(run, tmp_path / "onnx")["check"]
    assert check["same_outputs"] == 1.0 and check["max_abs_diff"] < 1e-3, check
    assert check["onnx"]["metrics"] == check["pytorch"]["metrics"]


def test_generation_settings_the_runner_lacks_are_refused(
    tiny_t5: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = nlptune.train(translate_config(tiny_t5, tmp_path / "run", trainer={"max_steps": 2}))
    saved = run.output_dir / "model" / "generation_config.json"
    settings = json.loads(saved.read_text())
    saved.write_text(json.dumps({**settings, "repetition_penalty": 1.3}))
    assert cli.main(["export", str(run.output_dir), "-o", str(tmp_path / "onnx")]) == 2
    err = capsys.readouterr().err
    assert "error: the model's generation config sets repetition_penalty=1.3" in err
    assert not (tmp_path / "onnx").exists() or not any((tmp_path / "onnx").iterdir())
