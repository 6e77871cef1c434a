"""A frozen backbone's cached states train the same head as running the backbone every step."""

from __future__ import annotations

from pathlib import Path

import pytest

import nlptune

from ..conftest import FIXTURES, tiny_config

DATA = {
    "text_classification": {
        "train": str(FIXTURES / "sentiment_train.tsv"),
        "dev": str(FIXTURES / "sentiment_dev.tsv"),
        "text": "sentence",
        "label": "label",
    },
    "sequence_labelling": {
        "train": str(FIXTURES / "ner_train.conll"),
        "dev": str(FIXTURES / "ner_dev.conll"),
        "tag_column": 3,
    },
    "word_sense": {
        "train": str(FIXTURES / "streusle_train.conllulex"),
        "dev": str(FIXTURES / "streusle_dev.conllulex"),
    },
}


@pytest.mark.parametrize("task", sorted(DATA))
def test_cached_equals_uncached(
    tiny_bert_no_dropout: Path, tmp_path: Path, task: str, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = {}
    for cache in (True, False):
        config = tiny_config(
            tiny_bert_no_dropout,
            tmp_path / str(cache),
            task={"type": task},
            strategy={"type": "frozen", "cache": cache},
            trainer={"epochs": 3, "lr": 1e-2},
        )
        config["data"] = DATA[task]
        with caplog.at_level("INFO", logger="nlptune"):
            caplog.clear()
            metrics[cache] = nlptune.train(config).metrics["dev"]
        assert ("outputs computed once" in caplog.text) == cache
    for key, value in metrics[False].items():
        assert metrics[True][key] == pytest.approx(value, abs=1e-3), key


def _qa(model: Path, out: Path, cache: bool, epochs: int = 3) -> dict:
    config = tiny_config(
        model,
        out,
        task={"type": "extractive_qa", "doc_stride": 8},
        backbone={"max_length": 32},
        strategy={"type": "frozen", "cache": cache},
        trainer={"epochs": epochs, "lr": 1e-2},
    )
    config["data"] = {
        "train": str(FIXTURES / "squad_v1_train.json"),
        "dev": str(FIXTURES / "squad_v1_dev.json"),
    }
    return config


def test_frozen_qa_states_on_disk_match_the_backbone(
    tiny_bert_no_dropout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frozen extractive QA keeps every token's states in a memory-mapped bf16 file: after the
    states are written, no training step or evaluation runs the encoder, and the dev metrics are
    those of running the backbone every step, up to bf16 rounding of the states (and the zero
    states of padding, which the span loss's softmax also sees)."""
    import mmap

    import numpy as np

    from nlptune import build
    from nlptune.backbones.hf_encoder import HFEncoderModule
    from nlptune.training.frozen_cache import DiskStates

    calls = [0]
    forward = HFEncoderModule.forward

    def counted(self: HFEncoderModule, batch: dict) -> object:
        calls[0] += 1
        return forward(self, batch)

    monkeypatch.setattr(HFEncoderModule, "forward", counted)
    made: list = []
    real_cache = build.frozen_cache

    def keep(*args: object, **kwargs: object) -> object:
        made.append(real_cache(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    monkeypatch.setattr(build, "frozen_cache", keep)
    seen: list[tuple[int, int]] = []  # (epoch, encoder calls) at the end of every step
    files: list[Path] = []

    def look(state: object) -> None:
        seen.append((state.epoch, calls[0]))  # type: ignore[attr-defined]
        if files:
            return
        for split, states in made[0].caches.items():
            assert isinstance(states, DiskStates), split
            assert states.path.is_file() and states.path.parent.name == "frozen_states"
            rows = int(states.lengths.sum())
            assert states.path.stat().st_size == rows * states.hidden * 2  # bf16 bits
            assert states.states is not None and not states.states.flags.owndata
            base = states.states
            while isinstance(base, np.ndarray):
                base = base.base
            if isinstance(base, memoryview):
                base = base.obj
            assert isinstance(base, mmap.mmap)  # the file, mapped: not read into memory
            files.append(states.path)

    out = tmp_path / "cached"
    cached = nlptune.train(_qa(tiny_bert_no_dropout, out, True), callbacks=[look]).metrics
    assert {p.stem for p in files} == {"train", "dev"}
    assert len({e for e, _ in seen}) >= 3  # three epochs (the last step counts the next)
    assert calls[0] > 0 and len({c for _, c in seen}) == 1, seen  # the states, once, up front
    assert not (out / "frozen_states").exists()  # deleted once training ended
    monkeypatch.setattr(HFEncoderModule, "forward", forward)
    plain = nlptune.train(_qa(tiny_bert_no_dropout, tmp_path / "plain", False)).metrics
    for key in ("exact", "f1"):
        assert cached["dev"][key] == pytest.approx(plain["dev"][key], abs=2.5), key


def test_disk_states_round_trip_and_resume(tmp_path: Path) -> None:
    """The stored states are the encoder's, rounded to bf16; a second call with the same key
    reuses the file (a resumed run) and a changed key rewrites it."""
    import numpy as np
    import torch
    from torch import nn

    from nlptune.data.features import Features
    from nlptune.training.frozen_cache import DiskStates, write_states

    class Encoder(nn.Module):
        hidden_size = 4

        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, batch: dict) -> torch.Tensor:
            self.calls += 1
            ids = batch["input_ids"].float()
            return torch.stack([ids / 3 + k for k in range(4)], dim=-1)  # (B, T, 4)

    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 50, size=n).astype(np.int32) for n in (5, 2, 7, 3)]
    features = Features({"input_ids": seqs}, lengths=np.array([5, 2, 7, 3]))
    encoder = Encoder()
    options = {"batch_size": 2, "device": torch.device("cpu"), "autocast": torch.no_grad}
    path = tmp_path / "s" / "train.bf16"
    states = write_states(encoder, features, 0, path, "k1", 4, **options)  # type: ignore[arg-type]
    assert isinstance(states, DiskStates) and encoder.calls == 2
    batch = states.batch(torch.tensor([2, 1]), width=9)
    assert batch.shape == (2, 9, 4) and batch.dtype == torch.float32
    want = torch.stack([torch.from_numpy(seqs[1]).float() / 3 + k for k in range(4)], -1)
    assert torch.equal(batch[1, :2], want.to(torch.bfloat16).float())
    assert torch.all(batch[1, 2:] == 0)
    states.close()
    again = write_states(encoder, features, 0, path, "k1", 4, **options)  # type: ignore[arg-type]
    assert encoder.calls == 2  # reused
    again.close()
    write_states(encoder, features, 0, path, "k2", 4, **options).close()  # type: ignore[arg-type]
    assert encoder.calls == 4
