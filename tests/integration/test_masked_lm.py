"""Continued pre-training on a tiny BERT: perplexity falls, the run is a standard masked-LM
model (fill-mask, a backbone for other tasks), next-sentence prediction, exact resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import nlptune
from nlptune.errors import ConfigError, DataError, ModelError, NlptuneError

from ..conftest import FIXTURES, tiny_config

CORPUS = {
    "train": str(FIXTURES / "corpus" / "train.txt"),
    "dev": str(FIXTURES / "corpus" / "dev.txt"),
}


def mlm_config(model: Path, out: Path, **sections: Any) -> dict[str, Any]:
    task = {"type": "masked_lm", **sections.pop("task", {})}
    trainer = {"epochs": 6, "lr": 3e-3, "eval_every": 10, **sections.pop("trainer", {})}
    config = tiny_config(model, out, task=task, trainer=trainer, **sections)
    config["data"] = {**CORPUS, **sections.get("data", {})}
    return config


def _evals(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    return [r for r in rows if r["event"] == "eval"]


@pytest.fixture(scope="module")
def mlm_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mlm") / "run"
    nlptune.train(mlm_config(tiny_bert, out))
    return out


def test_perplexity_falls_and_the_run_reloads(
    mlm_run: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    untrained = nlptune.train(
        mlm_config(tiny_bert, tmp_path / "untrained", trainer={"max_steps": 1, "lr": 1e-12})
    ).metrics["dev"]["perplexity"]
    assert untrained > 50  # about the vocabulary's size (62): nothing learnt
    evals = [r["perplexity"] for r in _evals(mlm_run)]
    assert len(evals) >= 3 and evals[-1] < evals[0]
    assert min(evals) < 0.5 * untrained
    metrics = json.loads((mlm_run / "metrics.json").read_text())["dev"]
    assert set(metrics) == {"perplexity", "loss", "masked_tokens"}
    assert isinstance(metrics["masked_tokens"], int) and metrics["masked_tokens"] > 20
    predictor = nlptune.Predictor.from_dir(mlm_run)
    assert predictor.evaluate(CORPUS["dev"]) == pytest.approx(metrics, abs=1e-6)


def test_the_run_is_a_standard_fill_mask_model(mlm_run: Path) -> None:
    from transformers import AutoModelForMaskedLM, pipeline

    model = AutoModelForMaskedLM.from_pretrained(mlm_run / "model")
    assert type(model).__name__ == "BertForMaskedLM"
    texts = ["the film was very [MASK] .", "the [MASK] was [MASK] but the cast was bad ."]
    ours = nlptune.Predictor.from_dir(mlm_run).predict(texts)
    fill = pipeline("fill-mask", model=str(mlm_run / "model"), top_k=5)
    theirs = fill(texts[0])
    assert [m["token_str"] for m in ours[0]["masks"][0]] == [t["token_str"] for t in theirs]
    assert [m["score"] for m in ours[0]["masks"][0]] == pytest.approx(
        [t["score"] for t in theirs], abs=1e-4
    )
    assert ours[0]["sequence"] == theirs[0]["sequence"]
    both = fill(texts[1])  # two masks: one list per mask
    assert [[t["token"] for t in m] for m in both] == [
        [t["token"] for t in m] for m in ours[1]["masks"]
    ]
    assert nlptune.Predictor.from_dir(mlm_run).predict(["<mask> film"])[0]["masks"]  # either form
    assert nlptune.Predictor.from_dir(mlm_run).predict(["no masks"])[0]["masks"] == []


def test_the_run_is_a_backbone_for_any_task(mlm_run: Path, tmp_path: Path) -> None:
    """Adapt -> fine-tune: a classification run starts from the masked-LM run's weights."""
    out = tmp_path / "cls"
    config = tiny_config(mlm_run / "model", out, trainer={"max_steps": 4})
    result = nlptune.train(config)
    assert result.metrics["steps"] == 4
    adapted = load_file(str(mlm_run / "model" / "model.safetensors"))
    # the first step moves weights only a little: the start was the adapted model, not random
    tuned = load_file(str(out / "model" / "model.safetensors"))
    key = "bert.encoder.layer.0.attention.self.query.weight"
    assert (tuned[key] - adapted[key]).abs().max() < 0.05
    assert "bert.pooler.dense.weight" in adapted  # the pooler survives pre-training


