"""``nlptune compare CONFIG --strategies full,frozen,last_k --seeds 3``: one config trained
with several strategies (or a sweep file's grid of ``key: [values]``) and seeds, each run in a
process of its own, then a table: the main dev metric's mean ± std over seeds, trainable
parameters, wall time, peak memory and speed (``compare.md``, ``compare.json``) and a plot of
the metric against trainable parameters (``compare.png``, with matplotlib).

Runs go to ``OUT/<combination>-seed<N>`` (``OUT``: ``-o``, default the config's ``output_dir``
plus ``-compare``). A finished run of the same config is reused and an unfinished one resumed,
so running the command again continues a stopped comparison.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlptune import artefact, sweep
from nlptune.compare_table import draw, markdown, summarise
from nlptune.config import RunConfig, read_yaml
from nlptune.errors import ConfigError, NlptuneError

logger = logging.getLogger("nlptune")


@dataclass
class Combination:
    """One run of the comparison: its group (the combination without the seed) and config."""

    name: str  # the run's folder name, e.g. full-seed1
    group: str  # e.g. full, or type=full_lr=2e-05 for a sweep
    values: dict[str, Any]  # dotted key -> value
    seed: int
    config: RunConfig


@dataclass
class CompareResult:
    """What :func:`compare` returns: the output folder, every run and the table's rows."""

    output_dir: Path
    runs: list[dict[str, Any]]
    table: list[dict[str, Any]]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.runs if r["status"] == "failed"]


def compare(
    config: str | Path | Mapping[str, Any] | RunConfig,
    overrides: Sequence[str] = (),
    *,
    strategies: Sequence[str] | None = None,
    seeds: int = 1,
    sweep_file: str | Path | None = None,
    output_dir: str | Path | None = None,
) -> CompareResult:
    """Train every combination of ``strategies`` (default: the config's own) or the sweep
    file's grid, times seeds 1..``seeds``; write ``compare.json``, ``compare.md`` and
    ``compare.png`` to the output folder and return the runs and table.

    Every combination is resolved and checked (config, data, model files) before the first
    run trains; a run that fails is reported in the table, and the others go on.
    """
    raw, base = sweep.base_config(config, overrides)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"--seeds {seeds}: give the number of seeds, 1 or more")
    out = Path(output_dir) if output_dir is not None else Path(base.output_dir + "-compare")
    sweep.check_folder(out, "compare")
    grid = _grid(strategies, sweep_file)
    combos = _combinations(raw, base, grid, seeds, out, str(sweep_file or "--strategies"))
    _check(combos)
    sweep.claim(out, "compare")
    with sweep.locked(out, "compare"):
        runs = [_run(c, out, i, len(combos)) for i, c in enumerate(combos, 1)]
        table = summarise(runs, _metrics_of(runs))
        report = {"config": str(config) if isinstance(config, (str, Path)) else None}
        artefact.write_json(out / "compare.json", {**report, "table": table, "runs": runs})
        text = markdown(table)
        artefact.atomic_write(out / "compare.md", lambda f: f.write(text), mode="w")
        draw(table, out / "compare.png")
    return CompareResult(out, runs, table)


def strategy_names(text: str) -> list[str]:
    """``--strategies full,frozen``: registered names, each once, at least one."""
    from nlptune.registry import STRATEGIES

    names = [n.strip() for n in text.split(",")]
    if not text.strip() or not all(names):
        raise ConfigError(
            f"--strategies {text!r}: give strategy names separated by commas, e.g. full,frozen "
            f"(known: {', '.join(STRATEGIES.names())})"
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"--strategies names {', '.join(twice)} more than once")
    for name in names:
        try:
            STRATEGIES.get(name)
        except ConfigError as err:
            raise ConfigError(f"--strategies: {err}") from None
    return names


