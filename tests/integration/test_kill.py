"""kill -9 at every point of a run where the file system changes, including the final save.

A driver process imports nlptune once, runs the training uninterrupted while it counts the
run's file-system events (a file opened for writing, a rename or replace, a safetensors save, a
folder made or removed under output_dir), then forks one child per kill point; the child trains
from scratch and SIGKILLs itself just before event k. Whatever is left must either load as a
finished run with the uninterrupted run's weights, or be finished by ``--resume`` to exactly those
weights.

The suite tries a spread of points and the last seven (the final save and what follows it);
``NLPTUNE_KILL_POINTS=all`` tries every event.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import nlptune

from ..conftest import tiny_config

DRIVER = r"""
import builtins, io, json, os, shutil, signal, sys
import safetensors.torch as safe

config, root, points = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
state = {"count": 0, "kill_at": 0, "out": ""}


def event(what):
    state["count"] += 1
    if state["count"] == state["kill_at"]:
        os.kill(os.getpid(), signal.SIGKILL)


def under(path):
    return state["out"] and os.path.abspath(os.fsdecode(path)).startswith(state["out"])


def wrap(owner, name, writes=lambda *a, **k: True):
    real = getattr(owner, name)

    def hooked(*args, **kwargs):
        if writes(*args, **kwargs):
            event(name)
        return real(*args, **kwargs)

    setattr(owner, name, hooked)


def writing(file, mode="r", *a, **k):
    return isinstance(file, (str, bytes, os.PathLike)) and under(file) and any(
        c in mode for c in "wax+")


wrap(builtins, "open", writing)
wrap(io, "open", writing)
for name in ("replace", "rename", "mkdir", "remove", "unlink", "rmdir"):
    wrap(os, name, lambda path, *a, **k: under(path))
wrap(shutil, "rmtree", lambda path, *a, **k: under(path))
wrap(safe, "save_file", lambda tensors, path, *a, **k: under(path))

import nlptune  # after the hooks: modules that import save_file by name get the hooked one

results = {}
for k in [0] + points:
    out = os.path.join(root, "whole" if k == 0 else f"kill-{k}")
    pid = os.fork()
    if pid == 0:
        state.update(out=os.path.abspath(out), kill_at=k)
        nlptune.train({**config, "output_dir": out})
        if k == 0:
            with open(os.path.join(root, "events.json"), "w") as f:
                json.dump(state["count"], f)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    results[k] = "killed" if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}"
    if k == 0 and not points:
        break
print(json.dumps(results))
"""


def _drive(config: dict[str, Any], root: Path, points: list[int]) -> dict[str, str]:
    env = {**os.environ, "NLPTUNE_PROGRESS_SECONDS": "0"}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(config), str(root), json.dumps(points)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def test_kill_9_at_any_point_loads_or_resumes_to_the_same_weights(
    tiny_bert: Path, tmp_path: Path
) -> None:
    config = tiny_config(
        tiny_bert,
        tmp_path / "unused",
        trainer={"max_steps": 8, "save_every": 3, "eval_every": 4, "epochs": 1},
    )
    _drive(config, tmp_path, [])  # the uninterrupted run, counting its events
    events = json.loads((tmp_path / "events.json").read_text())
    assert events > 20, events
    if os.environ.get("NLPTUNE_KILL_POINTS") == "all":
        points = list(range(1, events + 1))
    else:  # a spread over the run, and every event of the final save
        points = sorted(
            {*range(1, events - 6, max(1, events // 4)), *range(events - 6, events + 1)}
        )
    results = _drive(config, tmp_path, points)
    assert all(results[str(k)] == "killed" for k in points), results

    whole = _weights(tmp_path / "whole")
    finished = resumed = started = 0
    for k in points:
        folder = tmp_path / f"kill-{k}"
        if (folder / "meta.json").is_file():  # killed after the run was complete
            finished += 1
        elif not (folder / ".nlptune-run").is_file():  # killed before the marker was in place
            nlptune.train({**config, "output_dir": str(folder)})  # a new folder: train again
            started += 1
        else:
            nlptune.train({**config, "output_dir": str(folder)}, resume=True)
            resumed += 1
        predictor = nlptune.Predictor.from_dir(folder)  # loads as a finished run
        assert predictor.predict(["a charming story"])
        got = _weights(folder)
        assert got.keys() == whole.keys(), k
        assert all(torch.equal(got[name], whole[name]) for name in whole), f"kill point {k}"
    assert resumed and finished, (resumed, finished)
    print(
        f"kill -9 points: {len(points)} of {events} events; {finished} finished, "
        f"{resumed} resumed, {started} started again (killed before the marker was in place)"
    )


@pytest.fixture(autouse=True)
def _not_on_windows() -> None:
    if not hasattr(os, "fork"):
        pytest.skip("the kill test forks (POSIX)")
