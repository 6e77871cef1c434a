"""Shared fixtures: a tiny random BERT built from a config (offline), small data files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]


def build_tiny_bert(folder: Path, dropout: float = 0.1) -> Path:
    """A 2-layer BERT (hidden 32, 4 heads) with a WordPiece tokenizer over the fixture vocab."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(0)
    vocab = FIXTURES / "tiny_vocab.txt"
    words = vocab.read_text().split()
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)
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
