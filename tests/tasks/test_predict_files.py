"""Batch prediction over files: a bad record never loses the rest, every task's training formats
are read with their ids, the output formats the task's scorers read, bounded memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import nlptune
from nlptune import cli
from nlptune.errors import DataError

from ..conftest import FIXTURES
from .test_contract import _config

# per task: good JSON Lines inputs, and one input the task itself can't predict
INPUTS: dict[str, tuple[list[Any], Any]] = {
    "text_classification": ([{"text": "a great film"}, "the plot was dull"], {"txt": "no text"}),
    "sentence_pair": (
        [{"text": "a film", "text_pair": "a movie"}, {"sentence1": "a", "sentence2": "b"}],
        {"text": "a film"},
    ),
    "sequence_labelling": ([{"words": ["the", "film"]}, "the plot was dull"], {"words": 3}),
    "word_sense": (
        ["the film was good <head>in</head> the plot .", {"words": ["a", "in"], "target": [1]}],
        "the film was good <head></head> the plot .",  # the SemEval test set has 15 of these
    ),
    "extractive_qa": (
        [{"question": "what film", "context": "the film was good ."}] * 2,
        {"question": "what film"},
    ),
    "masked_lm": (["the film was [MASK] .", {"text": "a [MASK] plot"}], {"text": 3}),
    "text_to_text": (["a good film", {"text": "the cast"}], {"text": ""}),
}


@pytest.fixture(scope="module")
def trained(
    tiny_bert: Path, tiny_t5: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    runs = {}
    for task in INPUTS:
        family = "hf_seq2seq" if task == "text_to_text" else "hf_encoder"
        out = tmp_path_factory.mktemp(task) / "run"
        config = _config(task, family, tiny_t5 if task == "text_to_text" else tiny_bert, out)
        config["trainer"].update(max_steps=2, eval_every=2)
        nlptune.train(config)
        runs[task] = out
    return runs


@pytest.mark.parametrize("task", sorted(INPUTS))
def test_a_bad_record_never_loses_the_rest(
    task: str, trained: dict[str, Path], tmp_path: Path
) -> None:
    good, bad = INPUTS[task]
    lines = [json.dumps({**x, "id": "first"} if isinstance(x, dict) else x) for x in good[:1]]
    lines += ["{not json", json.dumps(good[1]), json.dumps(bad)]
    path = tmp_path / "in.jsonl"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe broken\n")
    predictor = nlptune.Predictor.from_dir(trained[task])
    rows = list(predictor.stream_file(str(path)))
    assert len(rows) == 5  # one output record per input record, in input order
    assert "error" not in rows[0]
    assert rows[0].get("id") == ("first" if isinstance(good[0], dict) else None)  # ids kept
    assert rows[1]["line"] == 2 and "not valid JSON" in rows[1]["error"]
    assert "error" not in rows[2]
    assert rows[3]["line"] == 4 and rows[3]["error"]
    assert rows[4]["line"] == 5 and "not UTF-8" in rows[4]["error"]
    with pytest.raises(DataError, match="in.jsonl:2: not valid JSON"):
        list(predictor.stream_file(str(path), strict=True))
    # the Python API: an exception at the first bad input, or error records in place
    items = [good[0], bad, good[1]]
    with pytest.raises(DataError, match="input 2"):
        predictor.predict(items)
    rows = predictor.predict(items, errors="record")
    assert len(rows) == 3 and rows[1]["input"] == 2 and "error" in rows[1]
    assert "error" not in rows[0] and "error" not in rows[2]


def test_cli_summary_exit_code_and_atomic_output(
    trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = trained["word_sense"]
    path = tmp_path / "in.txt"
    good, bad = INPUTS["word_sense"]
    path.write_text("\n".join([good[0], bad, good[0]]) + "\n")
    out = tmp_path / "out.jsonl"
    assert cli.main(["predict", str(run), "--input", str(path), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "predicted 2 records" in err and "1 failed" in err and "failed: line 2" in err
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [("error" in r) for r in rows] == [False, True, False] and rows[1]["line"] == 2
    out.write_text("kept\n")
    assert (
        cli.main(["predict", str(run), "--input", str(path), "--output", str(out), "--strict"]) == 2
    )
    assert out.read_text() == "kept\n" and not list(tmp_path.glob(".out.jsonl*"))  # untouched
    assert "in.txt:2: no target word (an empty <head>)" in capsys.readouterr().err
    path.write_text(good[0] + "\n")
    assert cli.main(["predict", str(run), "--input", str(path), "--output", str(out)]) == 0


def test_formats_keep_their_ids(
    trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def predict(task: str, source: Path, fmt: str = "jsonl") -> str:
        out = tmp_path / f"out.{fmt}"
        code = cli.main(
            ["predict", str(trained[task]), "--input", str(source), "--output", str(out),
             "--format", fmt]
        )  # fmt: skip
        assert code == 0, capsys.readouterr().err
        return out.read_text()

    # SemEval-2007 XML: instance ids; the key-file format the scorer reads
    xml = FIXTURES / "semeval" / "semeval-in.xml"
    ids = [line.split('"')[1] for line in xml.read_text().splitlines() if "<instance " in line]
    rows = [json.loads(x) for x in predict("word_sense", xml).splitlines()]
    assert [r["id"] for r in rows] == ids
    key = [line.split() for line in predict("word_sense", xml, "semeval").splitlines()]
    assert [k[1] for k in key] == ids and all(k[0] == "in" for k in key)
    # an empty <head> in XML gets an error record in its place, with its id
    broken = tmp_path / "broken.xml"
    broken.write_text(xml.read_text().replace("<head>in</head>", "<head></head>", 1))
    out = tmp_path / "b.jsonl"
    assert (
        cli.main(
            ["predict", str(trained["word_sense"]), "--input", str(broken), "--output", str(out)]
        )
        == 1
    )
    first = json.loads(out.read_text().splitlines()[0])
    assert first["id"] == ids[0] and "empty <head>" in first["error"] and "where" in first
    # STREUSLE: one record per target, with its sentence id and token ids
    lex = FIXTURES / "streusle_dev.conllulex"
    rows = [json.loads(x) for x in predict("word_sense", lex).splitlines()]
    expected = nlptune.Predictor.from_dir(trained["word_sense"]).task.read(str(lex), False)
    assert len(rows) == len(expected)
    assert all(r["id"] and r["token_ids"] for r in rows)
    assert [r["id"] for r in rows] == [e.id for e in expected]
    # CoNLL: the input's lines with the predicted tag appended (what conlleval reads)
    conll = FIXTURES / "ner_dev.conll"
    written = predict("sequence_labelling", conll, "conll").splitlines()
    source = conll.read_text().splitlines()
    assert len(written) == len(source)
    for a, b in zip(source, written, strict=True):
        if a.strip() and not a.startswith("-DOCSTART-"):
            assert b.startswith(a) and len(b.split()) == len(a.split()) + 1
        else:
            assert a == b
    # CoNLL-U: sentence ids
    conllu = FIXTURES / "pos_dev.conllu"
    sent_ids = [
        x.split("=", 1)[1].strip()
        for x in conllu.read_text().splitlines()
        if x.startswith("# sent_id")
    ]
    rows = [json.loads(x) for x in predict("sequence_labelling", conllu).splitlines()]
    assert sent_ids and [r["id"] for r in rows] == sent_ids
    # SQuAD JSON: question ids; the {id: answer} file the official script reads
    squad = FIXTURES / "squad_v1_dev.json"
    questions = [
        q["id"]
        for a in json.loads(squad.read_text())["data"]
        for p in a["paragraphs"]
        for q in p["qas"]
    ]
    answers = json.loads(predict("extractive_qa", squad, "squad"))
    assert list(answers) == questions and all(isinstance(v, str) for v in answers.values())
    # parallel text for text_to_text: one record a source line, in order
    rows = predict("text_to_text", FIXTURES / "translate" / "dev").splitlines()
    assert len(rows) == len((FIXTURES / "translate" / "dev.en").read_text().splitlines())


def test_format_refusals(
    trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.txt"
    path.write_text("a film\n")
    for run, fmt, message in (
        ("text_classification", "conll", "--format conll is for sequence_labelling runs"),
        ("sequence_labelling", "conll", "appends tags to the lines of a CoNLL"),
        ("word_sense", "squad", "--format squad is for extractive_qa and text_to_text runs"),
    ):
        assert cli.main(["predict", str(trained[run]), "--input", str(path), "--format", fmt]) == 2
        assert message in capsys.readouterr().err
    path.write_text("question\n")
    assert cli.main(["predict", str(trained["extractive_qa"]), "--input", str(path)]) == 2
    assert "reads JSON Lines of {question, context}" in capsys.readouterr().err


def test_bad_records_of_structured_files_are_reported_in_place(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    """SQuAD, SemEval XML, CoNLL, CoNLL-U, STREUSLE, CSV, parallel text: a record that can't be
    read is an error record in its place, and the others are predicted."""

    def rows(task: str, path: Path) -> list[dict[str, Any]]:
        return list(nlptune.Predictor.from_dir(trained[task]).stream_file(str(path)))

    squad = json.loads((FIXTURES / "squad_v1_dev.json").read_text())
    qas = [q for a in squad["data"] for p in a["paragraphs"] for q in p["qas"]]
    qas[1]["question"] = ""  # unreadable
    qas[2]["answers"] = [{"text": "not in the context", "answer_start": 0}]  # labels are ignored
    bad = tmp_path / "squad.json"
    bad.write_text(json.dumps(squad))
    out = rows("extractive_qa", bad)
    assert (
        len(out) == len(qas) and "no question" in out[1]["error"] and out[1]["id"] == qas[1]["id"]
    )
    assert "error" not in out[2] and "error" not in out[0]

    xml = (FIXTURES / "semeval" / "semeval-in.xml").read_text()
    broken = xml.replace("<head>in</head>", "in", 1)  # an instance without <head>
    (tmp_path / "s.xml").write_text(broken)
    out = rows("word_sense", tmp_path / "s.xml")
    assert len(out) == 40 and "no <head>" in out[0]["error"] and out[0]["id"] == "in.p.0"
    assert all("error" not in r for r in out[1:])

    conll = (FIXTURES / "ner_dev.conll").read_bytes().split(b"\n")
    conll[3] = b"\xff\xfe " + conll[3]  # a bad byte in the first sentence
    (tmp_path / "bad.conll").write_bytes(b"\n".join(conll))
    expected = len(nlptune.Predictor.from_dir(trained["sequence_labelling"]).task.read(
        str(FIXTURES / "ner_dev.conll"), labelled=False))  # fmt: skip
    out = rows("sequence_labelling", tmp_path / "bad.conll")
    assert len(out) == expected and "not UTF-8" in out[0]["error"]
    assert all("error" not in r for r in out[1:])

    conllu = (FIXTURES / "pos_dev.conllu").read_text().splitlines()
    token = next(i for i, x in enumerate(conllu) if x and not x.startswith("#"))
    conllu[token] = "1\tshort"  # not 10 fields
    (tmp_path / "bad.conllu").write_text("\n".join(conllu) + "\n")
    out = rows("sequence_labelling", tmp_path / "bad.conllu")
    assert "10 TAB-separated fields" in out[0]["error"] and out[0]["id"]
    assert all("error" not in r for r in out[1:])

    lex = (FIXTURES / "streusle_dev.conllulex").read_text().splitlines()
    token = next(i for i, x in enumerate(lex) if x and not x.startswith("#"))
    lex[token] = "1\tshort"
    (tmp_path / "bad.conllulex").write_text("\n".join(lex) + "\n")
    out = rows("word_sense", tmp_path / "bad.conllulex")
    assert "19 TAB-separated fields" in out[0]["error"]
    assert all("error" not in r for r in out[1:])

    (tmp_path / "t.tsv").write_text("sentence\tlabel\na good film\tpos\nx\ty\tz\nbad\tneg\n")
    out = rows("text_classification", tmp_path / "t.tsv")
    assert [("error" in r) for r in out] == [False, True, False]

    (tmp_path / "p.en").write_text("a good film\n\nthe cast\n")
    out = rows("text_to_text", tmp_path / "p")
    assert [("error" in r) for r in out] == [False, True, False]
    assert "p.en:2: empty line" in out[1]["error"]


def test_conll_txt_inputs_and_json_lines_named_json(
    trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run trained on CoNLL (data.format conll) reads a .txt input as CoNLL, as CoNLL-2003's
    train.txt; a .json file of one object a line is JSON Lines."""
    from nlptune.tasks.sequence_labelling import SequenceLabelling

    as_txt = tmp_path / "test.txt"
    as_txt.write_text((FIXTURES / "ner_dev.conll").read_text())
    task = SequenceLabelling(max_length=32, format="conll", tag_column=3)
    from nlptune.inputs import records

    got = [r.item for r in records(task, str(as_txt))]
    assert got and all(len(e.words) > 1 for e in got[:3])  # sentences, not lines
    lines = tmp_path / "in.json"
    lines.write_text(
        json.dumps({"words": ["the", "film"]})
        + "\n"
        + json.dumps({"words": ["a"], "id": "x"})
        + "\n"
    )
    out = list(nlptune.Predictor.from_dir(trained["sequence_labelling"]).stream_file(str(lines)))
    assert [r["words"] for r in out] == [["the", "film"], ["a"]] and out[1]["id"] == "x"


