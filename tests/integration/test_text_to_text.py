"""text_to_text on hf_seq2seq: tiny T5 / BART / bert2bert built offline from configs, with
tokenizers trained on the fixture text. Learning checks (BLEU > 90 on 20 pairs), the standard
artefact (AutoModelForSeq2SeqLM + generate reproduces nlptune predict), strategies, readers and
the errors a user can cause."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import nlptune
from nlptune import build
from nlptune.config import load_config
from nlptune.errors import NlptuneError
from nlptune.strategies.base import group_of

from ..conftest import FIXTURES, REPO, TRANSLATE, translate_config

SOURCES = [
    *(TRANSLATE / "train.en").read_text().splitlines()[:6],
    "a dog is eating an apple .",
    "two women walk down the street .",
]


def _hf_generate(folder: Path, sources: list[str], prefix: str = "") -> list[str]:
    """What a user gets with plain transformers from the saved model, one source at a time."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    out = []
    for s in sources:
        ids = model.generate(**tokenizer(prefix + s, return_tensors="pt"))
        out.append(tokenizer.decode(ids[0], skip_special_tokens=True).strip())
    return out


@pytest.mark.parametrize("family", ["t5", "bart", "bert2bert"])
def test_overfits_twenty_pairs_and_saves_a_standard_model(
    family: str, tiny_t5: Path, tiny_bart: Path, translate_bert: Path, tmp_path: Path
) -> None:
    model = {"t5": tiny_t5, "bart": tiny_bart, "bert2bert": translate_bert}[family]
    out = tmp_path / "run"
    task = {"prefix": "translate: "} if family == "t5" else {}
    if family == "bart":  # beam search settings travel with the model
        task.update(num_beams=3, no_repeat_ngram_size=4, length_penalty=1.2)
    result = nlptune.train(translate_config(model, out, task=task))
    assert result.metrics["dev"]["bleu"] > 90
    assert result.metrics["dev"]["bleu_signature"].startswith("nrefs:1|case:mixed")

    predictor = nlptune.Predictor.from_dir(out)
    train_scores = predictor.evaluate(str(TRANSLATE / "train"))
    assert train_scores["bleu"] > 90  # all 20 pairs learnt, not only the 5 dev ones

    saved = json.loads((out / "model" / "generation_config.json").read_text())
    assert saved["max_new_tokens"] == 24
    assert saved["num_beams"] == (3 if family == "bart" else 1)
    if family == "bart":
        assert saved["no_repeat_ngram_size"] == 4 and saved["length_penalty"] == 1.2
    ours = [row["generated_text"] for row in predictor.predict(SOURCES)]
    assert ours == _hf_generate(out / "model", SOURCES, task.get("prefix", ""))
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["task_specific_params"]["text_to_text"]["prefix"] == task.get("prefix", "")


