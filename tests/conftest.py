"""Shared fixtures: a tiny random BERT built from a config (offline), small data files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


def bert_tokenizer(vocab_file: Path, **kwargs: Any) -> Any:
    """A WordPiece ``BertTokenizer`` over a ``vocab.txt`` (one token a line, id = line number).

    The vocabulary goes in as a file path, the one form every supported transformers version
    takes: 4.x's (slow) ``BertTokenizer`` wants ``vocab_file``, 5.x's wants ``vocab`` (a path or a
    dict; the dict form does not exist in 4.x). Both take it as the first argument."""
    from transformers import BertTokenizer

    return BertTokenizer(str(vocab_file), **kwargs)


def build_tiny_bert(folder: Path, dropout: float = 0.1) -> Path:
    """A 2-layer BERT (hidden 32, 4 heads) with a WordPiece tokenizer over the fixture vocab."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    vocab = FIXTURES / "tiny_vocab.txt"
    words = vocab.read_text().split()
    tokenizer = bert_tokenizer(vocab, do_lower_case=True)
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        pad_token_id=0,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_bert_no_dropout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert_nodrop"), dropout=0.0)


@pytest.fixture(autouse=True)
def _feature_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NLPTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "nlptune_cache"))


def tiny_config(model: Path, out: Path, **sections: Any) -> dict[str, Any]:
    """A run config for the sentiment fixture on ``model``; ``sections`` update it."""
    config: dict[str, Any] = {
        "task": {"type": "text_classification"},
        "data": {
            "train": str(FIXTURES / "sentiment_train.tsv"),
            "dev": str(FIXTURES / "sentiment_dev.tsv"),
            "text": "sentence",
            "label": "label",
        },
        "backbone": {"path": str(model), "max_length": 32},
        # a random model's word embeddings must train (the default freezes them)
        "strategy": {"type": "full", "freeze_embeddings": False},
        "trainer": {
            "epochs": 10,
            "min_steps": 0,  # the fixtures are tiny: exactly the epochs asked for
            "batch_size": 8,
            "lr": 1e-3,
            "progress": False,
            "tensorboard": False,
            "precision": "fp32",
            "num_threads": 1,
        },
        "seed": 1,
        "output_dir": str(out),
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            config.setdefault(name, {}).update(values)
        else:
            config[name] = values
    return config


def write_toy_plugin(root: Path) -> Path:
    """The worked examples of docs/extending.md as an installed plugin: the code blocks that start
    with ``# nlptune_toy/...`` become the package ``nlptune_toy`` under ``root``, registered
    through a ``.dist-info`` with real entry points. Returns ``root`` (put it on sys.path)."""
    import re

    doc = (REPO / "docs" / "extending.md").read_text(encoding="utf-8")
    package = root / "nlptune_toy"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""docs/extending.md, as a package."""\n')
    for block in re.findall(r"```python\n(.*?)```", doc, flags=re.S):
        first = block.splitlines()[0]
        if first.startswith("# nlptune_toy/"):
            (root / first[2:].strip()).write_text(block, encoding="utf-8")
    info = root / "nlptune_toy-0.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nlptune-toy\nVersion: 0.0\n")
    entry = re.search(r"```toml\n(.*?)```", doc, flags=re.S)
    assert entry is not None, "docs/extending.md lost its entry-point example"
    lines = [x for x in entry.group(1).splitlines() if not x.startswith("#")]
    (info / "entry_points.txt").write_text(
        "\n".join(x.replace("project.entry-points.", "").replace('"', "") for x in lines) + "\n"
    )
    return root


@pytest.fixture(scope="session")
def toy_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/extending.md's toy backbone, task and strategy, registered through entry points."""
    import sys

    from nlptune.registry import BACKBONES, STRATEGIES, TASKS

    root = write_toy_plugin(tmp_path_factory.mktemp("plugin"))
    sys.path.insert(0, str(root))
    for registry in (TASKS, BACKBONES, STRATEGIES):
        registry.refresh()
    return root


def toy_vocab(folder: Path) -> Path:
    """A vocabulary file for the toy backbone: every word of the fixtures."""
    words: set[str] = set()
    for name in ("sentiment_train.tsv", "ner_train.conll", "pairs_train.tsv"):
        for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines():
            words.update(w.lower() for w in line.replace("\t", " ").split())
    path = folder / "vocab.txt"
    path.write_text("\n".join(sorted(words)) + "\n", encoding="utf-8")
    return path


TRANSLATE = FIXTURES / "translate"


def _word_tokenizer(specials: list[str], template: str, **tokens: str) -> Any:
    """A whitespace word-level fast tokenizer trained on the translation fixture (both sides)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    unk = tokens["unk_token"]
    tok = Tokenizer(models.WordLevel(unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train(
        [str(TRANSLATE / "train.en"), str(TRANSLATE / "train.de")],
        trainers.WordLevelTrainer(special_tokens=specials),
    )
    ids = {t: tok.token_to_id(t) for t in specials}
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(t, ids[t]) for t in specials if t in template]
    )
    # T5's and BART's own tokenizers give no token_type_ids (transformers 4.x's default would
    # add them, and generate() refuses an input the model does not take)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_input_names=["input_ids", "attention_mask"], **tokens
    )


def build_tiny_t5(folder: Path) -> Path:
    """A 2+2-layer T5 (d_model 64) with a word-level tokenizer over the translation fixture."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    tokenizer = _word_tokenizer(
        ["<pad>", "</s>", "<unk>"],
        "$A </s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_tiny_bart(folder: Path) -> Path:
    """A 2+2-layer BART (d_model 64) with a word-level tokenizer over the translation fixture."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    torch.manual_seed(0)
    tokenizer = _word_tokenizer(
        ["<s>", "<pad>", "</s>", "<unk>"],
        "<s> $A </s>",
        bos_token="<s>",
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=64,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_position_embeddings=64,
        dropout=0.0,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_eos_token_id=2,
    )
    BartForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_translate_bert(folder: Path) -> Path:
    """A 2-layer BERT whose WordPiece vocabulary covers the translation fixture (lower case,
    accents kept), to warm-start a bert2bert model from."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    words = sorted(
        {w for name in ("train.en", "train.de") for w in (TRANSLATE / name).read_text().split()}
    )
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    with tempfile.TemporaryDirectory() as tmp:
        (vocab_file := Path(tmp) / "vocab.txt").write_text("\n".join(vocab) + "\n", "utf-8")
        tokenizer = bert_tokenizer(vocab_file, do_lower_case=True, strip_accents=False)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=0,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))