def read_sweep(path: str | Path) -> dict[str, list[Any]]:
    """A sweep file: a mapping of dotted config keys to lists of values to try."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--sweep {path}: file not found")
    data = read_yaml(path)
    example = "e.g. trainer.lr: [2e-5, 5e-5]"
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"{path}: a sweep file maps config keys to lists of values, {example}")
    for key, values in data.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][\w.]*", key):
            raise ConfigError(f"{path}: {key!r} is not a dotted config key ({example})")
        if key in ("seed", "output_dir"):
            where = "--seeds N" if key == "seed" else "-o OUT"
            raise ConfigError(f"{path}: {key} can't be swept; use {where}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: {key}: give a list of values to try, {example}")
        shown = [json.dumps(v, sort_keys=True, default=str) for v in values]
        twice = sorted({s for s in shown if shown.count(s) > 1})
        if twice:
            raise ConfigError(f"{path}: {key} lists {', '.join(twice)} more than once")
    return data


def _grid(strategies: Sequence[str] | None, sweep_file: str | Path | None) -> list[dict[str, Any]]:
    """The combinations to try, each a mapping of dotted key -> value ({} for the config)."""
    keys: dict[str, list[Any]] = {}
    if strategies is not None:
        keys["strategy.type"] = strategy_names(",".join(strategies))
    if sweep_file is not None:
        swept = read_sweep(sweep_file)
        if "strategy.type" in swept and "strategy.type" in keys:
            raise ConfigError(
                f"{sweep_file} sweeps strategy.type and --strategies is given too; choose one"
            )
        keys.update(swept)
    return [dict(zip(keys, row, strict=True)) for row in itertools.product(*keys.values())]


def _combinations(
    raw: dict[str, Any],
    base: RunConfig,
    grid: list[dict[str, Any]],
    seeds: int,
    out: Path,
    source: str,
) -> list[Combination]:
    groups = group_names(grid, base.strategy.type)
    combos: list[Combination] = []
    seen: dict[str, str] = {}  # a resolved config (without folder) -> its group
    for group, values in zip(groups, grid, strict=True):
        for seed in range(1, seeds + 1):
            name = f"{group}-seed{seed}"
            folder = {"seed": seed, "output_dir": str(out / name)}
            run = sweep.resolve(raw, {**values, **folder}, f"{source} ({group})")
            key = json.dumps({**run.to_dict(), "output_dir": None}, sort_keys=True, default=str)
            if key in seen and seed == 1:
                logger.info("%s trains the same config as %s; left out", group, seen[key])
                break
            seen[key] = group
            combos.append(Combination(name, group, values, seed, run))
    return combos


def group_names(grid: list[dict[str, Any]], default: str) -> list[str]:
    """Readable, unique folder names: ``full``, ``lr=2e-05``, ``frozen_lr=2e-05`` (the last
    part of each key, the whole key where two share it)."""
    leaves = [k.rsplit(".", 1)[-1] for k in (grid[0] if grid else {})]
    names = []
    for values in grid:
        parts = []
        for key, value in values.items():
            leaf = key.rsplit(".", 1)[-1]
            label = key if leaves.count(leaf) > 1 else leaf
            shown = sweep.value_text(value)
            parts.append(shown if key == "strategy.type" else f"{label}={shown}")
        name = re.sub(r"[^A-Za-z0-9._=+-]+", "-", "_".join(parts) or default)
        names.append(name[:100])
    for i, name in enumerate(names):
        if names.count(name) > 1:
            names[i] = f"{name}-{i + 1}"
    return names


def _check(combos: list[Combination]) -> None:
    """Config, data and model files of every combination (once per group: seeds change
    nothing there), and what each run folder holds, before anything trains."""
    from nlptune import api

    for combo in combos:
        if combo.seed == 1:
            try:
                api.validate(combo.config)
            except NlptuneError as err:
                raise type(err)(f"{combo.group}: {err}") from None
        sweep.run_state(Path(combo.config.output_dir), combo.config)


def _run(combo: Combination, out: Path, index: int, total: int) -> dict[str, Any]:
    """Train (or reuse, or resume) one combination; its record for ``compare.json``."""
    folder = Path(combo.config.output_dir)
    record: dict[str, Any] = {
        "name": combo.name,
        "group": combo.group,
        "seed": combo.seed,
        "values": combo.values,
        "folder": str(folder),
    }
    state = sweep.run_state(folder, combo.config)
    where = f"[{index}/{total}] {combo.name}"
    if state == "finished":
        logger.info("%s: finished earlier, reused (%s)", where, folder)
        record["status"] = "reused"
    else:
        config_file = out / "configs" / f"{combo.name}.yaml"
        artefact.atomic_write(config_file, lambda f: f.write(combo.config.to_yaml()), mode="w")
        log_file = out / "logs" / f"{combo.name}.log"
        doing = "resuming" if state == "unfinished" else "training"
        logger.info("%s: %s (log: %s)", where, doing, log_file)
        error = sweep.train_subprocess(config_file, state == "unfinished", log_file)
        if error is not None:
            logger.warning("%s failed: %s", where, error)
            return {**record, "status": "failed", "error": error}
        record["status"] = "trained"
    record["metrics"] = sweep.read_json(folder / "metrics.json")
    return record


def _metrics_of(runs: list[dict[str, Any]]) -> dict[str, tuple[str, bool]]:
    """Each group's main metric and direction, from its first finished run's task."""
    out: dict[str, tuple[str, bool]] = {}
    for record in runs:
        if record["status"] == "failed" or record["group"] in out:
            continue
        folder = Path(record["folder"])
        try:
            raw, labels = artefact.read_run(folder)
            run = sweep.resolve(raw, {"output_dir": str(folder)}, str(folder))
            task = sweep.task_of(run, labels)
            out[record["group"]] = (task.main_metric, bool(task.greater_is_better))
        except (NlptuneError, KeyError, TypeError, ValueError) as err:
            logger.warning("warning: %s: can't tell its main metric (%s)", folder, err)
    return out


def add_parser(sub: Any) -> None:
    """``nlptune compare``'s arguments (``sub``: the CLI's subparsers)."""
    parser = sub.add_parser(
        "compare",
        help="train a config with several strategies (or a sweep file's grid) and seeds; "
        "table and plot of the dev metric against trainable parameters",
    )
    parser.add_argument(
        "args",
        nargs="+",
        metavar="CONFIG_OR_OVERRIDE",
        help="a YAML run config, then dotted key=value overrides",
    )
    parser.add_argument(
        "--strategies",
        metavar="NAME[,NAME...]",
        help="strategies to compare (nlptune list strategies; default: the config's)",
    )
    parser.add_argument(
        "--seeds", type=sweep.whole_number, default=1, help="seeds 1..N for each (1)"
    )
    parser.add_argument(
        "--sweep",
        metavar="SWEEP.yaml",
        help="YAML mapping of config keys to lists of values; every combination is trained",
    )
    parser.add_argument(
        "-o", "--output", help="output folder (default: the config's output_dir + -compare)"
    )


def main(args: argparse.Namespace) -> int:
    """Run ``nlptune compare`` as parsed; 1 when a run failed (the table has the rest)."""
    config, overrides = sweep.config_args(args.args)
    result = compare(
        config,
        overrides,
        strategies=args.strategies.split(",") if args.strategies is not None else None,
        seeds=args.seeds,
        sweep_file=args.sweep,
        output_dir=args.output,
    )
    print((result.output_dir / "compare.md").read_text(encoding="utf-8"), end="")
    if result.failed:
        logger.warning("%d of %d runs failed:", len(result.failed), len(result.runs))
        for record in result.failed:
            logger.warning("  %s: %s", record["name"], record["error"])
        return 1
    return 0
