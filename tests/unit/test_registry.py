"""Registries: entry points of installed packages, broken or clashing ones named, not crashed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from nlptune.errors import ConfigError
from nlptune.registry import Registry


def _installed(root: Path, group: str, line: str) -> None:
    info = root / "nlptune_bad-0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nlptune-bad\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(f"[nlptune.{group}]\n{line}\n")


def test_entry_point_that_fails_to_import_is_named_when_asked_for(tmp_path: Path) -> None:
    _installed(tmp_path, "backbones", "gone = nlptune_missing_module:Gone")
    sys.path.insert(0, str(tmp_path))
    try:
        registry: Registry = Registry("backbones")
        assert "gone" not in registry.names()  # the rest of nlptune still works
        with pytest.raises(ConfigError, match="'gone' is installed, but nlptune_missing_module"):
            registry.get("gone")
    finally:
        sys.path.remove(str(tmp_path))


def test_entry_point_that_takes_a_used_name_is_refused(tmp_path: Path) -> None:
    _installed(tmp_path, "strategies", "full = json:JSONDecoder")
    sys.path.insert(0, str(tmp_path))
    try:
        registry: Registry = Registry("strategies")
        registry.register("full")(object)
        with pytest.raises(ConfigError, match="nlptune.strategies:full.*already registered"):
            registry.refresh()
    finally:
        sys.path.remove(str(tmp_path))


def test_unknown_names_list_the_known_ones() -> None:
    from nlptune.registry import BACKBONES

    with pytest.raises(
        ConfigError, match="unknown backbone 'hf_encodr'.*did you mean 'hf_encoder'"
    ):
        BACKBONES.get("hf_encodr")