@pytest.fixture(scope="session")
def tiny_bart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bart(tmp_path_factory.mktemp("tiny_bart"))


@pytest.fixture(scope="session")
def translate_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_translate_bert(tmp_path_factory.mktemp("translate_bert"))


def translate_config(model: Path, out: Path, **sections: Any) -> dict[str, Any]:
    """A text_to_text run on the 20-pair en->de fixture (dev: its first 5 pairs)."""
    config = tiny_config(
        model,
        out,
        task={"type": "text_to_text", "max_target_length": 24},
        data={
            "train": str(TRANSLATE / "train"),
            "dev": str(TRANSLATE / "dev"),
            "source_lang": "en",
            "target_lang": "de",
        },
        backbone={"type": "hf_seq2seq", "path": str(model), "max_length": 32},
        trainer={"epochs": 100, "batch_size": 10, "lr": 3e-3, "eval_every": 100},
    )
    config["data"].pop("text")
    config["data"].pop("label")
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    return config


VECTOR_DIM = 8


def fixture_words() -> list[str]:
    """Every word of the fixtures as the static-vectors tokenizer splits it, lower-cased."""
    from nlptune.backbones.word_text import split_words

    words: set[str] = set()
    for name in ("sentiment_train.tsv", "ner_train.conll", "pairs_train.tsv"):
        words.update(w.lower() for w in split_words((FIXTURES / name).read_text("utf-8")))
    return sorted(words)


def vector_table() -> dict[str, Any]:
    """The tiny vectors every format fixture holds: every other fixture word (the rest are
    out of vocabulary), lower-case only (training words in upper case need the case fallback),
    and two words with a space or odd characters that readers must keep whole."""
    import numpy as np

    words = fixture_words()[::2] + ["new york", "naïve"]
    rng = np.random.default_rng(0)
    return {w: rng.normal(size=VECTOR_DIM).astype("float32").round(4) for w in words}


