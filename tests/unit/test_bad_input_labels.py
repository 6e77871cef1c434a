"""Bad user data for text classification and its prediction inputs ends in one NlptuneError that
names the file, the line and what to change; never a traceback and never a silent misreading:
UTF-16/32 files, texts and labels of the wrong JSON type, labels that are lists on some rows
only, missing labels (nan, NA, empty), an empty data.label_sep or data.label, and a CSV quote
that never closes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import nlptune
from nlptune import cli
from nlptune.config import validate
from nlptune.data.examples import TextExample
from nlptune.data.plain import read_lines, read_text
from nlptune.data.readers import read_table
from nlptune.errors import ConfigError, DataError
from nlptune.inputs import records
from nlptune.tasks.text_classification import TextClassification, infer_problem

from ..conftest import tiny_config

LINES = ["a charming story", "really tedious script"]


def _task(**columns: Any) -> TextClassification:
    return TextClassification(max_length=32, **columns)


def _jsonl(tmp_path: Path, rows: list[Any], name: str = "train.jsonl") -> str:
    """``rows`` as JSON Lines (a string row is written as it is: ``NaN`` is not JSON)."""
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def _csv(tmp_path: Path, text: str, name: str = "train.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _fit(path: str, **columns: Any) -> TextClassification:
    """A task that has read ``path`` and fixed its problem and labels, as training does."""
    task = _task(**columns)
    examples = task.read(path)
    task.fit(examples)
    task.encode_labels(examples)
    return task


def _cli_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """The one ``error:`` line of a command that must fail with exit code 2."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
    return line


def _validate_error(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], **data: Any
) -> str:
    config = tiny_config(tiny_bert, tmp_path / "out")
    config["data"] = {"text": "text", "label": "label", **data}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return _cli_error(capsys, ["validate", str(path)])


# -- 1. UTF-16 and UTF-32 files ------------------------------------------------------------------
WIDE = [
    ("utf-16", "UTF-16", "it starts with a byte-order mark"),
    ("utf-32", "UTF-32", "it starts with a byte-order mark"),
    ("utf-16-le", "UTF-16LE", "no byte-order mark"),
    ("utf-16-be", "UTF-16BE", "no byte-order mark"),
    ("utf-32-le", "UTF-32LE", "no byte-order mark"),
]


@pytest.mark.parametrize(("encoding", "name", "how"), WIDE)
@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".csv"])
def test_a_wide_predict_input_is_one_error_for_the_file(
    tmp_path: Path, encoding: str, name: str, how: str, suffix: str
) -> None:
    body = {
        ".txt": "".join(x + "\n" for x in LINES),
        ".jsonl": "".join(json.dumps({"text": x}) + "\n" for x in LINES),
        ".csv": "text\n" + "".join(x + "\n" for x in LINES),
    }[suffix]
    path = tmp_path / f"input{suffix}"
    path.write_text(body, encoding=encoding)
    match = rf"input{suffix}: the file is {name} text \({how}.*iconv -f {name} -t UTF-8 input"
    with pytest.raises(DataError, match=match):
        records(_task(), str(path))  # at once: not one garbage record a line


@pytest.mark.parametrize(("encoding", "name", "how"), WIDE)
def test_wide_training_files_are_refused_alike(
    tmp_path: Path, encoding: str, name: str, how: str
) -> None:
    for file, body in [
        ("train.csv", "text,label\na,1\n"),
        ("train.tsv", "text\tlabel\na\t1\n"),
        ("train.jsonl", '{"text": "a", "label": "1"}\n'),
        ("corpus.txt", "a line of text\nanother line\n"),
    ]:
        path = tmp_path / file
        path.write_text(body, encoding=encoding)
        match = rf"{file}: the file is {name} text .*iconv -f {name} -t UTF-8"
        with pytest.raises(DataError, match=match):
            if file.endswith(".txt"):
                read_text(str(path))
            else:
                read_table(str(path), columns=["text"])