def test_saved_bert2bert_loads_without_missing_weights(
    translate_bert: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForSeq2SeqLM

    out = tmp_path / "run"
    nlptune.train(translate_config(translate_bert, out, trainer={"max_steps": 4}))
    model, info = AutoModelForSeq2SeqLM.from_pretrained(out / "model", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert type(model).__name__ == "EncoderDecoderModel"
    assert model.config.decoder_start_token_id == 2  # [CLS] of the fixture vocabulary
    assert model.config.decoder.add_cross_attention


def test_tied_decoder_shares_weights_and_saves_untied(translate_bert: Path, tmp_path: Path) -> None:
    def unique(folder: Path, tie: bool) -> tuple[int, Any]:
        run = load_config(translate_config(translate_bert, folder, backbone={"tie_decoder": tie}))
        p = build.parts(run)
        build.check(p, run)
        model, _ = build.new_model(p)
        return sum(x.numel() for x in model.parameters()), model

    untied, _ = unique(tmp_path / "a", False)
    tied, model = unique(tmp_path / "b", True)
    assert tied < untied * 0.75  # self-attention, feed-forward and embeddings are shared
    inner = model.encoder.model
    mine, theirs = inner.decoder.bert.encoder.layer[0], inner.encoder.encoder.layer[0]
    assert mine.attention.self.query.weight is theirs.attention.self.query.weight
    assert inner.decoder.bert.encoder.layer[0].crossattention is not None

    out = tmp_path / "run"
    config = translate_config(translate_bert, out, backbone={"tie_decoder": True})
    result = nlptune.train(config)
    assert result.metrics["dev"]["bleu"] > 90
    ours = [row["generated_text"] for row in nlptune.Predictor.from_dir(out).predict(SOURCES)]
    assert ours == _hf_generate(out / "model", SOURCES)


@pytest.mark.parametrize(
    ("strategy", "trains"),
    [
        ("frozen", {"decoder.layer.0", "decoder.layer.1", "decoder.top"}),
        ("last_k", {"layer.1", "top", "decoder.layer.1", "decoder.top"}),
        (
            "full",
            {"word_embeddings", "layer.0", "layer.1", "top"}
            | {"decoder.layer.0", "decoder.layer.1", "decoder.top"},
        ),
    ],
)
def test_strategies_pick_parameters_per_stack(
    strategy: str, trains: set[str], tiny_t5: Path, tmp_path: Path
) -> None:
    extra = {"k": 1} if strategy == "last_k" else {}
    run = load_config(
        translate_config(
            tiny_t5,
            tmp_path / "x",
            strategy={"type": strategy, "freeze_embeddings": False, **extra},
        )
    )
    p = build.parts(run)
    model, new = build.new_model(p)
    groups = group_of(model, new)
    model, plan = p.strategy.apply(model, new)
    assert {groups[n] for n in plan.trainable} == trains
    trainable = {n for n, x in model.named_parameters() if x.requires_grad}
    assert trainable == plan.trainable
    if strategy == "frozen":
        assert not any(".encoder.block." in n for n in trainable)
        assert any(".decoder.block.1.layer.1.EncDecAttention" in n for n in trainable)


def test_frozen_bert2bert_trains_cross_attention_not_the_encoder(
    translate_bert: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = translate_config(translate_bert, out, strategy={"type": "frozen"})
    config["trainer"]["max_steps"] = 4
    run = load_config(config)
    p = build.parts(run)
    model, new = build.new_model(p)
    before = {n: x.detach().clone() for n, x in model.named_parameters()}
    nlptune.train(config)
    after = nlptune.Predictor.from_dir(out).model
    state = dict(after.named_parameters())
    moved = {n for n, x in before.items() if n in state and not x.equal(state[n])}
    assert moved and all(n.startswith("encoder.model.decoder.") for n in moved)
    assert any("crossattention" in n for n in moved)


def test_label_smoothing_and_eval_sample(tiny_t5: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = translate_config(
        tiny_t5,
        out,
        task={"label_smoothing": 0.1},
        trainer={"max_steps": 6, "eval_every": 3, "eval_samples": 2},
    )
    result = nlptune.train(config)
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if e["event"] == "eval"] == [3, 6]
    # the final dev metrics are on all 5 dev pairs: the Predictor scores the whole file alike
    full = nlptune.Predictor.from_dir(out).evaluate(str(TRANSLATE / "dev"))
    assert full == pytest.approx(result.metrics["dev"], abs=1e-6)


def test_table_and_jsonl_sources(tiny_t5: Path, tmp_path: Path) -> None:
    en = (TRANSLATE / "train.en").read_text().splitlines()
    de = (TRANSLATE / "train.de").read_text().splitlines()
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("src\ttgt\n" + "".join(f"{a}\t{b}\n" for a, b in zip(en, de, strict=True)))
    jsonl = tmp_path / "pairs.jsonl"
    rows = [json.dumps({"text": a, "target": b}) for a, b in zip(en, de, strict=True)]
    jsonl.write_text("\n".join(rows) + "\n")
    config = translate_config(tiny_t5, tmp_path / "a", trainer={"max_steps": 2})
    config["data"] = {"train": str(tsv), "dev": str(tsv), "text": "src", "target": "tgt"}
    assert nlptune.validate(config)["examples"] == {"train": 20, "dev": 20}
    config["data"] = {"train": str(jsonl)}
    assert nlptune.validate(config)["examples"] == {"train": 20}


def test_generative_squad_scores_em_f1(tiny_t5: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = translate_config(tiny_t5, out, task={"metric": "f1"}, trainer={"max_steps": 2})
    config["data"] = {
        "train": str(FIXTURES / "squad_v1_train.json"),
        "dev": str(FIXTURES / "squad_v1_dev.json"),
    }
    config["backbone"]["max_length"] = 64
    result = nlptune.train(config)
    dev = result.metrics["dev"]
    assert {"exact", "f1", "bleu", "chrf"} <= set(dev)
    task = nlptune.Predictor.from_dir(out).task
    examples = task.read(str(FIXTURES / "squad_v1_dev.json"))
    assert examples[0].source.startswith("question: ") and " context: " in examples[0].source
    perfect = task.score([e.answers[0] for e in examples], examples)
    assert perfect["exact"] == 100.0 and perfect["f1"] == 100.0
    # a dict with question + context is a prediction input
    row = nlptune.Predictor.from_dir(out).predict([{"question": "who?", "context": "a man ."}])
    assert set(row[0]) == {"generated_text"}


def test_cli_predict_writes_generated_text(tiny_t5: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    nlptune.train(translate_config(tiny_t5, out, trainer={"max_steps": 2}))
    inputs = tmp_path / "in.txt"
    inputs.write_text("a man is riding a bike .\na cat sleeps on the sofa .\n")
    result = subprocess.run(
        [sys.executable, "-m", "nlptune", "predict", str(out), "--input", str(inputs)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert len(rows) == 2 and all(isinstance(r["generated_text"], str) for r in rows)


# -- errors a user can cause -----------------------------------------------------------------


def _error(config: dict[str, Any]) -> str:
    with pytest.raises(NlptuneError) as err:
        nlptune.validate(config)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_parallel_files_must_align(tiny_t5: Path, tmp_path: Path) -> None:
    (tmp_path / "c.en").write_text("a b .\nc d .\ne f .\n")
    with gzip.open(tmp_path / "c.de.gz", "wt") as f:
        f.write("x y .\nz .\n")
    config = translate_config(tiny_t5, tmp_path / "run")
    config["data"].update(train=str(tmp_path / "c"), dev=None)
    message = _error(config)
    assert "c.en has 3 lines" in message and "c.de.gz has 2" in message

    (tmp_path / "e.en").write_text("a b .\n\n")
    (tmp_path / "e.de").write_text("x .\ny .\n")
    config["data"]["train"] = str(tmp_path / "e")
    assert "e.en:2: empty line" in _error(config)

    (tmp_path / "z.en").write_text("")
    (tmp_path / "z.de").write_text("")
    config["data"]["train"] = str(tmp_path / "z")
    assert "z.en: no lines" in _error(config)

    (tmp_path / "rows.jsonl").write_text('{"text": "a b .", "target": ["x", "y"]}\n')
    table = translate_config(tiny_t5, tmp_path / "run")
    table["data"] = {"train": str(tmp_path / "rows.jsonl")}
    assert "rows.jsonl:1: column 'target' holds a list" in _error(table)

    config["data"]["train"] = str(tmp_path / "missing")
    assert "neither" in _error(config) and "missing.en.gz" in _error(config)

    (tmp_path / "b.en").write_bytes(b"\xff\xfe bad\n")
    (tmp_path / "b.de").write_text("x .\n")
    config["data"]["train"] = str(tmp_path / "b")
    assert "not UTF-8" in _error(config)


def test_config_errors(tiny_t5: Path, tiny_bert: Path, tmp_path: Path) -> None:
    config = translate_config(tiny_t5, tmp_path / "run")
    config["data"].pop("target_lang")
    assert "data.source_lang and data.target_lang" in _error(config)

    config = translate_config(tiny_t5, tmp_path / "run", task={"metric": "accuracy"})
    assert "not a text_to_text metric" in _error(config)

    config = translate_config(tiny_t5, tmp_path / "run")
    config["backbone"]["type"] = "hf_encoder"
    assert "can't feed the seq2seq_lm head" in _error(config)
    config["backbone"]["path"] = str(tiny_bert)
    assert "use backbone.type hf_seq2seq" in _error(config)

    config = translate_config(tiny_t5, tmp_path / "run", backbone={"tie_decoder": True})
    assert "already an encoder-decoder" in _error(config)

    config = translate_config(tiny_t5, tmp_path / "run")
    config["task"] = {"type": "text_classification"}
    config["data"] = {"train": str(FIXTURES / "sentiment_train.tsv"), "text": "sentence"}
    assert "can't feed the classification head" in _error(config)

    config = translate_config(tiny_t5, tmp_path / "run")
    config["data"].update(source_lang=None, target_lang=None, train=str(TRANSLATE / "train.en"))
    assert "can't tell the format" in _error(config)


def test_an_encoder_that_cannot_decode_is_refused(tmp_path: Path) -> None:
    from transformers import DistilBertConfig, DistilBertModel

    folder = tmp_path / "distil"
    DistilBertModel(
        DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
    ).save_pretrained(folder)
    config = translate_config(folder, tmp_path / "run")
    assert "can't be a decoder" in _error(config)


def test_transformers_pipeline_where_the_version_has_one(tiny_t5: Path, tmp_path: Path) -> None:
    """transformers 5.x dropped the translation / text2text pipelines; where the installed
    version has one, it must give nlptune's output."""
    from transformers import pipeline
    from transformers.pipelines import SUPPORTED_TASKS

    out = tmp_path / "run"
    nlptune.train(translate_config(tiny_t5, out, trainer={"max_steps": 4}))
    if "text2text-generation" not in SUPPORTED_TASKS:
        with pytest.raises(KeyError):
            pipeline("text2text-generation", model=str(out / "model"))
        return
    pipe = pipeline("text2text-generation", model=str(out / "model"))
    theirs = [r["generated_text"].strip() for r in pipe(SOURCES)]
    ours = [r["generated_text"] for r in nlptune.Predictor.from_dir(out).predict(SOURCES)]
    assert theirs == ours


def test_freeze_embeddings_defaults_per_family(
    tiny_t5: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    config = translate_config(tiny_t5, tmp_path / "x")
    config["strategy"] = {"type": "full"}  # freeze_embeddings left to the family
    assert build.parts(load_config(config)).strategy.freeze_embeddings is False
    config["strategy"]["freeze_embeddings"] = True
    assert build.parts(load_config(config)).strategy.freeze_embeddings is True
    from ..conftest import tiny_config

    encoder = tiny_config(tiny_bert, tmp_path / "y", strategy={"type": "full"})
    encoder["strategy"].pop("freeze_embeddings")
    assert build.parts(load_config(encoder)).strategy.freeze_embeddings is True
