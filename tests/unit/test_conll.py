from __future__ import annotations

from pathlib import Path

import pytest

from nlptune.data.conll import from_bioes, read_conll, read_conllu, to_bioes, to_iob2
from nlptune.errors import DataError

from ..conftest import FIXTURES


def test_schemes_convert_to_iob2_and_back() -> None:
    iob1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]
    iob2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG"]
    assert to_iob2(iob1, "iob1", [""] * 6) == iob2
    assert to_bioes(iob2) == ["B-PER", "E-PER", "O", "S-LOC", "S-LOC", "S-ORG"]
    assert from_bioes(to_bioes(iob2)) == iob2


def test_invalid_iob2_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.conll"
    path.write_text("-DOCSTART- O\n\nEU B-ORG\nrejects O\nGerman I-MISC\n")
    with pytest.raises(DataError, match=r"bad.conll:5: I-MISC follows O.*iob1"):
        read_conll(str(path))
    assert read_conll(str(path), scheme="iob1")[0].tags == ("B-ORG", "O", "B-MISC")


def test_conll_columns_docstart_and_sentences() -> None:
    sents = read_conll(str(FIXTURES / "ner_train.conll"), token_column=0, tag_column=3)
    assert len(sents) == 120 and sents[0].where.endswith("ner_train.conll:3")
    assert all(len(s.words) == len(s.tags or ()) for s in sents)


def test_conllu_skips_ranges_and_empty_nodes() -> None:
    sents = read_conllu(str(FIXTURES / "pos_train.conllu"))
    assert "ghost" not in sents[0].words and not any("waswas" in s.words for s in sents)
    assert len(sents[0].words) == len(sents[0].tags or ())
    assert read_conllu(str(FIXTURES / "pos_train.conllu"), "xpos")[0].tags[0] == "XX"