def test_odd_inputs_never_end_in_a_traceback(
    trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        json.dumps({"words": ["a", "in"], "target": ["in"]}) + "\n" + "9" * 5000 + "\n"
        + "[" * 100000 + "\n" + json.dumps({"words": ["a", "in"], "target": [1]}) + "\n"
    )  # fmt: skip
    out = list(nlptune.Predictor.from_dir(trained["word_sense"]).stream_file(str(path)))
    assert [("error" in r) for r in out] == [True, True, True, False]
    assert "list of word indices" in out[0]["error"]
    run = str(trained["text_classification"])
    text = tmp_path / "in.txt"
    text.write_text("a film\n")
    assert cli.main(["predict", run, "--input", str(text), "--output", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert cli.main(["predict", run, "--input", str(text), "--output", str(text)]) == 2
    assert "is the input file" in capsys.readouterr().err and text.read_text() == "a film\n"
    deep = tmp_path / "new" / "dir" / "out.jsonl"
    assert cli.main(["predict", run, "--input", str(text), "--output", str(deep)]) == 0
    assert deep.is_file()
    with pytest.raises(ValueError, match="errors='records'"):
        nlptune.Predictor.from_dir(run).predict(["a"], errors="records")


def test_inputs_are_read_the_way_they_are_written(
    trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nlptune.data.conll import read_conll, read_conllu
    from nlptune.inputs import records
    from nlptune.tasks.sequence_labelling import SequenceLabelling

    conll_run = SequenceLabelling(max_length=32, format="conll", tag_column=3)
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("EU rejects German call\nPeter Blackburn\nthe film was good .\n")
    got = [r.item for r in records(conll_run, str(sentences))]
    assert got == ["EU rejects German call", "Peter Blackburn", "the film was good ."]
    # a JSON Lines file named .json with a first line longer than any sniffing window
    long = tmp_path / "long.json"
    long.write_text(
        json.dumps({"words": ["film"] * 3000}) + "\n" + json.dumps({"words": ["a"]}) + "\n"
    )
    out = list(nlptune.Predictor.from_dir(trained["sequence_labelling"]).stream_file(str(long)))
    assert [len(r["words"]) for r in out] == [3000, 1]
    # a SQuAD file that is not UTF-8: one error line, not a traceback
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"data": [{"paragraphs": [{"context": "\xff", "qas": []}]}]}')
    assert cli.main(["predict", str(trained["extractive_qa"]), "--input", str(bad)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    # a bad byte in a comment between CoNLL-U sentences changes nothing
    conllu = tmp_path / "c.conllu"
    conllu.write_bytes(
        b"# sent_id = a\n1\tthe\t_\tDET\t_\t_\t0\t_\t_\t_\n\n# newdoc \xff\n\n"
        b"# sent_id = b\n1\tfilm\t_\tNOUN\t_\t_\t0\t_\t_\t_\n"
    )
    assert [e.id for e in read_conllu(str(conllu), labelled=False)] == ["a", "b"]
    # labelled CoNLL still splits lines at a lone CR, as text mode does
    cr = tmp_path / "cr.conll"
    cr.write_bytes(b"EU B-ORG\rrejects O\r\rPeter B-PER\r")
    assert [e.words for e in read_conll(str(cr))] == [("EU", "rejects"), ("Peter",)]


def test_a_systemic_failure_is_a_bug_not_a_bad_record(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = nlptune.Predictor.from_dir(trained["text_classification"])
    path = tmp_path / "in.txt"
    path.write_text("a film\n" * 40)

    def broken(*args: Any) -> Any:
        raise TypeError("a bug")

    monkeypatch.setattr(predictor.task, "predictions", broken)
    with pytest.raises(TypeError, match="a bug"):
        list(predictor.stream_file(str(path)))
    # records a reader could not read reach Predictor.predict with their own message
    from nlptune.data.examples import BadRecord

    rows = nlptune.Predictor.from_dir(trained["text_classification"]).predict(
        ["a film", BadRecord("t.tsv:3", "t.tsv:3: expected 2 fields")], errors="record"
    )
    assert rows[1]["error"] == "t.tsv:3: expected 2 fields" and "error" not in rows[0]


def test_a_line_ends_at_newline_only_and_a_pair_needs_one_tab(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"one\rtwo\nthree\x0bfour\r\nfive\x1csix\n")
    rows = list(nlptune.Predictor.from_dir(trained["text_classification"]).stream_file(str(path)))
    assert len(rows) == 3 and all("error" not in r for r in rows)  # \r, \x0b, \x1c stay inside
    path.write_text("a film\ta movie\nno tab here\nthree\tparts\there\nthe plot\tthe story\n")
    rows = list(nlptune.Predictor.from_dir(trained["sentence_pair"]).stream_file(str(path)))
    assert [r.get("line") for r in rows if "error" in r] == [2, 3]
    assert "found 0 TABs" in rows[1]["error"] and "found 2 TABs" in rows[2]["error"]
    assert "error" not in rows[0] and "error" not in rows[3]
