"""``nlptune tune CONFIG --space SPACE.yaml --trials N``: hyper-parameter search with Optuna.

Each trial is one run of the config with the space's keys set (:mod:`nlptune.tune_space`),
trained in this process by :func:`nlptune.train` into ``OUT/trial-<number>`` (``OUT``: ``-o``,
default the config's ``output_dir`` plus ``-tune``), scored by the task's main dev metric in the
task's direction. Optuna's TPE sampler (seeded from the config's seed) picks the values; a
pruner (median by default) stops a trial whose dev metric lags the other trials' at the same
evaluation. What a trial reports at an evaluation is its best dev score so far, read from the
loop state the training loop passes to callbacks (the score the run would keep, as it keeps its
best checkpoint), indexed by evaluation number (1, 2, ...) so that trials with different batch
sizes line up. A pruned or failed trial's folder is removed (only what a run writes).

The study lives in ``OUT/study.sqlite3``: running the command again continues the search up to
``--trials`` finished trials (completed, pruned or failed by their own error). A trial left
running by a process that was killed is marked failed ("interrupted") and not counted. At the
end ``OUT/best.yaml`` holds the best trial's full config (``output_dir: OUT/best``), which
``nlptune train OUT/best.yaml`` trains, and ``OUT/trials.csv`` every trial.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlptune import artefact, sweep
from nlptune.config import RunConfig
from nlptune.errors import ConfigError, NlptuneError
from nlptune.tune_space import Param, check_space, read_space
from nlptune.tune_study import finished, open_study, write_trials

logger = logging.getLogger("nlptune")
INSTALL = "nlptune tune needs Optuna: pip install 'nlptune[tune]'"


@dataclass
class TuneResult:
    """What :func:`tune` returns."""

    output_dir: Path
    metric: str  # the main dev metric, e.g. accuracy
    best_value: float
    best_params: dict[str, Any]
    best_trial: int
    best_config: Path  # OUT/best.yaml
    counts: dict[str, int]  # trials by state: complete, pruned, fail


def require() -> Any:
    """The ``optuna`` module, or a one-line error with the install command."""
    try:
        import optuna
    except ImportError:
        raise NlptuneError(INSTALL) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def tune(
    config: str | Path | Mapping[str, Any] | RunConfig,
    space: str | Path,
    trials: int,
    overrides: Sequence[str] = (),
    *,
    output_dir: str | Path | None = None,
    pruner: str | Any = "median",
) -> TuneResult:
    """Search ``space`` until ``trials`` trials have finished; write ``best.yaml`` and
    ``trials.csv`` in the output folder and return the best trial.

    Args:
        config: a YAML path, a mapping or a :class:`RunConfig`.
        space: the space file (:mod:`nlptune.tune_space`).
        trials: how many finished trials the study should hold (a rerun adds the rest).
        overrides: dotted ``key=value`` strings applied to the config.
        output_dir: the search's folder (default: the config's ``output_dir`` + ``-tune``).
        pruner: ``"median"``, ``"none"`` or an Optuna pruner.
    """
    raw, base = sweep.base_config(config, overrides)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"--trials {trials}: give the number of trials, 1 or more")
    params = read_space(space)
    out = Path(output_dir) if output_dir is not None else Path(base.output_dir + "-tune")
    sweep.check_folder(out, "tune")
    optuna = require()
    check_space(raw, params, space)
    if base.data.dev is None and base.data.dev_fraction is None:
        raise ConfigError("tune scores trials on a dev set: set data.dev or data.dev_fraction")
    from nlptune import api

    api.validate(base)  # data and model files, before any trial
    task = sweep.task_of(base)
    metric, greater = task.main_metric, bool(task.greater_is_better)
    identity = {
        "config": {**base.to_dict(), "output_dir": None},
        "space": [p.as_dict() for p in params],
    }
    sweep.claim(out, "tune")
    with sweep.locked(out, "tune"):
        study = open_study(optuna, out, identity, greater, _pruner(optuna, pruner), trials)
        while (done := finished(study)) < trials:
            logger.info("trial %d of %d", done + 1, trials)
            _trial(optuna, study, raw, params, metric, out)
            write_trials(study, params, out / "trials.csv")
        write_trials(study, params, out / "trials.csv")
        return _best(study, raw, metric, out)


def _pruner(optuna: Any, pruner: str | Any) -> Any:
    if pruner == "median":  # never at a trial's first evaluation, nor in the first 3 trials
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    if pruner == "none":
        return optuna.pruners.NopPruner()
    if isinstance(pruner, str):
        raise ConfigError(f"--pruner {pruner}: choose median or none")
    return pruner


class _Report:
    """A training callback: at each dev evaluation, report the trial's best dev score so far
    (the loop state's ``best_metric``) and stop the run when the pruner says so."""

    def __init__(self, optuna: Any, trial: Any) -> None:
        self.optuna, self.trial = optuna, trial
        self.bad_evals, self.evals = 0, 0

    def __call__(self, state: Any) -> None:
        # an evaluation at this step either set a new best or counted one more bad evaluation
        evaluated = state.best_step == state.step or state.bad_evals != self.bad_evals
        self.bad_evals = state.bad_evals
        if not evaluated or state.best_metric is None:
            return
        self.evals += 1
        self.trial.report(float(state.best_metric), self.evals)
        if self.trial.should_prune():
            raise self.optuna.TrialPruned(
                f"pruned at evaluation {self.evals} (step {state.step}): best dev score so far "
                f"{state.best_metric:.4f}"
            )


def _trial(
    optuna: Any, study: Any, raw: dict[str, Any], params: list[Param], metric: str, out: Path
) -> None:
    """Ask for a trial, train it, tell the study how it ended."""
    from optuna.trial import TrialState

    from nlptune import api

    trial = study.ask()
    folder = out / f"trial-{trial.number}"
    values = {p.key: p.suggest(trial) for p in params}
    shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
    logger.info("trial %d: %s (%s)", trial.number, shown, folder)
    try:
        run = sweep.resolve(raw, {**values, "output_dir": str(folder)}, f"trial {trial.number}")
        result = api.train(run, callbacks=[_Report(optuna, trial)])
        value = float(result.metrics["dev"][metric])
    except optuna.TrialPruned as why:
        logger.info("trial %d %s", trial.number, why)
        sweep.discard(folder)
        study.tell(trial, state=TrialState.PRUNED)
    except NlptuneError as err:
        logger.warning("warning: trial %d failed: %s", trial.number, err)
        trial.set_user_attr("error", str(err))
        sweep.discard(folder)
        study.tell(trial, state=TrialState.FAIL)
    except BaseException:  # Ctrl-C or a bug: the trial does not count; the search resumes
        trial.set_user_attr("interrupted", True)
        sweep.discard(folder)
        study.tell(trial, state=TrialState.FAIL)
        raise
    else:
        for key in ("wall_seconds", "best_step", "steps"):
            trial.set_user_attr(key, result.metrics.get(key))
        logger.info("trial %d: dev %s %.4f", trial.number, metric, value)
        study.tell(trial, value)


def _best(study: Any, raw: dict[str, Any], metric: str, out: Path) -> TuneResult:
    from optuna.trial import TrialState

    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    if not counts.get("complete"):
        raise NlptuneError(
            f"no trial of {out / 'study.sqlite3'} completed ({json.dumps(counts)}); see the "
            "errors above, or trials.csv, and change the config or the space"
        )
    best = study.best_trial
    assert best.state == TrialState.COMPLETE
    run = sweep.resolve(raw, {**best.params, "output_dir": str(out / "best")}, "best trial")
    head = f"# nlptune tune: trial {best.number}, dev {metric} {best.value:.4f}\n"
    path = out / "best.yaml"
    artefact.atomic_write(path, lambda f: f.write(head + run.to_yaml()), mode="w")
    resolved = run.to_dict()
    used = {k: v for k, v in best.params.items() if _has(resolved, k)}  # not k under full
    return TuneResult(out, metric, float(best.value), used, best.number, path, counts)


def _has(tree: Mapping[str, Any], key: str) -> bool:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else sweep.value_text(value)


def add_parser(sub: Any) -> None:
    """``nlptune tune``'s arguments (``sub``: the CLI's subparsers)."""
    parser = sub.add_parser(
        "tune",
        help=f"hyper-parameter search with Optuna (TPE, pruning, resumable; {INSTALL[19:]})",
    )
    parser.add_argument(
        "args",
        nargs="+",
        metavar="CONFIG_OR_OVERRIDE",
        help="a YAML run config, then dotted key=value overrides",
    )
    parser.add_argument("--space", required=True, help="YAML: config key -> distribution")
    parser.add_argument(
        "--trials", type=sweep.whole_number, required=True, help="finished trials wanted"
    )
    parser.add_argument(
        "-o", "--output", help="output folder (default: the config's output_dir + -tune)"
    )
    parser.add_argument(
        "--pruner", default="median", choices=["median", "none"], help="median (default)"
    )


def main(args: argparse.Namespace) -> int:
    """Run ``nlptune tune`` as parsed; print the best trial."""
    config, overrides = sweep.config_args(args.args)
    result = tune(
        config,
        args.space,
        args.trials,
        overrides,
        output_dir=args.output,
        pruner=args.pruner,
    )
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result.counts.items()))
    best = f"dev {result.metric} {result.best_value:.4f}"
    print(f"best: trial {result.best_trial}, {best} ({counts})")
    for key, value in result.best_params.items():
        print(f"  {key}: {_short(value)}")
    print(f"config: {result.best_config} (nlptune train {result.best_config})")
    return 0
