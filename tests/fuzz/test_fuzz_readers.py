"""Property-based fuzzing of every reader and the config loader.

Each case takes a real fixture and damages it the ways real files get damaged: random bytes,
byte edits, truncation, another encoding, JSON fields of random types, a YAML config of random
values. The property: nlptune reads it and returns examples, or it raises an
:class:`~nlptune.errors.NlptuneError` (one ``error:`` line for the user); never another exception
and never a hang (hypothesis' deadline).

``NLPTUNE_FUZZ_EXAMPLES`` sets the examples tried per case (default 100 in the suite, derandomized
so that CI is reproducible); a long run, for example ``NLPTUNE_FUZZ_EXAMPLES=2000``, draws fresh
random inputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlptune.errors import NlptuneError

from ..conftest import FIXTURES, tiny_config

EXAMPLES = int(os.environ.get("NLPTUNE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=5000,  # ms: a reader that hangs fails, a slow first call does not
    derandomize="NLPTUNE_FUZZ_EXAMPLES" not in os.environ,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ENCODINGS = ["utf-16", "utf-16-be", "utf-32", "utf-8-sig", "latin-1", "cp1252", "utf-7"]

# task config, data settings, the fixture file (or folder) that is damaged, its file name
CASES: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "tsv": ({}, {"text": "sentence", "label": "label"}, "sentiment_dev.tsv"),
    "csv": ({}, {"text": "sentence", "label": "label"}, "sentiment_dev.csv"),
    "pairs": (
        {"type": "sentence_pair"},
        {"text": "sentence1", "text_pair": "sentence2", "label": "label"},
        "pairs_dev.tsv",
    ),
    "regression": (
        {"type": "sentence_pair", "problem": "regression"},
        {"text": "sentence1", "text_pair": "sentence2", "label": "score"},
        "pairs_dev.tsv",
    ),
    "jsonl_multilabel": ({}, {"text": "text", "label": "labels"}, "multilabel_dev.jsonl"),
    "conll": ({"type": "sequence_labelling"}, {"tag_column": 3}, "ner_dev.conll"),
    "conllu": ({"type": "sequence_labelling"}, {}, "pos_dev.conllu"),
    "streusle": ({"type": "word_sense"}, {}, "streusle_dev.conllulex"),
    "semeval": ({"type": "word_sense"}, {}, "semeval/semeval-with.xml"),
    "squad_v1": ({"type": "extractive_qa"}, {}, "squad_v1_dev.json"),
    "squad_v2": ({"type": "extractive_qa"}, {}, "squad_v2_dev.json"),
    "text": ({"type": "masked_lm"}, {}, "corpus/dev.txt"),
}


def _fixture_bytes(name: str) -> bytes:
    if name == "sentiment_dev.csv":  # the TSV fixture as CSV, with quotes
        rows = (FIXTURES / "sentiment_dev.tsv").read_text(encoding="utf-8").splitlines()
        return "".join(",".join(f'"{c}"' for c in r.split("\t")) + "\n" for r in rows).encode()
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="module")
def reader(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``read(case, data)``: write ``data`` as the case's training file and read it as a run would
    (task.read, fit the label set, encode the labels), returning the examples."""
    from nlptune.build import parts, read_splits
    from nlptune.config import validate

    folder = tmp_path_factory.mktemp("fuzz")
    configs: dict[str, Any] = {}

    def read(case: str, data: bytes) -> list[Any]:
        task_cfg, data_cfg, name = CASES[case]
        path = folder / Path(name).name
        path.write_bytes(data)
        if case not in configs:
            raw = tiny_config(tiny_bert, folder / "run", task=task_cfg)
            raw["data"] = {"train": str(path), **data_cfg}
            if task_cfg.get("type") == "extractive_qa":
                raw["task"]["doc_stride"] = 8
            configs[case] = validate(raw)
        config = configs[case]
        task = parts(config).task
        return read_splits(config, task)["train"].examples

    return read