def test_wide_gzip_text_names_the_pipe_that_converts_it(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt.gz"
    path.write_bytes(gzip.compress("a line\n".encode("utf-16")))
    match = r"zcat corpus.txt.gz \| iconv -f UTF-16 -t UTF-8 \| gzip > corpus.utf8.txt.gz"
    with pytest.raises(DataError, match=match):
        list(read_lines(path))


def test_nul_bytes_are_refused_not_read_as_text(tmp_path: Path) -> None:
    early = tmp_path / "early.txt"
    early.write_bytes(b"hello\nwor\0ld\n")  # not UTF-16, but not text either
    with pytest.raises(DataError, match=r"early.txt: holds NUL bytes \(the first at byte 9\)"):
        records(_task(), str(early))
    late = tmp_path / "late.txt"  # past the first 64 KiB: that line's error, the rest read
    late.write_bytes(b"hello\n" * 12000 + b"wor\0ld\nfine\n")
    out = list(records(_task(), str(late)))
    assert out[12000].error is not None and "NUL" in out[12000].error
    assert out[12001].item == "fine" and out[12001].error is None
    with pytest.raises(DataError, match=r"late.txt:12001: holds a NUL byte"):
        read_text(str(late))
    with pytest.raises(DataError, match=r"bad.csv:40001: holds a NUL byte"):
        read_table(_csv(tmp_path, "a\n" * 40000 + "b\0\n", "bad.csv"), header=False)


def test_utf8_with_a_byte_order_mark_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "input.txt"
    path.write_text("".join(x + "\n" for x in LINES), encoding="utf-8-sig")
    assert [r.item for r in records(_task(), str(path))] == LINES
    assert [t.text for t in read_text(str(path))] == LINES


@pytest.fixture(scope="module")
def run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("labels_run") / "run"
    nlptune.train(tiny_config(tiny_bert, out, trainer={"max_steps": 2}))
    return out


def test_wide_input_is_one_error_line_in_predict(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sentences.txt"
    path.write_text("".join(x + "\n" for x in LINES), encoding="utf-16")
    line = _cli_error(capsys, ["predict", str(run), "--input", str(path)])
    assert "sentences.txt: the file is UTF-16 text" in line
    assert "iconv -f UTF-16 -t UTF-8 sentences.txt > sentences.utf8.txt" in line
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"text": x}) + "\n" for x in LINES))
    assert cli.main(["predict", str(run), "--input", str(good)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


# -- 2. texts and labels of the wrong type; lists of labels on some rows only ------------------
@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (["a"], "a list"),
        ({"a": 1}, r"an object \(dict\)"),
        (3, "the number 3"),
        (True, "the boolean true"),
    ],
)
def test_a_text_that_is_not_a_string_names_the_field_and_line(
    tmp_path: Path, text: Any, kind: str
) -> None:
    rows = [{"text": "a", "label": "x"}, {"text": text, "label": "y"}]
    with pytest.raises(DataError, match=rf"train.jsonl:2: column 'text' holds {kind}.*not text"):
        _fit(_jsonl(tmp_path, rows))
    # prediction: that record's error, the others predicted
    out = _task().read(_jsonl(tmp_path, rows), labelled=False)
    assert isinstance(out[0], TextExample) and "holds" in out[1].error
    with pytest.raises(DataError, match=rf"in.jsonl:2: field 'text' holds {kind}, not text"):
        _task().input_example({"text": text}, "in.jsonl:2")


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ({"y": 1}, r"the label in column 'label' is an object \(dict\)"),
        ([["y"]], "a label in the list in column 'label' is a list"),
        ([None], "a label in the list in column 'label' is missing"),
        ([1.5, {"a": 1}], r"a label in the list .* is an object"),
    ],
)
def test_a_label_of_the_wrong_type_names_the_line(tmp_path: Path, label: Any, message: str) -> None:
    rows = [{"text": "a", "label": ["x"]}, {"text": "b", "label": label}]
    with pytest.raises(DataError, match=rf"train.jsonl:2: {message}"):
        _fit(_jsonl(tmp_path, rows))


def test_a_list_label_on_some_rows_only_is_an_error_not_multi_label(tmp_path: Path) -> None:
    rows = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}, {"text": "c", "label": ["x"]}]
    match = r"train.jsonl:3: the label is a list but at .*train.jsonl:1 it is one label"
    with pytest.raises(DataError, match=match):
        _fit(_jsonl(tmp_path, rows))
    rows = [{"text": "a", "label": ["x"]}, {"text": "b", "label": "y"}]
    with pytest.raises(DataError, match=r"train.jsonl:2: the label is one label but at"):
        _fit(_jsonl(tmp_path, rows))
    # every row a list (an empty one too), or every cell split by label_sep: multi-label
    rows = [
        {"text": "a", "label": ["x", "y"]},
        {"text": "b", "label": []},
        {"text": "c", "label": ["y"]},
    ]
    task = _fit(_jsonl(tmp_path, rows))
    assert (task.problem, task.labels) == ("multi_label", ["x", "y"])
    rows = [{"text": "a", "label": ["x"]}, {"text": "b", "label": "x|y"}]
    task = _fit(_jsonl(tmp_path, rows), label_sep="|")
    assert (task.problem, task.labels) == ("multi_label", ["x", "y"])