def test_next_sentence_prediction(tiny_bert: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForPreTraining

    out = tmp_path / "nsp"
    result = nlptune.train(mlm_config(tiny_bert, out, task={"objectives": ["mlm", "nsp"]}))
    dev = result.metrics["dev"]
    assert 0.0 <= dev["nsp_accuracy"] <= 1.0 and dev["perplexity"] > 1.0
    logged = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert any("loss_mlm" in r and "loss_nsp" in r for r in logged)  # both heads' losses logged
    model = AutoModelForPreTraining.from_pretrained(out / "model")
    assert type(model).__name__ == "BertForPreTraining"
    assert nlptune.Predictor.from_dir(out).evaluate(CORPUS["dev"]) == pytest.approx(dev, abs=1e-6)


def test_resume_is_exact_with_dynamic_masks(tiny_bert: Path, tmp_path: Path) -> None:
    trainer = {"epochs": 3, "save_every": 5, "eval_every": 12}
    whole = nlptune.train(mlm_config(tiny_bert, tmp_path / "whole", trainer=trainer))

    class Stop(Exception):
        pass

    def stop(state: Any) -> None:
        if state.step == 11:  # past an epoch end: the masks of epoch 2 must be redrawn the same
            raise Stop

    cut = mlm_config(tiny_bert, tmp_path / "cut", trainer=trainer)
    with pytest.raises(Stop):
        nlptune.train(cut, callbacks=[stop])
    resumed = nlptune.train(cut, resume=True)
    a = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.metrics["dev"] == whole.metrics["dev"]


def test_whole_word_masking_and_table_input(tiny_bert: Path, tmp_path: Path) -> None:
    data = {
        "train": str(FIXTURES / "sentiment_train.tsv"),
        "dev": None,
        "dev_fraction": 0.2,
        "text": "sentence",
    }
    config = mlm_config(
        tiny_bert, tmp_path / "run", task={"whole_word": True}, trainer={"max_steps": 3}
    )
    config["data"] = data
    result = nlptune.train(config)
    assert result.metrics["dev"]["masked_tokens"] > 0


def test_refusals(tiny_bert: Path, tmp_path: Path) -> None:
    base = mlm_config(tiny_bert, tmp_path / "x")
    with pytest.raises(ConfigError, match="frozen makes no sense for masked_lm.*full or last_k"):
        nlptune.validate({**base, "strategy": {"type": "frozen"}})
    with pytest.raises(ConfigError, match="must include mlm"):
        nlptune.validate({**base, "task": {"type": "masked_lm", "objectives": ["nsp"]}})
    with pytest.raises(ConfigError, match="at most 1"):
        nlptune.validate({**base, "task": {"type": "masked_lm", "mask_token_share": 0.95}})
    with pytest.raises(ConfigError, match="nsp_accuracy needs"):
        nlptune.validate({**base, "task": {"type": "masked_lm", "metric": "nsp_accuracy"}})
    # an architecture without a next-sentence head: a DistilBERT config is enough to tell
    from transformers import DistilBertConfig

    distil = tmp_path / "distil"
    DistilBertConfig(vocab_size=62, dim=32, n_layers=1, n_heads=4, hidden_dim=64).save_pretrained(
        distil
    )
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(distil)  # 4.x needs its files
    nsp = mlm_config(distil, tmp_path / "y", task={"objectives": ["mlm", "nsp"]})
    with pytest.raises(ModelError, match="distilbert models have no next-sentence head"):
        nlptune.validate(nsp)
    nlptune.validate(mlm_config(distil, tmp_path / "y"))  # masked LM alone is fine


def test_bad_input(tiny_bert: Path, tmp_path: Path) -> None:
    def check(text: bytes, match: str, name: str = "c.txt", **task: Any) -> None:
        path = tmp_path / name
        path.write_bytes(text)
        config = mlm_config(tiny_bert, tmp_path / "run", task=task)
        config["data"] = {"train": str(path), "dev": CORPUS["dev"]}
        with pytest.raises(DataError, match=match):
            nlptune.validate(config)

    check(b"\n\n  \n", "no text")
    check(b"good film\n\xff\xfe bad\n", r"c\.txt:2: not UTF-8")
    check(b"one document\nof two lines\n", "needs several documents", objectives=["mlm", "nsp"])
    check(b'{"text": 3}\n', "holds int, not text", name="c.jsonl")
    check(b"not gzip", "can't read", name="c.txt.gz")
    (tmp_path / "empty").mkdir()
    config = mlm_config(tiny_bert, tmp_path / "run")
    config["data"] = {"train": str(tmp_path / "empty"), "dev": CORPUS["dev"]}
    with pytest.raises(DataError, match="no .txt or .txt.gz files"):
        nlptune.validate(config)
    wrong = tiny_config(tiny_bert, tmp_path / "run", data={"format": "text"})
    with pytest.raises(DataError, match="format=text is not a table"):
        nlptune.validate(wrong)


@pytest.mark.parametrize("family", ["hf_encoder", "hf_seq2seq", "static_vectors"])
def test_random_init_is_the_same_architecture_with_fresh_weights(
    family: str, tiny_bert: Path, tiny_t5: Path, glove_file: Path, tmp_path: Path
) -> None:
    from nlptune import build
    from nlptune.config import load_config

    from ..conftest import static_config

    if family == "static_vectors":
        raw = static_config(glove_file, tmp_path / "r", backbone={"min_count": 1})
    elif family == "hf_seq2seq":
        from ..conftest import translate_config

        raw = translate_config(tiny_t5, tmp_path / "r")
    else:
        raw = tiny_config(tiny_bert, tmp_path / "r")

    def encoder_weights(init: str, seed: int) -> dict[str, torch.Tensor]:
        config = load_config({**raw, "backbone": {**raw["backbone"], "init": init}, "seed": seed})
        p = build.parts(config)
        splits = build.read_splits(config, p.task)
        build.text_encoder(p, splits["train"])
        torch.manual_seed(seed)
        encoder, _ = p.backbone.load()
        return {k: v.detach().clone() for k, v in encoder.state_dict().items()}

    pretrained, fresh = encoder_weights("pretrained", 1), encoder_weights("random", 1)
    assert pretrained.keys() == fresh.keys()
    assert all(pretrained[k].shape == fresh[k].shape for k in pretrained)
    # what the checkpoint holds: every weight matrix, or the word vectors of static_vectors
    # (whose network is new either way, the same under the same seed)
    big = [k for k in pretrained if pretrained[k].numel() > 100]
    if family == "static_vectors":
        big = ["embeddings.weight"]
    assert big and all(not torch.equal(pretrained[k], fresh[k]) for k in big)
    again = encoder_weights("random", 1)
    assert all(torch.equal(fresh[k], again[k]) for k in fresh)  # seeded by the run


def test_random_init_trains_and_saves(tiny_bert: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_bert, tmp_path / "run", backbone={"init": "random"})
    config["trainer"]["max_steps"] = 3
    result = nlptune.train(config)
    predictor = nlptune.Predictor.from_dir(tmp_path / "run")
    assert predictor.evaluate(config["data"]["dev"]) == pytest.approx(
        result.metrics["dev"], abs=1e-6
    )


def test_a_plugin_backbone_without_init_is_refused_random(tiny_bert: Path) -> None:
    from nlptune import build
    from nlptune.config import BackboneConfig, load_config
    from nlptune.registry import BACKBONES

    class Plain:
        Config = BackboneConfig

        def __init__(self, path: str, max_length: int = 256) -> None:
            self.path = path

    BACKBONES.register("plain_for_test")(Plain)
    try:
        raw = tiny_config(tiny_bert, Path("unused"))
        raw["backbone"] = {"type": "plain_for_test", "path": "x"}
        assert isinstance(build.parts(load_config(raw)).backbone, Plain)
        raw["backbone"]["init"] = "random"
        with pytest.raises(NlptuneError, match="can't start from random weights"):
            build.parts(load_config(raw))
    finally:
        BACKBONES._entries.pop("plain_for_test")  # type: ignore[attr-defined]


def test_log_says_the_head_is_new_and_cli_predict_fills_masks(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: Any
) -> None:
    from nlptune import cli

    out = tmp_path / "run"
    config = mlm_config(tiny_bert, out, strategy={"type": "last_k", "k": 1})
    config["trainer"]["max_steps"] = 3
    with caplog.at_level("INFO", logger="nlptune"):
        nlptune.train(config)
    assert (
        "masked-LM head: " in caplog.text and "has no head; initialised as bert does" in caplog.text
    )
    start = load_file(str(tiny_bert / "model.safetensors"))
    end = load_file(str(out / "model" / "model.safetensors"))
    key = "encoder.layer.{}.output.dense.weight"
    assert torch.equal(start[key.format(0)], end[f"bert.{key.format(0)}"])  # below the top k
    assert not torch.equal(start[key.format(1)], end[f"bert.{key.format(1)}"])
    inputs = tmp_path / "in.txt"
    inputs.write_text("the film was [MASK] .\nno mask\n")
    capsys.readouterr()
    assert cli.main(["predict", str(out), "--input", str(inputs)]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 and len(rows[0]["masks"]) == 1 and len(rows[0]["masks"][0]) == 5
    assert rows[1]["masks"] == []  # nothing to fill


def test_held_out_text_is_whole_documents(tiny_bert: Path, tmp_path: Path) -> None:
    from nlptune.data.plain import hold_out_documents, read_text

    lines = read_text(CORPUS["train"])
    rest, held = hold_out_documents(lines, 0.2, seed=3)
    assert len(rest) + len(held) == len(lines) and 0.15 < len(held) / len(lines) < 0.3
    assert held[0].new_document and rest[0].new_document
    docs = {id(x) for x in held}
    for i, line in enumerate(lines[1:], 1):  # a document is held out whole or not at all
        if not line.new_document:
            assert (id(line) in docs) == (id(lines[i - 1]) in docs)
    one = list(lines[:10])
    one = [type(one[0])(x.text, x.where, i == 0) for i, x in enumerate(one)]  # one document
    rest, held = hold_out_documents(one, 0.3, seed=0)
    assert [x.text for x in held] == [x.text for x in one[7:]] and held[0].new_document
    # NSP on a dev file of one document is refused, naming the file
    single = tmp_path / "dev.txt"
    single.write_text("the film was good .\nthe plot was bad .\n")
    config = mlm_config(tiny_bert, tmp_path / "run", task={"objectives": ["mlm", "nsp"]})
    config["data"]["dev"] = str(single)
    with pytest.raises(DataError, match=r"dev\.txt: next-sentence prediction needs several"):
        nlptune.train(config)


def test_a_folder_of_compressed_tables_is_not_text(tiny_bert: Path, tmp_path: Path) -> None:
    import gzip

    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "part-0.jsonl.gz").write_bytes(gzip.compress(b'{"text": "a film"}\n'))
    config = mlm_config(tiny_bert, tmp_path / "run")
    config["data"] = {"train": str(folder), "dev": CORPUS["dev"]}
    with pytest.raises(DataError, match="no .txt or .txt.gz files"):
        nlptune.validate(config)
    (folder / "part-1.txt.gz").write_bytes(gzip.compress(b"the film was good .\n"))
    assert nlptune.validate(config)["examples"]["train"] == 1