def _clean(call: Callable[[], Any]) -> Any:
    """Run ``call``: a result or an NlptuneError pass, any other exception fails the test."""
    try:
        return call()
    except NlptuneError as err:
        message = str(err)
        assert message and "\n" not in message.strip() or len(message) < 2000, message
        return err


@st.composite
def edited(draw: st.DrawFn, original: bytes) -> bytes:
    """``original`` after a few random byte edits: replace, delete, insert, truncate."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["replace", "delete", "insert", "truncate", "nul", "newline"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "replace" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "truncate":
            del data[at:]
        elif op == "nul":
            data[at:at] = b"\x00"
        else:
            data[at:at] = draw(st.sampled_from([b"\n", b"\r", b"\r\n", b"\t", b'"', b"\xff"]))
    return bytes(data)


def _reencoded(original: bytes, encoding: str) -> bytes:
    return original.decode("utf-8").encode(encoding, errors="replace")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def retyped_json(draw: st.DrawFn, value: Any) -> Any:
    """``value`` (parsed JSON) with one field, picked at random along a path, replaced by a random
    JSON value."""

    def walk(node: Any, depth: int) -> Any:
        if isinstance(node, dict) and node and depth < 8:
            key = draw(st.sampled_from(sorted(node)))
            if draw(st.booleans()):
                return {**node, key: draw(json_values)}
            return {**node, key: walk(node[key], depth + 1)}
        if isinstance(node, list) and node and depth < 8:
            i = draw(st.integers(0, len(node) - 1))
            copy = list(node)
            copy[i] = draw(json_values) if draw(st.booleans()) else walk(node[i], depth + 1)
            return copy
        return draw(json_values)

    return walk(value, 0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_random_bytes(case: str, reader: Any) -> None:
    @FUZZ
    @given(data=st.binary(max_size=512))
    def run(data: bytes) -> None:
        _clean(lambda: reader(case, data))

    run()


@pytest.mark.parametrize("case", sorted(CASES))
def test_edited_bytes(case: str, reader: Any) -> None:
    original = _fixture_bytes(CASES[case][2])
    assert not isinstance(_clean(lambda: reader(case, original)), NlptuneError)  # intact: reads

    @FUZZ
    @given(data=edited(original))
    def run(data: bytes) -> None:
        _clean(lambda: reader(case, data))

    run()


@pytest.mark.parametrize("case", sorted(CASES))
def test_other_encodings(case: str, reader: Any) -> None:
    original = _fixture_bytes(CASES[case][2])
    expected = reader(case, original)

    @FUZZ
    @given(encoding=st.sampled_from(ENCODINGS), cut=st.integers(0, 64))
    def run(encoding: str, cut: int) -> None:
        data = _reencoded(original, encoding)
        result = _clean(lambda: reader(case, data[: len(data) - cut]))
        wide = encoding.startswith(("utf-16", "utf-32"))
        if wide and cut == 0 and not isinstance(result, NlptuneError):
            # read as what it says (XML declares its encoding), or refused: never garbage
            assert result == expected, f"{encoding} data was read as {result[:2]!r}"

    run()


@pytest.mark.parametrize(
    ("case", "lines"),
    [("jsonl_multilabel", True), ("squad_v1", False), ("squad_v2", False)],
)
def test_json_fields_of_random_types(case: str, lines: bool, reader: Any) -> None:
    text = _fixture_bytes(CASES[case][2]).decode("utf-8")
    value: Any = [json.loads(x) for x in text.splitlines()] if lines else json.loads(text)

    @FUZZ
    @given(data=retyped_json(value))
    def run(data: Any) -> None:
        if lines:
            body = "".join(json.dumps(row) + "\n" for row in data) if isinstance(data, list) else ""
            raw = body or json.dumps(data) + "\n"
        else:
            raw = json.dumps(data)
        _clean(lambda: reader(case, raw.encode("utf-8")))

    run()


# ---- predict inputs: one input a line, JSON Lines records, CoNLL text


@pytest.fixture(scope="module")
def predictor(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    import nlptune

    out = tmp_path_factory.mktemp("fuzz_run") / "run"
    nlptune.train(tiny_config(tiny_bert, out, trainer={"max_steps": 2}))
    return nlptune.Predictor.from_dir(out)


@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".tsv"])
def test_predict_inputs(
    suffix: str, predictor: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from nlptune.inputs import records

    folder = tmp_path_factory.mktemp("fuzz_predict")
    sentences = ["a charming story", "really tedious script", "quite funny"]
    original = {
        ".txt": "".join(s + "\n" for s in sentences),
        ".jsonl": "".join(json.dumps({"text": s, "id": i}) + "\n" for i, s in enumerate(sentences)),
        ".tsv": "sentence\n" + "".join(s + "\n" for s in sentences),
    }[suffix].encode()

    @FUZZ
    @given(data=st.one_of(st.binary(max_size=256), edited(original)))
    def run(data: bytes) -> None:
        path = folder / f"input{suffix}"
        path.write_bytes(data)

        def read_and_predict() -> Any:
            items = list(records(predictor.task, str(path)))
            good = [r.item for r in items if getattr(r, "error", None) is None]
            return predictor.predict(good[:4]) if good else []

        _clean(read_and_predict)

    run()


# ---- the config loader


config_values = json_values | st.sampled_from(["", "null", "~", "1e999", "nan", "-1", "[a]"])
CONFIG_KEYS = [
    "seed",
    "output_dir",
    "task.type",
    "task.metric",
    "task.labels",
    "data.train",
    "data.text",
    "data.label",
    "data.format",
    "data.dev_fraction",
    "backbone.path",
    "backbone.max_length",
    "backbone.init",
    "strategy.type",
    "strategy.k",
    "trainer.lr",
    "trainer.epochs",
    "trainer.batch_size",
    "trainer.grad_accum",
    "trainer.precision",
    "trainer.eval_every",
    "trainer.warmup",
]


def test_config_values_of_random_types(tiny_bert: Path, tmp_path: Path) -> None:
    from nlptune.config import validate

    base = tiny_config(tiny_bert, tmp_path / "run")

    @FUZZ
    @given(changes=st.dictionaries(st.sampled_from(CONFIG_KEYS), config_values, max_size=3))
    def run(changes: dict[str, Any]) -> None:
        raw = json.loads(json.dumps(base))
        for key, value in changes.items():
            section, _, name = key.rpartition(".")
            target = raw.setdefault(section, {}) if section else raw
            if isinstance(target, dict):
                target[name] = value
        _clean(lambda: validate(raw))

    run()


def test_config_overrides(tiny_bert: Path, tmp_path: Path) -> None:
    from nlptune.config import load_config

    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(tiny_config(tiny_bert, tmp_path / "run")), encoding="utf-8")

    @FUZZ
    @given(items=st.lists(st.text(max_size=24), max_size=3))
    def run(items: list[str]) -> None:
        _clean(lambda: load_config(base, items))

    run()


def test_config_files(tiny_bert: Path, tmp_path: Path) -> None:
    from nlptune.config import load_config

    original = yaml.safe_dump(tiny_config(tiny_bert, tmp_path / "run")).encode()
    path = tmp_path / "config.yaml"
    assert not isinstance(
        _clean(lambda: (path.write_bytes(original), load_config(path))), Exception
    )

    @FUZZ
    @given(
        data=st.one_of(
            st.binary(max_size=256),
            edited(original),
            st.sampled_from(ENCODINGS).map(lambda e: _reencoded(original, e)),
        )
    )
    def run(data: bytes) -> None:
        path.write_bytes(data)
        _clean(lambda: load_config(path))

    run()


def test_the_cases_cover_every_file_format() -> None:
    """A new ``data.format`` gets a case here (``hf`` datasets are read by ``datasets``)."""
    from typing import get_args

    from nlptune.config import DataConfig

    formats = set(get_args(DataConfig.model_fields["format"].annotation)) - {"auto", "hf"}
    covered = {c.split("_")[0] for c in CASES}
    assert formats <= covered, f"no fuzz case for data.format {sorted(formats - covered)}"