def test_the_problem_type_is_decided_consistently_across_files_and_examples(
    tmp_path: Path,
) -> None:
    mixed = [TextExample("a", label="x", where="f:1"), TextExample("b", label=("x",), where="f:2")]
    with pytest.raises(DataError, match="f:2: the label is a list but at f:1 it is one label"):
        infer_problem(mixed)
    # a dev file of lists for a task that the training file made single-label
    task = _fit(_jsonl(tmp_path, [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]))
    dev = task.read(_jsonl(tmp_path, [{"text": "a", "label": ["x"]}], "dev.jsonl"))
    with pytest.raises(
        DataError, match=r"dev.jsonl:1: the label is a list, but this task is single"
    ):
        task.encode_labels(dev)
    explicit = _task(problem="single_label")
    with pytest.raises(DataError, match=r"dev.jsonl:1: the label is a list"):
        explicit.fit(dev)


# -- 3. missing labels: nan, NA, inf, an empty cell; 1 and 1.0 are one class ----------------------
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_json_nan_label_is_an_error_not_regression(tmp_path: Path, value: str) -> None:
    rows = ['{"text": "a", "label": 1}', '{"text": "b", "label": 0}']
    rows.append(f'{{"text": "c", "label": {value}}}')
    with pytest.raises(DataError, match=r"train.jsonl:3: the label .* is -?(nan|inf).*missing"):
        _fit(_jsonl(tmp_path, rows))
    with pytest.raises(DataError, match=r"train.jsonl:3: the label .* is -?(nan|inf)"):
        _fit(_jsonl(tmp_path, rows), problem="regression")


@pytest.mark.parametrize("cell", ["nan", "NaN", "NA", "null", "inf", "-inf", "None"])
def test_a_missing_value_among_numeric_labels_names_the_line(tmp_path: Path, cell: str) -> None:
    path = _csv(tmp_path, f"text,label\na,1\nb,0\nc,{cell}\nd,1\n")
    match = rf"train.csv:4: the label in column 'label' is '{cell}', a missing value"
    with pytest.raises(DataError, match=match):
        _fit(path)
    with pytest.raises(DataError, match=match):
        _fit(path, problem="regression")
    scores = _csv(tmp_path, f"text,score\na,0.5\nb,1.25\nc,{cell}\n", "scores.csv")
    with pytest.raises(DataError, match=r"scores.csv:4: the label .* a missing value"):
        _fit(scores, label="score")


@pytest.mark.parametrize("cell", ["", "  ", '""'])
def test_an_empty_label_cell_is_an_error(tmp_path: Path, cell: str) -> None:
    with pytest.raises(DataError, match=r"train.csv:3: the label in column 'label' is missing"):
        _fit(_csv(tmp_path, f"text,label\na,1\nb,{cell}\nc,0\n"))


def test_class_names_that_look_like_missing_values_stay_classes(tmp_path: Path) -> None:
    """``nan`` is a language code (Min Nan): among names, not numbers, it is a class."""
    task = _fit(_csv(tmp_path, "text,label\na,eng\nb,nan\nc,none\n"))
    assert (task.problem, sorted(task.labels)) == ("single_label", ["eng", "nan", "none"])


def test_numeric_labels_one_and_one_point_zero_are_one_class(tmp_path: Path) -> None:
    rows = [{"text": "a", "label": 1}, {"text": "b", "label": 0.0}, {"text": "c", "label": 1.0}]
    task = _fit(_jsonl(tmp_path, rows))
    assert (task.problem, task.labels) == ("single_label", ["0", "1"])
    assert [e.label for e in task.read(_jsonl(tmp_path, rows))] == ["1", "0", "1"]
    rows = [{"text": "a", "label": 1.5}, {"text": "b", "label": 0}, {"text": "c", "label": 2}]
    task = _fit(_jsonl(tmp_path, rows))
    assert task.problem == "regression"
    rows = [{"text": "a", "label": [1, 2.0]}, {"text": "b", "label": [2]}]
    assert _fit(_jsonl(tmp_path, rows)).labels == ["1", "2"]


