"""``nlptune tune``'s Optuna study: ``OUT/study.sqlite3``, opened again to resume, and
``OUT/trials.csv``."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nlptune import artefact, stages, sweep
from nlptune.errors import ConfigError, NlptuneError, first_line
from nlptune.tune_space import Param

logger = logging.getLogger("nlptune")
NAME = "nlptune"  # the study's name in its file
FILE = "study.sqlite3"


def open_study(
    optuna: Any, out: Path, identity: dict[str, Any], greater: bool, pruner: Any, trials: int
) -> Any:
    """The study in ``out`` (made on first use). A study of another config or space is an
    error; trials a killed process left running are marked failed (``interrupted``)."""
    path = out / FILE
    try:
        storage = optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}")
        study = optuna.load_study(study_name=NAME, storage=storage, pruner=pruner)
    except KeyError:  # a new file, or one without our study
        if any(out.glob("trial-*")):
            raise NlptuneError(
                f"{out} holds trial folders but no study ({path}); pass -o OUT for a new search"
            ) from None
        direction = "maximize" if greater else "minimize"
        study = optuna.create_study(
            study_name=NAME, storage=storage, direction=direction, pruner=pruner
        )
        study.set_user_attr("identity", identity)
    except Exception as err:  # noqa: BLE001 (SQLAlchemy's errors: not a study file)
        raise NlptuneError(f"{path}: can't open the study ({first_line(err)})") from None
    else:
        changes = changed(study.user_attrs.get("identity") or {}, identity)
        if changes:
            raise ConfigError(
                f"{out} holds a search of another config or space ({'; '.join(changes[:4])}); "
                "run it with the same ones, or pass -o OUT for a new search"
            )
        _fail_interrupted(study, storage, out)
    done = len(study.trials)
    if done:
        logger.info("resuming the search in %s: %d trials finished", path, finished(study))
    seed = int(identity["config"]["seed"]) + done  # a resumed search samples anew
    study.sampler = optuna.samplers.TPESampler(
        seed=seed % 2**32, n_startup_trials=min(10, max(2, trials // 4))
    )
    return study


def changed(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between a study's config and space and this command's."""
    out = stages.changed_keys(saved.get("config") or {}, now["config"])
    if saved.get("space") != now["space"]:
        out.append("the space")
    return out


def _fail_interrupted(study: Any, storage: Any, out: Path) -> None:
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(NAME)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, "interrupted", True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        sweep.discard(out / f"trial-{trial.number}")
        logger.info("trial %d was interrupted; marked failed (not counted)", trial.number)


def finished(study: Any) -> int:
    """Trials that count towards ``--trials``: completed, pruned, or failed by their own
    error (not interrupted)."""
    from optuna.trial import TrialState

    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"))
        for t in study.get_trials(deepcopy=False)
    )


def write_trials(study: Any, params: list[Param], path: Path) -> None:
    """Every trial a row: number, state, value, the searched keys, evaluations, seconds,
    error."""
    keys = [p.key for p in params]
    columns = ["number", "state", "value", *keys, "evaluations", "seconds", "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    for trial in study.get_trials(deepcopy=False):
        took = trial.duration.total_seconds() if trial.duration is not None else None
        error = trial.user_attrs.get("error") or (
            "interrupted" if trial.user_attrs.get("interrupted") else ""
        )
        writer.writerow(
            {
                "number": trial.number,
                "state": trial.state.name.lower(),
                "value": trial.value if trial.value is not None else "",
                **{k: trial.params.get(k, "") for k in keys},
                "evaluations": len(trial.intermediate_values),
                "seconds": round(took, 1) if took is not None else "",
                "error": error,
            }
        )
    artefact.atomic_write(path, lambda f: f.write(buffer.getvalue()), mode="w")
