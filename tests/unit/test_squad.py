"""SQuAD metrics against hand-worked cases; reader checks; windows and decoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nlptune.data.squad import read_squad
from nlptune.errors import DataError
from nlptune.tasks import squad_metrics as sm


def test_normalisation_em_f1_by_hand() -> None:
    assert sm.normalize_answer("The  Cat, sat!") == "cat sat"
    assert sm.exact("the big red dog", "Big red dog.") == 1
    # gold {big, red, dog}, pred {red, dog, house}: 2 common, P = R = 2/3
    assert sm.f1("the big red dog", "red dog house") == pytest.approx(2 / 3)
    assert sm.f1("", "") == 1.0 and sm.f1("", "a dog") == 0.0 and sm.f1("dog", "") == 0.0
    assert sm.f1("a", "the") == 1.0  # both normalise to empty


def test_v1_max_over_gold_answers() -> None:
    golds = {"q1": ["Denver Broncos", "the Broncos"], "q2": ["Paris"]}
    preds = {"q1": "Broncos", "q2": "London"}
    out = sm.score(golds, preds)
    # q1: EM 0, F1 max(2/3, 1.0) = 1.0 ("the Broncos" normalises to "broncos"); q2: 0, 0
    assert out["exact"] == pytest.approx(50.0) and out["f1"] == pytest.approx(50.0)
    assert "HasAns_exact" not in out


def test_v2_threshold_hasans_noans_by_hand() -> None:
    golds = {"a": ["red"], "b": ["blue sky"], "c": [], "d": []}
    spans = {"a": "red", "b": "sky", "c": "green", "d": "grey"}
    diffs = {"a": -2.0, "b": 1.0, "c": 3.0, "d": -1.0}
    out = sm.score(golds, spans, diffs, threshold=0.0)
    # threshold 0: answer a (EM 1), b -> "" (0), c -> "" (1), d answered "grey" (0)
    assert out["exact"] == pytest.approx(50.0)
    assert out["HasAns_exact"] == pytest.approx(50.0) and out["NoAns_exact"] == pytest.approx(50.0)
    assert out["HasAns_f1"] == pytest.approx(50.0) and out["f1"] == pytest.approx(50.0)
    # sweep (sorted by diff: a -2, d -1, b 1, c 3), start 2 (all empty): a +1 -> 3 at -2,
    # d -1 -> 2, b +F1(0.667) -> 2.667, c -1: best 3 of 4 at threshold -2
    assert out["best_exact"] == pytest.approx(75.0) and out["best_exact_thresh"] == -2.0
    assert out["best_f1"] == pytest.approx(75.0) and out["best_f1_thresh"] == -2.0


def _squad(tmp_path: Path, answer_start: int) -> Path:
    doc = {
        "version": "1.1",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": "the cat sat on the mat . the cat sat again .",
                        "qas": [
                            {
                                "id": "q9",
                                "question": "where",
                                "answers": [{"text": "the mat", "answer_start": answer_start}],
                            }
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "s.json"
    path.write_text(json.dumps(doc))
    return path


def test_reader_checks_answer_offsets(tmp_path: Path) -> None:
    assert read_squad(str(_squad(tmp_path, 15)))[0].answers == (("the mat", 15),)
    with pytest.raises(
        DataError,
        match=r"s.json question q9: answer 'the mat' is not in the "
        r"context at answer_start=14.*occurs at 15",
    ):
        read_squad(str(_squad(tmp_path, 14)))
    assert read_squad(str(_squad(tmp_path, 14)), nearest=True)[0].answers == (("the mat", 15),)


def test_reader_flat_rows_and_missing_fields(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        json.dumps(
            {
                "id": "x1",
                "question": "who",
                "context": "bob ran",
                "answers": {"text": ["bob"], "answer_start": [0]},
            }
        )
        + "\n"
        + json.dumps(
            {
                "id": "x2",
                "question": "who",
                "context": "",
                "answers": {"text": [], "answer_start": []},
            }
        )
        + "\n"
    )
    with pytest.raises(DataError, match=r"q.jsonl:2 \(question x2\): no context"):
        read_squad(str(path))


def test_windows_cover_a_long_context_and_decode_streams(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    from nlptune.backbones.hf_text import HFTextEncoder
    from nlptune.data.squad import QAExample
    from nlptune.tasks.extractive_qa import ExtractiveQA

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    context = " ".join(["the film was good ."] * 6 + ["the music was awful ."] + ["so it is ."] * 4)
    start = context.index("awful")
    example = QAExample("e", "what music", context, (("awful", start),))
    task = ExtractiveQA(max_length=24, doc_stride=6)
    task.fit([example])
    feats = task.featurize([example], HFTextEncoder(tokenizer))
    assert len(feats) >= 3  # the context is about three windows long
    labelled = [i for i in range(len(feats)) if feats.values["start_positions"][i] > 0]
    assert labelled
    for i in labelled:  # the label points at the answer's characters
        s, e = feats.values["start_positions"][i], feats.values["end_positions"][i]
        begin, end = feats.meta["offset_start"][i][s], feats.meta["offset_end"][i][e]
        assert context[begin:end] == "awful"
    # logits that favour the answer tokens in one labelled window only
    rows = []
    for i in range(len(feats)):
        logits = np.zeros((len(feats.sequences["input_ids"][i]), 2), dtype=np.float32)
        if i == labelled[-1]:
            logits[feats.values["start_positions"][i], 0] = 5
            logits[feats.values["end_positions"][i], 1] = 5
        rows.append((i, logits))
    ((ex, pred),) = task.decode(iter(rows), [example], feats)
    assert pred["answer"] == "awful" and (pred["start"], pred["end"]) == (start, start + 5)
    assert task.evaluate(iter(rows), [example], feats)["exact"] == 100.0
