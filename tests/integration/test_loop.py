"""Loop invariants: accumulation, early stopping, TensorBoard, other data sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import nlptune

from ..conftest import FIXTURES, tiny_config


def test_grad_accumulation_equals_one_big_batch(tiny_bert_no_dropout: Path, tmp_path: Path) -> None:
    runs = {}
    for accum in (1, 2):
        out = tmp_path / f"a{accum}"
        nlptune.train(
            tiny_config(
                tiny_bert_no_dropout,
                out,
                trainer={"epochs": 2, "batch_size": 8, "grad_accum": accum},
            )
        )
        runs[accum] = load_file(str(out / "model" / "model.safetensors"))
    for key, value in runs[1].items():
        torch.testing.assert_close(runs[2][key], value, atol=1e-5, rtol=1e-4)


def test_early_stopping_and_tensorboard(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = nlptune.train(
        tiny_config(
            tiny_bert,
            out,
            trainer={
                "epochs": 20,
                "lr": 1e-9,
                "eval_every": 2,
                "early_stopping_patience": 2,
                "tensorboard": True,
            },
        )
    )
    assert result.metrics["stopped_early"] and result.metrics["steps"] < 20 * 12
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    events = [json.loads(x)["event"] for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert events.count("eval") == result.metrics["steps"] // 2


def test_saved_hf_dataset_and_label_columns(tiny_bert: Path, tmp_path: Path) -> None:
    import datasets

    rows = [json.loads(x) for x in (FIXTURES / "multilabel_train.jsonl").read_text().splitlines()]
    names = ["acting", "music", "plot"]
    table = {"text": [r["text"] for r in rows]}
    table.update({n: [int(n in r["labels"]) for r in rows] for n in names})
    datasets.Dataset.from_dict(table).save_to_disk(str(tmp_path / "ds"))
    config = tiny_config(
        tiny_bert,
        tmp_path / "run",
        data={"train": str(tmp_path / "ds"), "dev": None, "text": "text", "label": names},
    )
    summary = nlptune.validate(config)
    assert summary["problem"] == "multi_label" and summary["labels"] == names
    assert summary["examples"] == {"train": 80}
    result = nlptune.train({**config, "trainer": {**config["trainer"], "max_steps": 3}})
    assert "dev" not in result.metrics and (tmp_path / "run" / "meta.json").is_file()


def test_csv_with_quotes_and_index_columns(tiny_bert: Path, tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text('"a great, ""wonderful"" film",pos\n"awful, dull",neg\n' * 6)
    summary = nlptune.validate(
        tiny_config(
            tiny_bert, tmp_path / "r", data={"train": str(data), "dev": None, "text": 0, "label": 1}
        )
    )
    assert summary["labels"] == ["neg", "pos"] and summary["examples"]["train"] == 12


@pytest.mark.parametrize("fmt", ["tsv"])
def test_glue_tsv_keeps_quotes(tmp_path: Path, fmt: str) -> None:
    from nlptune.data.readers import read_table

    path = tmp_path / f"x.{fmt}"
    path.write_text('\ufeffsentence\tlabel\nhe said " hi \tpos\n')
    table = read_table(str(path), columns=["sentence"])
    assert table.columns == ["sentence", "label"] and table.rows[0]["sentence"] == 'he said " hi '
