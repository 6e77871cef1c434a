"""The demo: fine-tune all-MiniLM-L6-v2 on gensim's 200 labelled movie-review sentences.

The data ships with gensim (``pang_lee_polarity.cor``: ``__label__pos text`` lines); the demo
writes it as train/dev TSV files (160/40, shuffled with a fixed seed), trains with the example
config, prints the dev metrics and a prediction.
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

from nlptune.errors import NlptuneError

CONFIG = (
    Path(__file__).resolve().parents[2] / "configs" / "text_classification" / "minilm_full.yaml"
)


def write_demo_data(folder: Path, seed: int = 13) -> tuple[Path, Path]:
    """Write gensim's polarity sentences as ``train.tsv`` and ``dev.tsv`` under ``folder``."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise NlptuneError("the demo needs gensim's test data: pip install gensim")
    source = (
        Path(spec.submodule_search_locations[0]) / "test" / "test_data" / "pang_lee_polarity.cor"
    )
    rows = []
    for line in source.read_text(encoding="cp1252", errors="replace").splitlines():
        label, _, text = line.partition(" ")
        rows.append((text.strip().replace("\t", " "), label.removeprefix("__label__")))
    random.Random(seed).shuffle(rows)
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "train.tsv", folder / "dev.tsv"
    for path, part in zip(paths, (rows[:160], rows[160:]), strict=True):
        path.write_text(
            "sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in part), encoding="utf-8"
        )
    return paths


def run_demo(output_dir: Path) -> None:
    from nlptune.api import train
    from nlptune.predict import Predictor

    train_path, dev_path = write_demo_data(output_dir.with_name(output_dir.name + "-data"))
    result = train(
        CONFIG,
        [
            f"data.train={train_path}",
            f"data.dev={dev_path}",
            f"output_dir={output_dir}",
            "trainer.epochs=4",
            "trainer.min_steps=100",  # 40 steps at 4 epochs: min_steps makes it 10 (logged)
            "trainer.batch_size=16",
            "trainer.lr=1e-4",
        ],
        overwrite=True,
    )
    print("dev metrics:", json.dumps(result.metrics["dev"]))
    predictor = Predictor.from_dir(result.output_dir)
    text = "a gripping , beautifully acted film that stays with you ."
    print(f"prediction for {text!r}:", json.dumps(predictor.predict([text])[0]))