def write_vectors(folder: Path, fmt: str, table: dict[str, Any] | None = None) -> Path:
    """``table`` (default :func:`vector_table`) written as ``fmt``: glove, glove_gz,
    word2vec_text, fasttext_vec, word2vec_bin, array_parquet, array_txt, spacy."""
    import gzip
    import json

    import numpy as np

    table = table or vector_table()
    folder.mkdir(parents=True, exist_ok=True)
    words, matrix = list(table), np.stack(list(table.values()))
    lines = [f"{w} {' '.join(f'{x:.4f}' for x in v)}\n" for w, v in table.items()]
    header = f"{len(words)} {VECTOR_DIM}\n"
    if fmt == "glove":
        (path := folder / "glove.txt").write_text("".join(lines), "utf-8")
    elif fmt == "glove_gz":
        with gzip.open(path := folder / "glove.txt.gz", "wt", encoding="utf-8") as f:
            f.write("".join(lines))
    elif fmt in ("word2vec_text", "fasttext_vec"):
        path = folder / ("w2v.txt" if fmt == "word2vec_text" else "vectors.vec")
        path.write_text(header + "".join(x for x in lines if " york" not in x), "utf-8")
    elif fmt == "word2vec_bin":
        path = folder / "w2v.bin"
        with open(path, "wb") as f:
            f.write(f"{len(words) - 1} {VECTOR_DIM}\n".encode())
            for w, v in table.items():
                if w != "new york":
                    f.write(w.encode() + b" " + v.astype("<f4").tobytes() + b"\n")
    elif fmt in ("array_parquet", "array_txt"):
        path = folder / fmt
        path.mkdir(exist_ok=True)
        np.save(path / "emb.npy", matrix)
        if fmt == "array_txt":
            (path / "words.txt").write_text("\n".join(words) + "\n", "utf-8")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({"index": words}), path / "index.parquet")
    elif fmt == "spacy":
        import msgpack

        from nlptune.data.vectors import spacy_hash

        path = folder / "spacy_vocab"
        path.mkdir(exist_ok=True)
        with open(path / "vectors", "wb") as f:
            np.save(f, matrix)
        key2row = {spacy_hash(w): i for i, w in enumerate(words)}
        (path / "key2row").write_bytes(msgpack.packb(key2row))
        (path / "strings.json").write_text(json.dumps(words), "utf-8")
        (path / "vectors.cfg").write_text('{"mode": "default"}', "utf-8")
    else:
        raise ValueError(fmt)
    return path


def write_fasttext_bin(folder: Path) -> Path:
    """A tiny fastText model (subword n-grams) trained by gensim on the fixture sentences."""
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    from nlptune.backbones.word_text import split_words

    sentences = [
        [w.lower() for w in split_words(line)]
        for name in ("sentiment_train.tsv", "ner_train.conll")
        for line in (FIXTURES / name).read_text("utf-8").splitlines()
    ]
    model = FastText(vector_size=VECTOR_DIM, min_count=1, epochs=1, seed=1, workers=1, bucket=500)
    model.build_vocab([s for s in sentences if s])
    model.train([s for s in sentences if s], total_examples=len(sentences), epochs=1)
    path = folder / "model.bin"
    save_facebook_model(model, str(path))
    return path


@pytest.fixture(scope="session")
def glove_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny GloVe-format vectors over half of the fixture words."""
    return write_vectors(tmp_path_factory.mktemp("glove"), "glove")


def static_config(vectors: Path | None, out: Path, **sections: Any) -> dict[str, Any]:
    """:func:`tiny_config` on static vectors (a small BiLSTM, every training word kept)."""
    config = tiny_config(Path("."), out, **{k: v for k, v in sections.items() if k != "backbone"})
    config["backbone"] = {
        "type": "static_vectors",
        "path": str(vectors) if vectors else None,
        "hidden": 16,
        "min_count": 1,
        "dropout": 0.1,
        **sections.get("backbone", {}),
    }
    config["strategy"] = {"type": "full", **sections.get("strategy", {})}
    config["trainer"].update({"lr": 1e-2, **sections.get("trainer", {})})
    return config


class Stop(Exception):
    """What :func:`stopped_then_resumed`'s callback raises: a crash at a chosen step."""


def stopped_then_resumed(config: dict[str, Any], step: int) -> Any:
    """Train ``config`` until optimizer step ``step`` ends (then stop, as a crash would), then
    train it again with ``resume=True``; the resumed run's result."""
    import nlptune

    def stop(state: Any) -> None:
        if state.step == step:
            raise Stop

    with pytest.raises(Stop):
        nlptune.train(config, callbacks=[stop])
    return nlptune.train(config, resume=True)


def ner_data() -> dict[str, Any]:
    """``data`` of a NER run on the CoNLL fixtures (IOB2 tags in column 3)."""
    return {
        "train": str(FIXTURES / "ner_train.conll"),
        "dev": str(FIXTURES / "ner_dev.conll"),
        "tag_column": 3,
    }


def one_error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI on ``argv``: exit code 2, no traceback, one ``error:`` line (returned)."""
    from nlptune import cli

    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]
