"""Unit tests of the everyday-use helpers: PTB word split with offsets, plain ``list`` output,
progress lines, min_steps planning, degenerate-prediction messages, the keyed ``json`` writer,
entity spans with scores, trackers and the model card."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from nlptune import cli
from nlptune.config import TrainerConfig, iter_keys, yaml_value
from nlptune.data.words import split_words

# --- PTB word split ---------------------------------------------------------------------------

SENTENCE = "I don't think Smith's U.S. firm earned $1,000.50 on 1996-08-22."


def _words(text: str) -> list[str]:
    return [w for w, _, _ in split_words(text)]


def _check_offsets(text: str) -> None:
    found = split_words(text)
    for word, start, end in found:
        assert text[start:end] == word
    starts = [s for _, s, _ in found]
    assert starts == sorted(starts)
    # nothing but whitespace is dropped: the words are the text without its spaces
    assert "".join(w for w, _, _ in found) == "".join(text.split())


def test_split_words_ptb_style() -> None:
    words = _words(SENTENCE)
    for expected in ("I", "do", "n't", "think", "Smith", "'s", "U.S.", "1,000.50", "1996-08-22"):
        assert expected in words, (expected, words)
    assert "$" in words and words[-1] == "."  # the sentence's full stop is its own word
    assert "don't" not in words and "Smith's" not in words and "1996-08-22." not in words
    assert words == [
        "I", "do", "n't", "think", "Smith", "'s", "U.S.", "firm", "earned", "$", "1,000.50",
        "on", "1996-08-22", ".",
    ]  # fmt: skip
    _check_offsets(SENTENCE)


def test_split_words_punctuation_and_whole_tokens() -> None:
    assert _words("Peter Blackburn lives in Paris, France.") == [
        "Peter", "Blackburn", "lives", "in", "Paris", ",", "France", ".",
    ]  # fmt: skip
    assert _words("a state-of-the-art model") == ["a", "state-of-the-art", "model"]
    assert "O'Neill" in _words("O'Neill spoke.")
    assert _words("Mr. Smith met Dr. Jones") == ["Mr.", "Smith", "met", "Dr.", "Jones"]
    assert "12:30" in _words("at 12:30 sharp") and "1st" in _words("the 1st try")
    assert "50%" in _words("up 50% today")
    assert _words("I'm sure they'll go") == ["I", "'m", "sure", "they", "'ll", "go"]
    assert _words("Wait... what--now?") == ["Wait", "...", "what", "--", "now", "?"]
    mail = _words("mail jane.doe@example.com today")
    assert "jane.doe@example.com" in mail
    url = _words("see https://example.com/a/b.html.")
    assert "https://example.com/a/b.html" in url and url[-1] == "."
    for text in (
        SENTENCE,
        "Peter Blackburn lives in Paris, France.",
        "  leading and   inner\tspaces\n",
        "Curly “quotes” and ’apostrophes’ aren’t lost; naïve café – ok?!",
        "O'Neill's e-mail: a.b@c.org (see www.x.org/p).",
    ):
        _check_offsets(text)


def test_split_words_keeps_words_that_start_with_a_digit() -> None:
    """PTB (and CoNLL-2003) keep "1990s", "19-year-old", "3D" as one token; a number is split
    off only where a non-word character follows it."""
    words = _words("In the 1990s a 19-year-old bought 3D glasses at 10am for the 5G network.")
    for whole in ("1990s", "19-year-old", "3D", "10am", "5G"):
        assert whole in words, (whole, words)
    assert "1st" in _words("the 1st try") and "3-0" in _words("won 3-0 .")


def test_split_words_keeps_combining_marks_in_their_word() -> None:
    """Decomposed (NFD) text: an accent is a combining mark after its letter, part of the
    word ("José" must not come out as "Jose" and a lone accent)."""
    text = "Jose\u0301 lives in Mu\u0308nchen."
    assert _words(text) == ["Jose\u0301", "lives", "in", "Mu\u0308nchen", "."]
    _check_offsets(text)


def test_split_words_empty_and_blank() -> None:
    assert split_words("") == []
    assert split_words("   \t\n") == []


# --- nlptune list: plain text ---------------------------------------------------------------


def test_yaml_value_writes_defaults_as_yaml() -> None:
    assert yaml_value(None) == "null"
    assert yaml_value(True) == "true" and yaml_value(False) == "false"
    assert yaml_value(["tensorboard"]) == "[tensorboard]"
    assert yaml_value([]) == "[]"
    assert yaml_value("") == "''"
    assert yaml_value(3) == "3" and yaml_value(0.5) == "0.5"
    assert yaml_value("auto") == "auto"
    assert yaml_value("(entry name)") == "(entry name)"
    # every shown default reads back as the default itself
    for _, _, default, _ in iter_keys():
        if default != "(entry name)":
            assert yaml.safe_load(yaml_value(default)) == default


def test_plain_drops_rest_markup() -> None:
    assert cli._plain("use ``x`` and :class:`~nlptune.predict.Predictor`") == "use x and Predictor"
    assert cli._plain(":meth:`evaluate` of :func:`a.b.c`") == "evaluate of c"
    assert cli._plain("no markup here") == "no markup here"


def test_columns_align_and_wrap_long_cells(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [("a", "int", "1", "first"), ("bb", "x" * 40, "2", "second"), ("ccc", "str", "3", "z")]
    cli._columns(rows, widest=(10, 8, 4))
    lines = capsys.readouterr().out.splitlines()
    # columns as wide as their widest cell up to the cap, two spaces apart
    assert lines[0] == "a    int       1  first"
    # the too-wide type ends its line; the rest starts under its column on the next
    assert lines[1] == "bb   " + "x" * 40
    assert lines[2] == " " * 15 + "2  second"
    assert lines[3] == "ccc  str       3  z"


# --- progress lines --------------------------------------------------------------------------


def test_progress_line_counts_share_rate_and_time_left() -> None:
    from nlptune.progress import Progress

    shown = Progress("training", 120, "step", enabled=False)
    shown.count = 40
    line = shown.line(shown.started + 20.0)
    assert line == "training: step 40 of 120 (33%), 2 steps/s, 0:20 elapsed, 0:40 left"
    shown.update(0, loss=0.25)
    assert shown.line(shown.started + 20.0).endswith("0:40 left, loss 0.25")


def test_progress_line_after_a_resume_and_without_a_total() -> None:
    from nlptune.progress import Progress

    resumed = Progress("training", 200, "step", enabled=False, initial=100)
    resumed.count = 150  # 50 steps in this process
    assert resumed.line(resumed.started + 25.0) == (
        "training: step 150 of 200 (75%), 2 steps/s, 0:25 elapsed, 0:25 left"
    )
    open_ended = Progress("predicting", None, "record", enabled=False)
    open_ended.count = 7
    line = open_ended.line(open_ended.started + 3600 + 125.0)
    assert line.startswith("predicting: 7 records, ") and "1:02:05 elapsed" in line
    assert "left" not in line and " of " not in line


def test_progress_plain_lines_off_terminal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from nlptune import progress

    monkeypatch.setenv("NLPTUNE_PROGRESS_SECONDS", "0")
    monkeypatch.setattr("sys.stderr", io.StringIO())  # not a terminal
    with caplog.at_level("INFO", logger="nlptune"):
        shown = progress.Progress("evaluating dev", 3, "example")
        for _ in range(3):
            shown.update()
        shown.close()
        quiet = progress.Progress("training", 3, "step", enabled=False)
        for _ in range(3):
            quiet.update()
    lines = [r.getMessage() for r in caplog.records]
    assert [x.split(",")[0] for x in lines] == [
        "evaluating dev: example 1 of 3 (33%)",
        "evaluating dev: example 2 of 3 (67%)",
    ]  # nothing at 3 of 3 (done), nothing from the disabled one
    assert "\r" not in progress.sys.stderr.getvalue()  # type: ignore[attr-defined]


def test_progress_seconds_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from nlptune.progress import plain_every

    monkeypatch.delenv("NLPTUNE_PROGRESS_SECONDS", raising=False)
    assert plain_every() == 30.0
    monkeypatch.setenv("NLPTUNE_PROGRESS_SECONDS", "2.5")
    assert plain_every() == 2.5
    monkeypatch.setenv("NLPTUNE_PROGRESS_SECONDS", "-4")
    assert plain_every() == 0.0
    monkeypatch.setenv("NLPTUNE_PROGRESS_SECONDS", "often")
    assert plain_every() == 30.0


def test_progress_uses_a_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from nlptune.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    monkeypatch.setattr("sys.stderr", term)
    shown = Progress("training", 4, "step")
    assert shown.bar is not None
    shown.update(2, loss=1.0)
    shown.write("a message")
    shown.close()
    assert shown.bar is None and "a message" in term.getvalue() and "training" in term.getvalue()


# --- min_steps and the short-run warning -------------------------------------------------------


def test_planned_steps(caplog: pytest.LogCaptureFixture) -> None:
    from nlptune.training.loop import planned_steps

    with caplog.at_level("INFO", logger="nlptune"):
        assert planned_steps(TrainerConfig(epochs=1, min_steps=30), 12, 96) == 30
    text = caplog.text
    assert "trainer.min_steps=30" in text and "training 30 steps (2.5 epochs)" in text
    assert "warning: this run makes only 30 optimizer steps (96 examples, batch 32)" in text
    caplog.clear()
    with caplog.at_level("INFO", logger="nlptune"):
        assert planned_steps(TrainerConfig(epochs=1, min_steps=30, max_steps=5), 12, 96) == 5
    assert "trainer.min_steps" not in caplog.text.split("warning:")[0]
    assert "makes only 5 optimizer steps" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="nlptune"):
        assert planned_steps(TrainerConfig(epochs=1, min_steps=0), 12, 96) == 12
        assert planned_steps(TrainerConfig(epochs=0.5, min_steps=0), 12, 96) == 6
        assert planned_steps(TrainerConfig(epochs=3, min_steps=300), 50, 1600) == 300
        assert planned_steps(TrainerConfig(epochs=3, min_steps=100), 50, 1600) == 150
    assert "makes only 12" in caplog.text and "makes only 6" in caplog.text
    assert "makes only 300" not in caplog.text and "makes only 150" not in caplog.text
    caplog.clear()
    with caplog.at_level("INFO", logger="nlptune"):  # other processes say nothing
        assert planned_steps(TrainerConfig(epochs=1, min_steps=30), 12, 96, main=False) == 30
    assert caplog.text == ""


def test_min_steps_default_and_bounds() -> None:
    assert TrainerConfig().min_steps == 300
    with pytest.raises(ValueError):
        TrainerConfig(min_steps=-1)


# --- degenerate predictions ------------------------------------------------------------------


def test_one_class_and_the_warning() -> None:
    from nlptune.tasks.metrics import degenerate_warning, one_class

    why = one_class(["pos"] * 4, ["pos", "neg", "pos", "neg"])
    assert why is not None
    assert "'pos' for all 4 examples" in why and "2 classes" in why and "not learnt" in why
    assert one_class(["pos", "neg"], ["pos", "neg"]) is None
    assert one_class(["pos"] * 3, ["pos"] * 3) is None  # the gold data has one class too
    assert one_class(["pos"], ["neg"]) is None  # one item says nothing
    assert "all 3 words" in str(one_class(["NN"] * 3, ["NN", "VB", "DT"], "word"))

    class Task:
        degenerate = why

    warning = degenerate_warning(Task(), "the dev set")
    assert warning is not None and warning.startswith("warning: on the dev set, the model")
    assert "trainer.lr" in warning and "trainer.min_steps" in warning
    Task.degenerate = None
    assert degenerate_warning(Task(), "the dev set") is None
    assert degenerate_warning(object(), "x") is None


def test_all_o_tagging_is_degenerate() -> None:
    from nlptune.tasks.sequence_labelling import _degenerate

    gold = [["B-PER", "O"], ["O", "B-LOC", "I-LOC"]]
    why = _degenerate([["O", "O"], ["O", "O", "O"]], gold, bio=True)
    assert why is not None and "every word 'O'" in why and "3 gold words" in why
    assert "all 2 sentences" in why
    assert _degenerate([["B-PER", "O"], ["O", "O", "O"]], gold, bio=True) is None
    assert _degenerate([["O"]], [["O"]], bio=True) is None  # no gold entity: nothing to learn
    pos = _degenerate([["NN", "NN"]], [["NN", "VB"]], bio=False)
    assert pos is not None and "'NN' for all 2 words" in pos


# --- entity spans with offsets and scores -----------------------------------------------------


def test_spans_from_raw_text_offsets_and_scores() -> None:
    from nlptune.tasks.sequence_labelling import _spans

    text = "Peter Blackburn lives in Paris, France."
    found = split_words(text)
    words = [w for w, _, _ in found]
    offsets = tuple((a, b) for _, a, b in found)
    tags = ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "B-LOC", "O"]
    probs = [0.9, 0.7, 0.99, 0.99, 0.6, 0.99, 0.8, 0.99]
    ents = _spans(words, tags, probs, text, offsets)
    assert [(e["text"], e["type"]) for e in ents] == [
        ("Peter Blackburn", "PER"),
        ("Paris", "LOC"),
        ("France", "LOC"),
    ]
    for ent in ents:
        assert text[ent["start"] : ent["end"]] == ent["text"]
    assert ents[0]["score"] == pytest.approx(0.8) and ents[1]["score"] == pytest.approx(0.6)
    # words without offsets: offsets in the words joined by single spaces, no score
    plain = _spans(["New", "York", "is", "big"], ["B-LOC", "I-LOC", "O", "O"])
    assert plain == [
        {"type": "LOC", "start_word": 0, "end_word": 2, "text": "New York", "start": 0, "end": 8}
    ]


def test_top_probability_is_the_softmax_maximum() -> None:
    from nlptune.tasks.sequence_labelling import _top_probability

    scores = np.array([2.0, 0.5, -1.0, 1.0], dtype=np.float32)
    soft = np.exp(scores) / np.exp(scores).sum()
    assert _top_probability(scores) == pytest.approx(float(soft.max()), rel=1e-6)
    assert _top_probability(np.array([1000.0, 0.0])) == pytest.approx(1.0)  # no overflow


def test_squad_totals_are_integers() -> None:
    from nlptune.build import rounded
    from nlptune.tasks import squad_metrics

    out = squad_metrics.score({"a": ["red"], "b": []}, {"a": "red", "b": "x"}, {"a": -1, "b": 1})
    for key in ("total", "HasAns_total", "NoAns_total"):
        assert type(out[key]) is int, (key, out[key])
    shown = json.dumps(rounded(out))
    assert '"total": 2,' in shown and '"HasAns_total": 1,' in shown


# --- --format json ---------------------------------------------------------------------------


def test_json_writer_keys_by_id_and_keeps_repeats(caplog: pytest.LogCaptureFixture) -> None:
    from nlptune.outputs import Writer

    out = io.StringIO()
    writer = Writer("json", out, "in.jsonl")
    rows = [
        {"id": "a", "label": "pos", "score": 0.9},
        {"label": "neg", "score": 0.6},
        {"id": "a", "label": "neg", "score": 0.7},
        {"id": "a", "label": "pos", "score": 0.8},
        {"id": "b", "error": "no text", "line": 5},
    ]
    with caplog.at_level("INFO", logger="nlptune"):
        for row in rows:
            writer.write(row)
        writer.close()
    written = out.getvalue()
    assert written.count("\n") == 1  # one JSON object
    data = json.loads(written)
    assert list(data) == ["a", "record-2", "a#2", "a#3", "b"]
    assert data["a"] == {"label": "pos", "score": 0.9}  # without its id
    assert data["a#2"]["score"] == 0.7 and data["a#3"]["score"] == 0.8
    assert data["b"] == {"error": "no text", "line": 5}
    assert "2 records repeat an earlier id" in caplog.text


def test_json_format_is_squad_for_qa_tasks() -> None:
    from nlptune.outputs import check_format

    assert check_format("json", "extractive_qa", "q.jsonl") == "squad"
    assert check_format("json", "text_to_text", "q.jsonl") == "squad"
    assert check_format("json", "text_classification", "in.jsonl") == "json"
    assert check_format("jsonl", "sequence_labelling", "in.txt") == "jsonl"


# --- logging setup ---------------------------------------------------------------------------


def test_show_messages_only_where_logging_is_not_set_up() -> None:
    from nlptune.logs import StderrHandler, show_messages

    ours, root = logging.getLogger("nlptune"), logging.getLogger()
    saved = (list(ours.handlers), ours.level, list(root.handlers))
    try:
        ours.handlers[:] = []
        root.handlers[:] = [logging.NullHandler()]  # the program configured logging
        show_messages(always=False)
        assert ours.handlers == []
        root.handlers[:] = []
        ours.setLevel(logging.NOTSET)
        show_messages(always=False)
        show_messages(always=False)
        show_messages()  # the CLI: never a second handler
        assert [type(h) for h in ours.handlers] == [StderrHandler]
        assert ours.level == logging.INFO
    finally:
        ours.handlers[:], root.handlers[:] = saved[0], saved[2]
        ours.setLevel(saved[1])


def test_quiet_transformers_nests() -> None:
    from transformers.utils import logging as hf_logging

    from nlptune.backbones.hf_paths import quiet_transformers

    hf_logging.enable_progress_bar()
    try:
        with quiet_transformers():
            with quiet_transformers():
                assert not hf_logging.is_progress_bar_enabled()
            assert not hf_logging.is_progress_bar_enabled()  # the outer one stays quiet
        assert hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        with quiet_transformers():
            pass
        assert not hf_logging.is_progress_bar_enabled()  # as it was before
    finally:
        hf_logging.enable_progress_bar()


def test_hub_unreachable_names_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from nlptune.backbones.hf_paths import _hub_unreachable

    for key in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    started = time.perf_counter()
    why = _hub_unreachable()
    assert why is not None and why.startswith("127.0.0.1:9")
    assert time.perf_counter() - started < 5
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    assert _hub_unreachable() is None  # a proxy decides: not probed


# --- trackers --------------------------------------------------------------------------------


def test_trackers_wanted_check_and_flat_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from nlptune.errors import ConfigError
    from nlptune.training import trackers

    assert trackers.wanted(TrainerConfig()) == ["tensorboard"]
    assert trackers.wanted(TrainerConfig(tensorboard=False)) == []
    assert trackers.wanted(TrainerConfig(report_to=[])) == []
    both = TrainerConfig(report_to=["mlflow", "tensorboard", "mlflow"], tensorboard=False)
    assert trackers.wanted(both) == ["mlflow"]
    with pytest.raises(ValueError):
        TrainerConfig(report_to=["neptune"])
    import accelerate.utils

    monkeypatch.setattr(accelerate.utils, "is_wandb_available", lambda: False)
    with pytest.raises(ConfigError, match=r"wandb is not installed; pip install wandb"):
        trackers.check(TrainerConfig(report_to=["wandb"]))
    flat = trackers.flat_config(
        {"trainer": {"lr": 5e-5, "report_to": ["mlflow"], "max_steps": None}, "seed": 1}
    )
    assert flat == {
        "trainer.lr": 5e-5,
        "trainer.report_to": "['mlflow']",
        "trainer.max_steps": "null",
        "seed": 1,
    }


# --- the model card ----------------------------------------------------------------------------


def _front(text: str) -> dict:
    assert text.startswith("---\n")
    end = text.index("\n---\n", 4)
    return yaml.safe_load(text[4:end])


def test_card_for_a_hub_model_and_for_a_local_one(tmp_path: Path) -> None:
    from nlptune.backbones.base import Export
    from nlptune.card import write_card

    config = {
        "task": {"type": "sequence_labelling"},
        "backbone": {"type": "hf_encoder", "path": "bert-base-cased"},
        "strategy": {"type": "full"},
        "output_dir": "runs/conll-bert",
    }
    metrics = {
        "steps": 10,
        "epochs_done": 0.5,
        "best_step": 10,
        "dev": {"f1": 0.8, "words_scored": 234, "flag": True},
    }
    meta = {"data": {"dev": {"path": "/d/dev.txt", "sha256": "abc123"}}, "seed": 3}
    card = tmp_path / "README.md"
    export = Export("token_classification", ("O", "B-PER", "I-PER"), extra="crf")
    write_card(card, config, export, {"labels": ["O", "B-PER", "I-PER"]}, metrics, meta)
    text = card.read_text()
    front = _front(text)
    assert front["base_model"] == "bert-base-cased"
    assert front["pipeline_tag"] == "token-classification"
    assert front["tags"] == ["nlptune", "sequence_labelling"]
    assert front["library_name"] == "transformers"
    (result,) = front["model-index"][0]["results"]
    assert front["model-index"][0]["name"] == "conll-bert"
    assert result["dataset"] == {"name": "dev.txt", "type": "custom", "split": "dev"}
    shown = {m["type"]: m["value"] for m in result["metrics"]}
    assert shown == {"f1": 0.8, "words_scored": 234}  # numbers only, no booleans
    assert "`abc123`" in text and "3 labels: `O`, `B-PER`, `I-PER`" in text
    assert "crf.safetensors" in text and "AutoModelForTokenClassification" in text
    # a local folder (or random weights) is no base_model
    local = {**config, "backbone": {"type": "hf_encoder", "path": str(tmp_path)}}
    write_card(card, local, Export("sequence_classification", ("a", "b")), {}, {}, {})
    front = _front(card.read_text())
    assert "base_model" not in front and "model-index" not in front
    assert front["pipeline_tag"] == "text-classification"
    random = {**config, "backbone": {"path": "bert-base-cased", "init": "random"}}
    write_card(card, random, Export("sequence_classification"), {}, {}, {})
    assert "base_model" not in _front(card.read_text())
    assert "randomly initialised" in card.read_text()
