"""Python API: ``nlptune.train(config)`` and ``nlptune.validate(config)``."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlptune import artefact, build
from nlptune.config import RunConfig, load_config
from nlptune.errors import ConfigError

logger = logging.getLogger("nlptune")


@dataclass
class RunResult:
    """What :func:`train` returns: where the run is and its metrics."""

    output_dir: Path
    metrics: dict[str, Any]


def _as_config(
    config: str | Path | Mapping[str, Any] | RunConfig, overrides: Sequence[str]
) -> RunConfig:
    if isinstance(config, RunConfig):
        return load_config(config.to_dict(), overrides) if overrides else config
    return load_config(config, overrides)


def validate(
    config: str | Path | Mapping[str, Any] | RunConfig, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Check config, data and model files without loading weights. Returns a short summary."""
    run = _as_config(config, overrides)
    p = build.parts(run)
    build.check(p, run)
    splits = build.read_splits(run, p.task)
    return {
        "task": run.task.type,
        **{k: _short(v) for k, v in p.task.state().items()},
        "examples": {name: len(d.examples) for name, d in splits.items()},
        "strategy": run.strategy.type,
        "backbone": run.backbone.path,
    }


def _short(value: Any) -> Any:
    """Long label lists and maps are summarised as their size in the validate summary."""
    if isinstance(value, (list, dict)) and len(value) > 30:
        return f"<{len(value)} entries>"
    return value


def train(
    config: str | Path | Mapping[str, Any] | RunConfig,
    overrides: Sequence[str] = (),
    *,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Callable[[Any], None]] = (),
) -> RunResult:
    """Fine-tune as ``config`` says; save the run; return its metrics.

    Args:
        config: a YAML path, a mapping or a :class:`RunConfig`.
        overrides: dotted ``key=value`` strings applied on top.
        resume: continue from the run's last checkpoint (same result as never stopping).
        overwrite: replace a finished run in ``output_dir``.
        callbacks: called with the loop state after every optimizer step.
    """
    run = _as_config(config, overrides)
    folder = Path(run.output_dir)
    _check_output_dir(folder, resume, overwrite)
    p = build.parts(run)
    build.check(p, run)
    splits = build.read_splits(run, p.task)  # data errors surface before weights load

    from nlptune.training import runtime

    accelerator = runtime.make_accelerator(run.trainer.precision, run.trainer.num_threads)
    if accelerator.is_main_process:
        if overwrite and not resume:
            shutil.rmtree(folder, ignore_errors=True)
        artefact.start_run(folder, run.to_yaml())
    accelerator.wait_for_everyone()
    started = time.perf_counter()
    text = build.text_encoder(p, splits["train"])
    build.use_text(p.task, text)
    with accelerator.main_process_first():
        for name, data in splits.items():
            data.features, hit = build.featurize(run, p.task, text, data)
            logger.info(
                "%s: %d examples (%s)",
                name,
                len(data.examples),
                "feature cache hit" if hit else "tokenized and cached",
            )
    state, model = build.train_model(run, p, splits, text, accelerator, callbacks, resume)
    metrics: dict[str, Any] = {
        "best_step": state.best_step,
        "steps": state.step,
        "epochs_done": state.epoch,
        "stopped_early": state.stopped_early,
        "train_seconds": round(state.train_seconds, 2),
        "train_examples_per_s": round(state.examples / max(state.train_seconds, 1e-9), 2),
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    for split in ("dev", "test"):
        if split in splits:
            metrics[split] = build.score_split(
                run, p.task, model, splits[split], accelerator, text.pad_id
            )
            if split == "dev":
                p.task.tune(metrics["dev"])  # e.g. the SQuAD v2 no-answer threshold
    if accelerator.is_main_process:
        labels = p.task.state()
        meta = artefact.run_meta(run.seed, {s: d.path for s, d in splits.items()})
        artefact.finish_run(folder, build.save_model(p, model, text), labels, metrics, meta)
        if not run.trainer.keep_checkpoints:
            shutil.rmtree(folder / "checkpoints", ignore_errors=True)
        _summary(run, p.task, metrics, folder)
    accelerator.wait_for_everyone()
    return RunResult(folder, metrics)


def _check_output_dir(folder: Path, resume: bool, overwrite: bool) -> None:
    if resume and overwrite:
        raise ConfigError("choose one of --resume and --overwrite")
    if resume:
        return
    if artefact.is_complete(folder) and not overwrite:
        raise ConfigError(
            f"output_dir {folder} already holds a finished run; pass --overwrite to replace it "
            "or set output_dir=... to another folder"
        )
    if (folder / "checkpoints").exists() and not overwrite:
        raise ConfigError(
            f"output_dir {folder} holds an unfinished run; pass --resume to continue it or "
            "--overwrite to start again"
        )


def _summary(run: RunConfig, task: Any, metrics: dict[str, Any], folder: Path) -> None:
    dev = metrics.get("dev", {})
    main = task.main_metric
    shown = f"dev {main} {dev[main]:.4f}" if main in dev else "no dev set"
    logger.info(
        "done: %s (best step %s), %d steps in %.1fs (%.1f examples/s); saved to %s",
        shown,
        metrics["best_step"],
        metrics["steps"],
        metrics["train_seconds"],
        metrics["train_examples_per_s"],
        os.fspath(folder),
    )
