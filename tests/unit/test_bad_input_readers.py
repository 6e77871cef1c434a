"""Bad user data in the SQuAD, CoNLL, CoNLL-U, STREUSLE and word-sense paths ends in one
DataError that names the file, the line or record, and what to change; never a traceback and
never a silent misreading. POS tags in a CoNLL file are read as plain per-word labels."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from nlptune import cli
from nlptune.data.conll import read_conll, read_conllu
from nlptune.data.examples import BadRecord
from nlptune.data.squad import read_squad
from nlptune.data.wsd import read_streusle
from nlptune.errors import ConfigError, DataError

from ..conftest import FIXTURES, tiny_config

CONTEXT = "bob ran home"


# -- SQuAD ----------------------------------------------------------------------------------------
def _flat(tmp_path: Path, **fields: Any) -> str:
    """One flat JSON Lines record (after a good one, so the bad one is line 2)."""
    good = {"id": "ok", "question": "who", "context": CONTEXT, "answers": []}
    row = {"id": "x1", "question": "who", "context": CONTEXT, **fields}
    path = tmp_path / "flat.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    return str(path)


def _nested(tmp_path: Path, context: Any = CONTEXT, **fields: Any) -> str:
    qa = {"id": "q1", "question": "who", "answers": [{"text": "bob", "answer_start": 0}]}
    qa.update(fields)
    doc = {"version": "1.1", "data": [{"paragraphs": [{"context": context, "qas": [qa]}]}]}
    path = tmp_path / "nested.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_flat_answers_as_one_pair_of_single_values(tmp_path: Path) -> None:
    path = _flat(tmp_path, answers={"text": "ran", "answer_start": 4})
    assert read_squad(path)[1].answers == (("ran", 4),)
    path = _flat(tmp_path, answers={"text": ["bob", "ran"], "answer_start": [0, 4]})
    assert read_squad(path)[1].answers == (("bob", 0), ("ran", 4))


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"text": ["bob"], "answer_start": 0}, "must both be lists .* or both single values"),
        ({"text": "bob", "answer_start": [0]}, "must both be lists .* or both single values"),
        ({"text": ["bob", "ran"], "answer_start": [0]}, "2 text.* but 1 answer_start"),
        ({"text": ["bob"], "answer_start": [0, 4]}, "1 text.* but 2 answer_start"),
        ("bob", "'answers' must be .*got str"),
        (0, "'answers' must be .*got int"),
    ],
)
def test_flat_answers_of_the_wrong_shape_name_the_record(
    tmp_path: Path, answers: Any, message: str
) -> None:
    with pytest.raises(DataError, match=rf"flat.jsonl:2 \(question x1\): .*{message}"):
        read_squad(_flat(tmp_path, answers=answers))


@pytest.mark.parametrize(
    ("text", "start", "message"),
    [
        ("home", -4, "answer_start=-4, outside the context"),
        ("bob", 99, "answer_start=99, outside the context"),
        ("o", True, "needs an integer answer_start .*got True"),
        ("bob", "0", "needs an integer answer_start .*got '0'"),
        ("bob", 1.0, "needs an integer answer_start .*got 1.0"),
        ("bob", None, "needs an integer answer_start .*got None"),
    ],
)
def test_answer_start_must_be_an_offset_inside_the_context(
    tmp_path: Path, text: str, start: Any, message: str
) -> None:
    flat = _flat(tmp_path, answers=[{"text": text, "answer_start": start}])
    with pytest.raises(DataError, match=rf"flat.jsonl:2 \(question x1\): .*{message}"):
        read_squad(flat, nearest=True)  # not even the nearest occurrence rescues these
    nested = _nested(tmp_path, answers=[{"text": text, "answer_start": start}])
    with pytest.raises(DataError, match=rf"nested.json question q1: .*{message}"):
        read_squad(nested, nearest=True)


def test_answer_not_at_its_start_is_an_error_or_moved_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _nested(tmp_path, answers=[{"text": "ran", "answer_start": 3}])
    with pytest.raises(DataError, match=r"not in the context at answer_start=3.*occurs at 4"):
        read_squad(path)
    with caplog.at_level(logging.WARNING, logger="nlptune"):
        assert read_squad(path, nearest=True)[0].answers == (("ran", 4),)
    assert "1 answers are not at their answer_start" in caplog.text and "q1" in caplog.text


@pytest.mark.parametrize("text", ["", "  "])
def test_empty_answer_text_is_an_error_not_an_unanswerable_question(
    tmp_path: Path, text: str
) -> None:
    match = r"an answer's text is empty; an unanswerable .* empty answers list"
    with pytest.raises(DataError, match=rf"flat.jsonl:2 \(question x1\): {match}"):
        read_squad(_flat(tmp_path, answers={"text": [text], "answer_start": [0]}))
    with pytest.raises(DataError, match=rf"nested.json question q1: {match}"):
        read_squad(_nested(tmp_path, answers=[{"text": text, "answer_start": 0}]))
    # an empty answers list is how v2.0 marks an unanswerable question
    (example,) = read_squad(_nested(tmp_path, answers=[], is_impossible=True))
    assert example.is_impossible and not example.answers
    assert read_squad(_flat(tmp_path, answers={"text": [], "answer_start": []}))[1].is_impossible


@pytest.mark.parametrize("value", ["false", "true", 0, 1, "no", [], {}])
def test_is_impossible_must_be_a_json_boolean(tmp_path: Path, value: Any) -> None:
    match = rf"is_impossible must be true or false \(a JSON boolean\), got {value!r}"
    with pytest.raises(DataError, match=r"nested.json question q1: " + _escaped(match)):
        read_squad(_nested(tmp_path, is_impossible=value))
    with pytest.raises(DataError, match=r"flat.jsonl:2 \(question x1\): " + _escaped(match)):
        read_squad(_flat(tmp_path, is_impossible=value, answers=[]))


def _escaped(pattern: str) -> str:
    return pattern.replace("[", r"\[").replace("]", r"\]").replace("{", r"\{").replace("}", r"\}")


def test_is_impossible_true_and_false_and_conflicts(tmp_path: Path) -> None:
    assert not read_squad(_nested(tmp_path, is_impossible=False))[0].is_impossible
    assert read_squad(_nested(tmp_path, is_impossible=True, answers=[]))[0].is_impossible
    with pytest.raises(DataError, match=r"q1: is_impossible is true but the question has 1"):
        read_squad(_nested(tmp_path, is_impossible=True))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"question": ["who"]}, "'question' must be a string, got list"),
        ({"question": 5}, "'question' must be a string, got int"),
        ({"question": {"q": "who"}}, "'question' must be a string, got dict"),
        ({"question": " "}, "no question"),
        ({"context": {"a": 1}}, "'context' must be a string, got dict"),
        ({"context": 12}, "'context' must be a string, got int"),
        ({"answers": [{"text": 5, "answer_start": 0}]}, "an answer's text must be a string"),
        ({"answers": [{"text": ["bob"], "answer_start": 0}]}, "an answer's text must be a string"),
    ],
)
def test_text_fields_must_be_strings(tmp_path: Path, fields: dict[str, Any], message: str) -> None:
    row = {"answers": [{"text": "bob", "answer_start": 0}], **fields}
    with pytest.raises(DataError, match=rf"flat.jsonl:2 \(question x1\): {message}"):
        read_squad(_flat(tmp_path, **row))
    context = fields.pop("context", CONTEXT)
    with pytest.raises(DataError, match=rf"nested.json question q1: {message}"):
        read_squad(_nested(tmp_path, context=context, **fields))


def test_bad_question_ids(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"flat.jsonl:2: 'id' must be a string or an integer"):
        read_squad(_flat(tmp_path, id={"a": 1}, answers=[]))
    with pytest.raises(DataError, match=r"nested.json question q1: 'id' must be a string"):
        read_squad(_nested(tmp_path, id=[7]))
    assert read_squad(_nested(tmp_path, id=7))[0].id == "7"


def test_duplicate_question_ids_are_an_error(tmp_path: Path) -> None:
    from nlptune.tasks.extractive_qa import ExtractiveQA

    path = tmp_path / "dup.jsonl"
    row = {"id": "a", "question": "who", "context": CONTEXT, "answers": []}
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"dup.jsonl:2 \(question a\): question id 'a' is also"):
        ExtractiveQA(max_length=32).read(str(path))


def test_unlabelled_input_keeps_a_bad_question_as_a_bad_record(tmp_path: Path) -> None:
    out = read_squad(_flat(tmp_path, question=["who"], is_impossible="x"), labelled=False)
    assert not isinstance(out[0], BadRecord) and isinstance(out[1], BadRecord)
    assert "'question' must be a string" in out[1].error and out[1].id == "x1"


def test_bad_squad_data_is_one_error_line_in_the_cli(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = _flat(tmp_path, answers={"text": ["bob"], "answer_start": 0})
    task = {"type": "extractive_qa", "doc_stride": 8}
    config = tiny_config(tiny_bert, tmp_path / "out", task=task)
    config["data"] = {"train": train}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli.main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
    assert "flat.jsonl:2 (question x1): answers.text and answers.answer_start" in line


# -- CoNLL ----------------------------------------------------------------------------------------
def _conll(tmp_path: Path, body: str) -> str:
    path = tmp_path / "tags.conll"
    path.write_text(body)
    return str(path)


def test_pos_tags_in_a_conll_file_are_plain_labels(tmp_path: Path) -> None:
    from nlptune.tasks.sequence_labelling import SequenceLabelling

    path = _conll(tmp_path, "The DT\ncat NN\nsits VBZ\n\nIt PRP\nis VBZ\nO NNP\n")
    sents = read_conll(path)
    assert [s.tags for s in sents] == [("DT", "NN", "VBZ"), ("PRP", "VBZ", "NNP")]
    task = SequenceLabelling(max_length=16)
    task.fit(sents)
    assert not task.is_bio and task.main_metric == "accuracy"
    with pytest.raises(ConfigError, match=r"task.metric=f1 scores entities .* accuracy"):
        SequenceLabelling(max_length=16, metric="f1").fit(sents)
    # a file of only O tags is (entity-free) BIO, not plain labels
    only_o = SequenceLabelling(max_length=16)
    only_o.fit(read_conll(_conll(tmp_path, "a O\nb O\n")))
    assert only_o.is_bio


def test_a_bio_file_with_a_pos_tag_names_the_line(tmp_path: Path) -> None:
    path = _conll(tmp_path, "EU B-ORG\nrejects VBZ\n")
    with pytest.raises(DataError, match=r"tags.conll:2: tag 'VBZ' is not O, B-TYPE or I-TYPE"):
        read_conll(path)


def test_pos_conll_file_trains_and_is_scored_by_accuracy(tiny_bert: Path, tmp_path: Path) -> None:
    import nlptune

    def convert(name: str) -> str:  # UPOS of the CoNLL-U fixture as a two-column CoNLL file
        lines = []
        for line in (FIXTURES / name).read_text().splitlines():
            cols = line.split("\t")
            if not line.strip():
                lines.append("")
            elif len(cols) == 10 and cols[0].isdigit():
                lines.append(f"{cols[1]} {cols[3]}")
        out = tmp_path / name.replace(".conllu", ".conll")
        out.write_text("\n".join(lines) + "\n")
        return str(out)

    config = tiny_config(
        tiny_bert, tmp_path / "pos", task={"type": "sequence_labelling"}, trainer={"epochs": 2}
    )
    config["data"] = {"train": convert("pos_train.conllu"), "dev": convert("pos_dev.conllu")}
    dev = nlptune.train(config).metrics["dev"]
    assert "f1" not in dev and 0.0 <= dev["accuracy"] <= 1.0
    assert json.loads((tmp_path / "pos" / "labels.json").read_text())["is_bio"] is False


@pytest.mark.parametrize(
    ("scheme", "body", "line", "message"),
    [
        ("bioes", "a O\nb E-PER\n", 2, "E-PER follows O, which BIOES forbids"),
        ("bioes", "a I-PER\nb E-PER\n", 1, "I-PER follows O, which BIOES forbids"),
        ("bioes", "a B-PER\nb O\n", 1, "B-PER is followed by O.* S-PER"),
        ("bioes", "a B-PER\nb E-LOC\n", 1, "B-PER is followed by E-LOC"),
        ("bioes", "a S-PER\nb X-PER\n", 2, "tag 'X-PER' is not O, B-TYPE, I-TYPE, E-TYPE or S"),
        ("bioes", "a b-per\nb e-per\n", 1, r"tag 'b-per' .*upper case \(B-per\)"),
        ("bioes", "a B-\nb E-\n", 1, "tag 'B-' .*type after the prefix is missing"),
        ("bioes", "a S-PER\nb NN\n", 2, "tag 'NN' .*need data.scheme: iob2"),
        ("iob1", "a I-PER\nb X-PER\n", 2, "tag 'X-PER' is not O, B-TYPE or I-TYPE"),
        ("iob1", "a i-per\n", 1, r"tag 'i-per' .*upper case \(I-per\)"),
        ("iob1", "a I-\n", 1, "tag 'I-' .*type after the prefix is missing"),
        ("iob1", "a I-PER\nb E-PER\n", 2, "tag 'E-PER' .*data.scheme: bioes"),
        ("iob2", "a b-per\n", 1, r"tag 'b-per' .*upper case \(B-per\)"),
        ("iob2", "a B-PER\nb S-PER\n", 2, "tag 'S-PER' .*data.scheme: bioes"),
    ],
)
def test_invalid_tags_of_a_scheme_name_the_line(
    tmp_path: Path, scheme: str, body: str, line: int, message: str
) -> None:
    with pytest.raises(DataError, match=rf"tags.conll:{line}: {message}"):
        read_conll(_conll(tmp_path, body), scheme=scheme)


def test_valid_bioes_and_iob1_still_convert(tmp_path: Path) -> None:
    body = "a S-PER\nb B-LOC\nc I-LOC\nd E-LOC\ne O\nf B-ORG\ng E-ORG\n"
    assert read_conll(_conll(tmp_path, body), scheme="bioes")[0].tags == (
        "B-PER",
        "B-LOC",
        "I-LOC",
        "I-LOC",
        "O",
        "B-ORG",
        "I-ORG",
    )
    body = "a I-PER\nb B-PER\nc O\nd I-LOC\n"
    assert read_conll(_conll(tmp_path, body), scheme="iob1")[0].tags == (
        "B-PER",
        "B-PER",
        "O",
        "B-LOC",
    )


# -- CoNLL-U and STREUSLE ids ---------------------------------------------------------------------
def _conllu(tmp_path: Path, ids: list[str], upos: str = "NOUN") -> str:
    lines = ["# sent_id = s1"]
    for n, word_id in enumerate(ids):
        lines.append("\t".join([word_id, f"w{n}", "w", upos, "NN", "_", "0", "dep", "_", "_"]))
    path = tmp_path / "ids.conllu"
    path.write_text("\n".join([*lines, "", "1\tok\tok\tNOUN\tNN\t_\t0\tdep\t_\t_", ""]))
    return str(path)


def test_conllu_ranges_and_empty_nodes_are_skipped(tmp_path: Path) -> None:
    ids = ["0.1", "1", "2-3", "2", "3", "3.1", "3.2", "4"]
    (sent, other) = read_conllu(_conllu(tmp_path, ids))
    assert sent.words == ("w1", "w3", "w4", "w7") and sent.id == "s1"
    assert other.words == ("ok",)


@pytest.mark.parametrize(
    ("ids", "line", "message"),
    [
        (["1", "x"], 3, "'x' is not a CoNLL-U word id"),
        (["1", "3"], 3, "word id 3 after word 1, expected 2"),
        (["2", "3"], 2, "word id 2 at the start of a sentence, expected 1"),
        (["1", "1"], 3, "word id 1 after word 1, expected 2"),
        (["1", "2-x", "2"], 3, "'2-x' is not a CoNLL-U word id"),
        (["1", "3-4", "2"], 3, "word id 3-4 after word 1, expected 2"),
        (["1", "2-2", "2"], 3, "multiword token range 2-2 must end after it starts"),
        (["1", "1.x", "2"], 3, "'1.x' is not a CoNLL-U word id"),
        (["1", "2.1", "2"], 3, "empty node 2.1 after word 1"),
        (["1", "1.0", "2"], 3, "empty node 1.0 after word 1"),
        (["1", "-1"], 3, "'-1' is not a CoNLL-U word id"),
        (["1", ""], 3, "'' is not a CoNLL-U word id"),
    ],
)
def test_conllu_bad_ids_name_the_line(
    tmp_path: Path, ids: list[str], line: int, message: str
) -> None:
    path = _conllu(tmp_path, ids)
    with pytest.raises(DataError, match=rf"ids.conllu:{line}: {message}"):
        read_conllu(path)
    # prediction input: the sentence is one BadRecord in its place, the next one is read
    bad, good = read_conllu(path, labelled=False)
    assert isinstance(bad, BadRecord) and f"ids.conllu:{line}" in bad.error
    assert good.words == ("ok",)


def test_conllu_word_without_its_tag(tmp_path: Path) -> None:
    path = _conllu(tmp_path, ["1"], upos="_")
    with pytest.raises(DataError, match=r"ids.conllu:2: word 'w0' has no UPOS tag"):
        read_conllu(path)
    assert read_conllu(path, labelled=False)[0].words == ("w0",)


def _streusle(tmp_path: Path, ids: list[str]) -> str:
    rows = ["# sent_id = s9"]
    for n, word_id in enumerate(ids):
        lex = ["P", "in", "p.Locus", "p.Locus"] if word_id == "2" else ["_", "_", "_", "_"]
        cols = [word_id, f"w{n}", "w", "X", "X", "_", "0", "dep", "_", "_", "_", *lex]
        rows.append("\t".join([*cols, "_", "_", "_", "O"]))
    path = tmp_path / "s.conllulex"
    path.write_text("\n".join([*rows, ""]) + "\n")
    return str(path)


def test_streusle_ids_are_checked(tmp_path: Path) -> None:
    (target,) = read_streusle(_streusle(tmp_path, ["1", "2-3", "2", "2.1", "3"]))
    assert target.words == ("w0", "w2", "w4") and target.token_ids == ("2",)
    with pytest.raises(DataError, match=r"s.conllulex:3: 'a' is not a CoNLL-U word id"):
        read_streusle(_streusle(tmp_path, ["1", "a", "3"]))
    with pytest.raises(DataError, match=r"s.conllulex:4: word id 4 after word 2, expected 3"):
        read_streusle(_streusle(tmp_path, ["1", "2", "4"]))
    (bad,) = read_streusle(_streusle(tmp_path, ["1", "2", "4"]), lenient=True)
    assert isinstance(bad, BadRecord) and bad.id == "s9"


# -- word sense -----------------------------------------------------------------------------------
def test_target_wider_than_the_window_is_an_error(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    from nlptune.backbones.hf_text import HFTextEncoder
    from nlptune.data.wsd import SenseExample
    from nlptune.tasks.word_sense import WordSense

    text = HFTextEncoder(AutoTokenizer.from_pretrained(tiny_bert))
    words = tuple(["the", "film"] * 20)
    task = WordSense(max_length=16)
    far = SenseExample(words, (0, 30), "x", "a", "f.xml instance in.7", "in.7")  # discontinuous
    long = SenseExample(words, tuple(range(20)), "x", "a", "f.conllulex:3", "s9")
    near = SenseExample(words, (30,), "x", "a", "f.xml instance in.8", "in.8")
    task.fit([far, long, near])
    for example, named in ((far, "f.xml instance in.7"), (long, r"f.conllulex:3 \(sent_id s9\)")):
        with pytest.raises(
            DataError, match=rf"{named}: the target spans \d+ subword tokens.*raise backbone.max"
        ):
            task.featurize([example], text)
    mask = task.featurize([near], text).sequences["target_mask"][0]
    assert mask.sum() == 1 and len(mask) <= 16


# -- encodings ------------------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_wide_conll_and_conllu_files_name_their_encoding(encoding: str, tmp_path: Path) -> None:
    for name, read in (("ner_dev.conll", read_conll), ("pos_dev.conllu", read_conllu)):
        path = tmp_path / name
        path.write_bytes((FIXTURES / name).read_text(encoding="utf-8").encode(encoding))
        with pytest.raises(DataError, match=r"UTF-(16|32).*not UTF-8; convert it, e.g. iconv"):
            read(str(path))