def test_a_nan_label_is_one_error_line_in_the_cli(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = ['{"text": "a", "label": 1}', '{"text": "b", "label": 0}', '{"text": "c", "label": NaN}']
    line = _validate_error(tiny_bert, tmp_path, capsys, train=_jsonl(tmp_path, rows))
    assert "train.jsonl:3: the label in column 'label' is nan" in line


# -- 4, 5. an empty data.label_sep or data.label ---------------------------------------------------
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"label_sep": ""}, "data.label_sep is empty"),
        ({"label": []}, "data.label is an empty list"),
    ],
)
def test_empty_label_keys_are_refused_before_training(
    tiny_bert: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    data: dict[str, Any],
    message: str,
) -> None:
    config = tiny_config(tiny_bert, tmp_path / "out")
    config["data"].update(data)
    with pytest.raises(ConfigError, match=message):
        validate(config)
    pair = tiny_config(tiny_bert, tmp_path / "out", task={"type": "sentence_pair"})
    pair["data"].update({"text_pair": "text", **data})
    with pytest.raises(ConfigError, match=message):
        validate(pair)
    # a task built without a run config (the Python API) refuses too, before reading
    train = _jsonl(tmp_path, [{"text": "a", "label": "x"}])
    with pytest.raises(ConfigError, match=message):
        _task(**data).read(train)
    line = _validate_error(tiny_bert, tmp_path, capsys, train=train, **data)
    assert message in line


# -- 6. a CSV quote that never closes ------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "line"),
    [
        ('text,label\nok,0\n"hi,1\nbye,0\nfoo,1\n', 3),  # the text column: the field count is off
        ('text,label\nok,0\nhi,"1\nbye,0\nfoo,1\n', 3),  # the last column: the count fits
        ('text,label\n"a\nb",1\nok,0\nhi,"1\nbye,0\n', 5),  # after a good multi-line field
        ('text,label\nok,0\nhi,"1', 3),  # on the last line, no line break at the end
    ],
)
@pytest.mark.parametrize("lenient", [False, True])
def test_a_quote_that_never_closes_names_the_line_where_it_opens(
    tmp_path: Path, body: str, line: int, lenient: bool
) -> None:
    path = _csv(tmp_path, body)
    match = rf"train.csv:{line}: a quote opens here and never closes"
    with pytest.raises(DataError, match=match):
        read_table(path, columns=["text", "label"], lenient=lenient)


def test_a_quote_closed_lines_later_names_where_it_opens(tmp_path: Path) -> None:
    path = _csv(tmp_path, 'text,label\nok,0\n"hi,1\nbye,0\n"foo",1\nbar,0\n')
    with pytest.raises(DataError, match=r"train.csv:5: malformed row .* opens on line 3"):
        read_table(path, columns=["text", "label"])
    path = _csv(tmp_path, 'text,label\nok,0\n"a\nb",1,2\nc,0\n')
    with pytest.raises(DataError, match=r"train.csv:3: expected 2 fields, found 3 .* line 4"):
        read_table(path, columns=["text", "label"])


def test_quoted_multi_line_fields_and_doubled_quotes_still_read(tmp_path: Path) -> None:
    body = 'text,label\n"line one\nline two, with a comma",1\n"say ""hi""",0\nplain,0\n'
    table = read_table(_csv(tmp_path, body), columns=["text", "label"])
    assert table.column("text") == ["line one\nline two, with a comma", 'say "hi"', "plain"]
    assert table.lines == [2, 4, 5]
    # TSV reads quotes as text (data.quoting none): an odd quote is just a character
    tsv = tmp_path / "train.tsv"
    tsv.write_text('text\tlabel\n"hi\t1\nbye\t0\n')
    assert read_table(str(tsv), columns=["text", "label"]).column("text") == ['"hi', "bye"]


def test_an_unclosed_quote_is_one_error_line_in_the_cli(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = _csv(tmp_path, 'text,label\na,0\nb,"1\nc,0\nd,1\n')
    line = _validate_error(tiny_bert, tmp_path, capsys, train=train)
    assert "train.csv:3: a quote opens here and never closes" in line
