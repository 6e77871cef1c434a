"""Sequence labelling end to end on a tiny BERT: windows, training, artefact, pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import nlptune

from ..conftest import FIXTURES, tiny_config


def _ner(model: Path, out: Path, **task: object) -> dict:
    config = tiny_config(
        model, out, task={"type": "sequence_labelling", **task}, trainer={"epochs": 6, "lr": 3e-3}
    )
    config["data"] = {
        "train": str(FIXTURES / "ner_train.conll"),
        "dev": str(FIXTURES / "ner_dev.conll"),
        "tag_column": 3,
    }
    return config


def test_long_sentence_is_windowed_and_every_word_scored(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    from nlptune.backbones.hf_text import HFTextEncoder
    from nlptune.data.examples import TokenExample
    from nlptune.tasks.sequence_labelling import SequenceLabelling

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    words = tuple(("the film was good and the music was bad " * 5).split())  # 45 words
    tags = tuple("B-X" if w == "good" else "O" for w in words)
    example = TokenExample(words, tags, "s:1")
    task = SequenceLabelling(max_length=17)  # 15 words a window: 3x shorter
    task.fit([example])
    feats = task.featurize([example], HFTextEncoder(tokenizer))
    assert len(feats) >= 3
    owned = sorted((int(a), int(b)) for a, b in feats.meta["owned"])
    assert owned[0][0] == 0 and owned[-1][1] == len(words)
    assert all(a[1] == b[0] for a, b in zip(owned, owned[1:], strict=False))  # a partition
    gold = [task.labels.index(t) for t in tags]
    rows = []
    for i in range(len(feats)):  # logits that reproduce gold where a window owns the word
        logits = np.zeros((len(feats.sequences["input_ids"][i]), len(task.labels)), np.float32)
        lo, hi = feats.meta["owned"][i]
        for t, w in enumerate(feats.meta["word"][i]):
            if w >= 0:
                logits[t, gold[w] if lo <= w < hi else 1 - gold[w]] = 1.0
        rows.append((i, logits))
    metrics = task.evaluate(iter(rows), [example], feats)
    assert metrics["words_scored"] == 45 and metrics["accuracy"] == 1.0 and metrics["f1"] == 1.0


@pytest.mark.parametrize("scheme", ["iob2", "bioes"])
def test_ner_trains_and_loads_in_the_pipeline(tiny_bert: Path, tmp_path: Path, scheme: str) -> None:
    out = tmp_path / "ner"
    result = nlptune.train(_ner(tiny_bert, out, scheme=scheme))
    dev = result.metrics["dev"]
    assert {"precision", "recall", "f1", "f1_POS", "f1_NEG", "accuracy"} <= set(dev)
    assert dev["words_scored"] == sum(
        1
        for line in (FIXTURES / "ner_dev.conll").read_text().splitlines()
        if line and not line.startswith("-DOC")
    )
    assert dev["f1"] > 0.5

    from transformers import AutoModelForTokenClassification, pipeline

    model = AutoModelForTokenClassification.from_pretrained(out / "model")
    assert "B-POS" in model.config.label2id
    tagger = pipeline(
        "token-classification",
        model=str(out / "model"),
        aggregation_strategy="simple",
        device="cpu",
    )
    groups = {e["entity_group"] for e in tagger("the film was very good but the music was awful")}
    assert groups <= {"POS", "NEG"} and not any(g.startswith("LABEL_") for g in groups)
    pred = nlptune.Predictor.from_dir(out).predict(["the film was very good"])[0]
    assert len(pred["tags"]) == 5 and all(
        t in ("O", "B-POS", "I-POS", "B-NEG") for t in pred["tags"]
    )
    for ent in pred["entities"]:
        assert "the film was very good"[ent["start"] : ent["end"]] == ent["text"]


def test_pos_from_conllu(tiny_bert: Path, tmp_path: Path) -> None:
    config = tiny_config(
        tiny_bert,
        tmp_path / "pos",
        task={"type": "sequence_labelling"},
        trainer={"epochs": 6, "lr": 3e-3},
    )
    config["data"] = {
        "train": str(FIXTURES / "pos_train.conllu"),
        "dev": str(FIXTURES / "pos_dev.conllu"),
    }
    result = nlptune.train(config)
    assert "f1" not in result.metrics["dev"] and result.metrics["dev"]["accuracy"] > 0.5
    assert json.loads((tmp_path / "pos" / "labels.json").read_text())["is_bio"] is False


def test_crf_head_trains_saves_and_predicts_valid_tags(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "crf"
    result = nlptune.train(_ner(tiny_bert, out, crf=True))
    assert result.metrics["dev"]["f1"] > 0.5
    assert (out / "model" / "crf.safetensors").is_file() and (out / "model" / "crf.json").is_file()
    predictor = nlptune.Predictor.from_dir(out)
    assert predictor.model.heads["tagger"].crf is not None
    for row in predictor.predict(["very good and the film was awful very lovely", "the music"]):
        tags = row["tags"]
        for a, b in zip(["O", *tags], tags, strict=False):
            assert not (b.startswith("I-") and a[2:] != b[2:]), tags
    evaluated = predictor.evaluate(str(FIXTURES / "ner_dev.conll"))
    assert evaluated["f1"] == pytest.approx(result.metrics["dev"]["f1"], abs=1e-6)


@pytest.mark.parametrize("crf", [False, True])
def test_mean_subword_pooling(tiny_bert: Path, tmp_path: Path, crf: bool) -> None:
    import torch

    from nlptune.heads.token import mean_over_words

    out = tmp_path / "mean"
    result = nlptune.train(_ner(tiny_bert, out, subword_pooling="mean", crf=crf))
    assert result.metrics["dev"]["f1"] > 0.5
    predictor = nlptune.Predictor.from_dir(out)
    assert predictor.model.heads["tagger"].pooling == "mean"
    # a word's scores are the mean of its subwords' scores
    word_ids = torch.tensor([[0, 1, 1, 2, 0]])
    logits = torch.arange(15, dtype=torch.float32).reshape(1, 5, 3)
    pooled = mean_over_words(logits, word_ids)[0]
    torch.testing.assert_close(pooled[1], (logits[0, 1] + logits[0, 2]) / 2)
    torch.testing.assert_close(pooled[3], logits[0, 3])
