"""Config files are read strictly: a key given twice, bytes that are not UTF-8 and repeated
labels are one error line each, never a silent choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlptune.config import load_config
from nlptune.errors import ConfigError


def test_a_key_given_twice_is_an_error_with_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "task:\n  type: text_classification\ntrainer:\n  lr: 1\ntrainer:\n  epochs: 1\n"
    )
    with pytest.raises(ConfigError, match=r"c\.yaml:5: .*key 'trainer' is given twice \(lines 3"):
        load_config(path)
    path.write_text("task:\n  type: text_classification\n  type: sentence_pair\n")
    with pytest.raises(ConfigError, match="key 'type' is given twice"):
        load_config(path)


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"task:\n  type: text_cl\xe9ssification\n", 2),  # Latin-1
        (b"task:\n  type: a\x9f\x80\n", 2),
    ],
)
def test_bytes_that_are_not_utf8_name_the_line(tmp_path: Path, data: bytes, line: int) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=rf"c\.yaml:{line}: not UTF-8 text .*save the file as"):
        load_config(path)


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ("task:\n  type: sentence_pair\n".encode("utf-16"), "UTF-16 text .*iconv -f UTF-16"),
        ("task:\n  type: sentence_pair\n".encode("utf-32-le"), "UTF-32LE text .*iconv"),
        (b"task:\n  type: a\x00b\n", "holds NUL bytes"),
    ],
)
def test_wide_encodings_and_nul_bytes_are_named(tmp_path: Path, data: bytes, said: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=said) as info:
        load_config(path)
    assert "Latin-1" not in str(info.value)


def test_bad_yaml_is_one_line_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("task:\n  type: [a\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "\n" not in str(info.value) and "not valid YAML" in str(info.value)


def test_repeated_labels_are_refused() -> None:
    with pytest.raises(ConfigError, match="task.labels names pos more than once"):
        load_config({"task": {"type": "text_classification", "labels": ["pos", "neg", "pos"]}})
