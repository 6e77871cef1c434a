"""A frozen backbone's cached states train the same head as running the backbone every step."""

from __future__ import annotations

from pathlib import Path

import pytest

import nlptune

from ..conftest import FIXTURES, tiny_config

DATA = {
    "text_classification": {
        "train": str(FIXTURES / "sentiment_train.tsv"),
        "dev": str(FIXTURES / "sentiment_dev.tsv"),
        "text": "sentence",
        "label": "label",
    },
    "sequence_labelling": {
        "train": str(FIXTURES / "ner_train.conll"),
        "dev": str(FIXTURES / "ner_dev.conll"),
        "tag_column": 3,
    },
    "word_sense": {
        "train": str(FIXTURES / "streusle_train.conllulex"),
        "dev": str(FIXTURES / "streusle_dev.conllulex"),
    },
}


@pytest.mark.parametrize("task", sorted(DATA))
def test_cached_equals_uncached(
    tiny_bert_no_dropout: Path, tmp_path: Path, task: str, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = {}
    for cache in (True, False):
        config = tiny_config(
            tiny_bert_no_dropout,
            tmp_path / str(cache),
            task={"type": task},
            strategy={"type": "frozen", "cache": cache},
            trainer={"epochs": 3, "lr": 1e-2},
        )
        config["data"] = DATA[task]
        with caplog.at_level("INFO", logger="nlptune"):
            caplog.clear()
            metrics[cache] = nlptune.train(config).metrics["dev"]
        assert ("outputs computed once" in caplog.text) == cache
    for key, value in metrics[False].items():
        assert metrics[True][key] == pytest.approx(value, abs=1e-3), key
