from __future__ import annotations

from pathlib import Path

import pytest

from nlptune.config import apply_override, load_config, validate
from nlptune.errors import ConfigError

from ..conftest import REPO, tiny_config


def test_unknown_key_names_key_and_suggests(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path, tmp_path / "run")
    raw["trainer"]["epoch"] = 2
    with pytest.raises(
        ConfigError, match=r"unknown key 'trainer.epoch' \(did you mean 'epochs'\?\)"
    ):
        validate(raw)


def test_unknown_top_level_key_and_unknown_type(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path, tmp_path / "run")
    with pytest.raises(ConfigError, match="unknown key 'sed'.*did you mean 'seed'"):
        validate({**raw, "sed": 3})
    raw["strategy"] = {"type": "lastk"}
    with pytest.raises(ConfigError, match="unknown strategy 'lastk'.*did you mean 'last_k'"):
        validate(raw)


def test_key_of_another_strategy_is_refused(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path, tmp_path / "run", strategy={"type": "frozen", "k": 2})
    with pytest.raises(ConfigError, match="unknown key 'strategy.k'"):
        validate(raw)


def test_wrong_type_and_impossible_combination(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path, tmp_path / "run", trainer={"batch_size": "many"})
    with pytest.raises(ConfigError, match="trainer.batch_size"):
        validate(raw)
    raw = tiny_config(tmp_path, tmp_path / "run", trainer={"warmup_ratio": 0.1, "warmup_steps": 3})
    with pytest.raises(ConfigError, match="choose one"):
        validate(raw)
    raw = tiny_config(tmp_path, tmp_path / "run", data={"text_pair": "other"})
    with pytest.raises(ConfigError, match="sentence_pair"):
        validate(raw)


def test_defaults_are_filled_and_overrides_parse(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path, tmp_path / "run")
    apply_override(raw, "trainer.epochs=2")
    apply_override(raw, "strategy.type=last_k")
    apply_override(raw, "strategy.k=1")
    apply_override(raw, "task.labels=[neg, pos]")
    config = validate(raw)
    assert config.trainer.epochs == 2 and config.strategy.k == 1  # type: ignore[attr-defined]
    assert config.task.labels == ["neg", "pos"]  # type: ignore[attr-defined]
    resolved = config.to_dict()
    assert resolved["trainer"]["weight_decay"] == 0.01
    assert validate(resolved).to_dict() == resolved  # the saved config round-trips


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("nope.yaml")


SHIPPED = sorted(p for p in (REPO / "configs").glob("*/*.yaml") if p.parent.name != "accelerate")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path, request: pytest.FixtureRequest) -> None:
    from nlptune import build, stages

    # configs for a checkpoint the user brings: checked on a tiny model of the same family
    stand_in = {"t5_full.yaml": "tiny_t5", "bart_full.yaml": "tiny_bart"}.get(path.name)
    overrides = [f"backbone.path={request.getfixturevalue(stand_in)}"] if stand_in else []
    if stages.is_stages_file(path):  # each stage; a chained one on the backbone it adapts
        previous = None
        for stage in stages.expand([path], overrides):
            if stage.chained:
                stage.raw["backbone"]["path"] = previous
            config = stage.config()
            assert config.output_dir.startswith("runs/")
            build.check(build.parts(config), config)
            previous = config.backbone.path
        return
    config = load_config(path, overrides)
    assert config.output_dir.startswith("runs/")
    build.check(build.parts(config), config)
