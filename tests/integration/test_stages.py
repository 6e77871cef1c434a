"""Adapt -> fine-tune in one command: stages files, several configs, reuse and resume by stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import nlptune
from nlptune import cli, stages
from nlptune.errors import ConfigError

from ..conftest import FIXTURES, tiny_config

CORPUS = {
    "train": str(FIXTURES / "corpus" / "train.txt"),
    "dev": str(FIXTURES / "corpus" / "dev.txt"),
}


def two_stages(model: Path, root: Path) -> dict[str, Any]:
    adapt = tiny_config(model, root / "adapt", task={"type": "masked_lm"})
    adapt["data"] = dict(CORPUS)
    adapt["trainer"].update(max_steps=4, lr=3e-3)
    tune = tiny_config(model, root / "tune", trainer={"max_steps": 6, "eval_every": 3})
    del tune["backbone"]["path"]  # starts from the adapt stage's model
    return {"stages": [{"name": "adapt", **adapt}, {"name": "tune", **tune}]}


def write(path: Path, body: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def test_a_stages_file_chains_reuses_and_resumes(
    tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = write(tmp_path / "job.yaml", two_stages(tiny_bert, tmp_path))
    summary = nlptune.validate(file)  # the tune stage is checked on the adapt stage's backbone
    assert list(summary["stages"]) == ["adapt", "tune"]

    class Stop(Exception):
        pass

    def stop(state: Any) -> None:
        if state.step == 5:  # in the tune stage (adapt makes 4 steps), after a checkpoint
            raise Stop

    with pytest.raises(Stop):
        nlptune.train_stages([file], ["tune.trainer.save_every=2"], callbacks=[stop])
    assert (tmp_path / "adapt" / "meta.json").is_file()
    assert not (tmp_path / "tune" / "meta.json").is_file()
    with pytest.raises(ConfigError, match="--resume"):
        nlptune.train_stages([file], ["tune.trainer.save_every=2"])
    with caplog.at_level("INFO", logger="nlptune"):
        results = nlptune.train_stages([file], ["tune.trainer.save_every=2"], resume=True)
    assert "stage adapt: " in caplog.text and "reusing it" in caplog.text
    assert [r.output_dir for r in results] == [tmp_path / "adapt", tmp_path / "tune"]
    assert results[1].metrics["steps"] == 6
    saved = yaml.safe_load((tmp_path / "tune" / "config.yaml").read_text())
    assert saved["backbone"]["path"] == str(tmp_path / "adapt" / "model")

    # a finished job: every stage reused; a changed stage is refused, naming the key
    caplog.clear()
    with caplog.at_level("INFO", logger="nlptune"):
        again = nlptune.train(file, ["tune.trainer.save_every=2"])  # the last stage's result
    assert again.metrics == results[1].metrics and caplog.text.count("reusing it") == 2
    with pytest.raises(ConfigError, match=r"stage tune: .*trainer.max_steps: 6 -> 7"):
        nlptune.train_stages([file], ["tune.trainer.max_steps=7", "tune.trainer.save_every=2"])
    # safe keys (threads, progress) may change
    nlptune.train_stages([file], ["tune.trainer.save_every=2", "trainer.num_threads=2"])


def test_several_configs_on_the_command_line(
    tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = two_stages(tiny_bert, tmp_path)["stages"]
    a = write(tmp_path / "a.yaml", {k: v for k, v in job[0].items() if k != "name"})
    b = write(tmp_path / "b.yaml", {k: v for k, v in job[1].items() if k != "name"})
    assert cli.main(["validate", str(a), str(b)]) == 0
    assert cli.main(["train", str(a), "--overwrite", str(b), "b.trainer.max_steps=2"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out[str(tmp_path / "tune")]["steps"] == 2
    assert "perplexity" in out[str(tmp_path / "adapt")]["dev"]
    # the first stage trains again: the stage after it must too, even though it is finished
    assert (
        cli.main(["train", str(a), str(b), "a.trainer.max_steps=3", "b.trainer.max_steps=2"]) == 2
    )
    err = capsys.readouterr().err
    assert "stage a: " in err and "trainer.max_steps: 4 -> 3" in err
    # a stage that trains again makes the finished stages after it train again
    import shutil

    shutil.rmtree(tmp_path / "adapt")
    before = (tmp_path / "tune" / "meta.json").stat().st_mtime_ns
    nlptune.train_stages([a, b], ["b.trainer.max_steps=2"])
    assert (tmp_path / "tune" / "meta.json").stat().st_mtime_ns > before


def test_stage_errors(tiny_bert: Path, tmp_path: Path) -> None:
    body = two_stages(tiny_bert, tmp_path)

    def refused(raw: Any, match: str, overrides: tuple[str, ...] = ()) -> None:
        file = write(tmp_path / "bad.yaml", raw)
        with pytest.raises(ConfigError, match=match):
            stages.expand([file], overrides)

    refused({"stages": []}, "non-empty list")
    refused({"stages": [1]}, "stage 1 must be a mapping")
    refused({"stages": body["stages"], "trainer": {}}, "only the key 'stages'")
    twice = [body["stages"][0], {**body["stages"][1], "name": "adapt"}]
    refused({"stages": twice}, "two stages are named 'adapt'")
    refused({"stages": [{**body["stages"][0], "name": "trainer"}]}, "not a section name")
    refused({"stages": [{**body["stages"][0], "name": "a b"}]}, "must be a word")
    refused(body, "neither a stage", ("nope.trainer.epochs=1",))
    bad = [body["stages"][0], {**body["stages"][1], "trainer": {"epochz": 1}}]
    file = write(tmp_path / "bad.yaml", {"stages": bad})
    with pytest.raises(ConfigError, match=r"stage tune.*unknown key 'trainer.epochz'"):
        nlptune.train_stages([file])  # before the first stage trains
    assert not (tmp_path / "adapt").exists()
    (tmp_path / "latin.yaml").write_bytes(b"stages:\n  - name: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        nlptune.train(tmp_path / "latin.yaml")


def test_changed_keys_ignores_safe_ones() -> None:
    old = {"trainer": {"epochs": 1, "progress": True}, "output_dir": "a", "seed": 1}
    new = {"trainer": {"epochs": 2, "progress": False}, "output_dir": "b", "seed": 1}
    assert stages.changed_keys(old, new) == ["trainer.epochs: 1 -> 2"]


def test_overrides_keep_the_chain_and_the_folders_apart(tiny_bert: Path, tmp_path: Path) -> None:
    file = write(tmp_path / "job.yaml", two_stages(tiny_bert, tmp_path))
    adapt_model = str(tmp_path / "adapt" / "model")
    # a global backbone.path or init sets where the job starts, never breaks the chain
    first, second = stages.expand([file], [f"backbone.path={tiny_bert}", "backbone.init=random"])
    assert first.raw["backbone"]["init"] == "random" and second.chained
    assert second.raw["backbone"]["path"] == adapt_model and "init" not in second.raw["backbone"]
    # a stage's own backbone.path takes it off the chain
    _, own = stages.expand([file], [f"tune.backbone.path={tiny_bert}"])
    assert not own.chained and own.raw["backbone"]["path"] == str(tiny_bert)
    with pytest.raises(ConfigError, match="would throw away the model of stage adapt"):
        stages.expand([file], ["tune.backbone.init=random"])
    with pytest.raises(ConfigError, match="would put every stage in one folder"):
        stages.expand([file], [f"output_dir={tmp_path / 'one'}"])
    with pytest.raises(ConfigError, match="give each stage a folder of its own"):
        stages.expand([file], [f"tune.output_dir={tmp_path / 'adapt' / 'inner'}"])
    body = two_stages(tiny_bert, tmp_path)
    body["stages"][1]["backbone"]["path"] = str(tmp_path / "tune" / "model")
    with pytest.raises(ConfigError, match="inside its own output_dir"):
        stages.expand([write(tmp_path / "self.yaml", body)], [])


def test_a_stage_trains_again_when_its_model_is_newer(tiny_bert: Path, tmp_path: Path) -> None:
    """Also when it names the earlier stage's model itself (not chained)."""
    body = two_stages(tiny_bert, tmp_path)
    body["stages"][1]["backbone"]["path"] = str(tmp_path / "adapt" / "model")
    file = write(tmp_path / "job.yaml", body)
    nlptune.train_stages([file])
    before = (tmp_path / "tune" / "meta.json").stat().st_mtime_ns
    nlptune.train_stages([file])  # nothing changed: both reused
    assert (tmp_path / "tune" / "meta.json").stat().st_mtime_ns == before
    a = {k: v for k, v in body["stages"][0].items() if k != "name"}
    nlptune.train(a, overwrite=True)  # the adapt run, trained again on its own
    nlptune.train_stages([file])
    assert (tmp_path / "tune" / "meta.json").stat().st_mtime_ns > before


def test_command_line_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["train", "trainer.epochs", "3"]) == 2
    assert "'trainer.epochs' is neither a config file nor a key=value" in capsys.readouterr().err
    odd = tmp_path / "lr=1e-4"
    odd.mkdir()
    (odd / "run.yaml").write_text("task: {type: nope}\n")
    assert cli.main(["validate", str(odd / "run.yaml")]) == 2  # a path with '=' is a config
    assert "unknown task 'nope'" in capsys.readouterr().err
