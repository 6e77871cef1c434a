"""Python API: ``nlptune.train(config)`` and ``nlptune.validate(config)``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlptune import artefact, build, stages
from nlptune.backbones.hf_paths import check_tokenizer_files, quiet_transformers
from nlptune.card import write_card
from nlptune.config import RunConfig, load_config
from nlptune.config import validate as config_validate
from nlptune.data.features import source_digest
from nlptune.errors import ConfigError
from nlptune.logs import show_messages
from nlptune.tasks.metrics import degenerate_warning
from nlptune.training import sharding
from nlptune.training.checkpoint import candidates

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


def _is_stages(config: Any) -> bool:
    return isinstance(config, (str, Path)) and stages.is_stages_file(config)


def validate(
    config: str | Path | Mapping[str, Any] | RunConfig, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Check config, data and model files without loading weights. Returns a short summary
    (for a stages file, ``{"stages": {name: summary}}``)."""
    if _is_stages(config):
        return {"stages": validate_stages([config], overrides)}  # type: ignore[list-item]
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
    show_messages(always=False)
    if _is_stages(config):  # a stages file: every stage, and the last one's result
        return train_stages(
            [config],  # type: ignore[list-item]
            overrides,
            resume=resume,
            overwrite=overwrite,
            callbacks=callbacks,
        )[-1]
    run = _as_config(config, overrides)
    folder = Path(run.output_dir)
    resume, restart = _check_output_dir(folder, resume, overwrite)
    p = build.parts(run)
    build.check(p, run)
    _check_tokenizer(run)
    splits = build.read_splits(run, p.task)  # data errors surface before weights load
    digests = {name: source_digest(data.path) for name, data in splits.items()}
    if resume:
        _check_resume(folder, run, digests)

    from nlptune.training import runtime

    accelerator = runtime.make_accelerator(run.trainer.precision, run.trainer.num_threads)
    main = accelerator.is_main_process
    with artefact.RunLock(folder) if main else contextlib.nullcontext():
        if main:
            if (overwrite or restart) and not resume:
                artefact.clear_run(folder)  # what an earlier run wrote, nothing else
            artefact.start_run(folder, run.to_yaml(), digests)
        accelerator.wait_for_everyone()
        return _train(run, p, splits, accelerator, callbacks, resume)


def _train(
    run: RunConfig,
    p: build.Parts,
    splits: dict[str, Any],
    accelerator: Any,
    callbacks: Sequence[Callable[[Any], None]],
    resume: bool,
) -> RunResult:
    """Train a started run (its folder locked) and save it."""
    folder = Path(run.output_dir)
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
                "feature cache hit"
                if hit
                else ("tokenized and cached" if data.features.stored else "tokenized, not cached"),
            )
    state, model = build.train_model(
        run, p, splits, text, accelerator, callbacks, resume, started=started
    )
    metrics: dict[str, Any] = {
        "best_step": state.best_step,
        "steps": state.step,
        "epochs_done": state.epochs_done,
        "stopped_early": state.stopped_early,
        "train_seconds": round(state.train_seconds, 2),
        "train_examples_per_s": round(state.examples / max(state.train_seconds, 1e-9), 2),
        "train_tokens_per_s": round(state.tokens / max(state.train_seconds, 1e-9), 1),
    }
    for split in ("dev", "test"):
        if split in splits:
            metrics[split] = build.score_split(
                run, p.task, model, splits[split], accelerator, text.pad_id
            )
            warning = degenerate_warning(p.task, f"the {split} set")
            if warning and accelerator.is_main_process:
                logger.warning(warning)
            if split == "dev":
                p.task.tune(metrics["dev"])  # e.g. the SQuAD v2 no-answer threshold
    # the whole run: featurizing, training, evaluating, and the processes before a resume
    metrics["wall_seconds"] = round(state.wall_seconds + time.perf_counter() - started, 2)
    metrics["parameters"] = parameter_counts(model)
    metrics.update(summed_peak_memory(accelerator))
    if sharding.is_split(accelerator):
        # the main process saves a plain copy with the gathered (fp32) weights
        model = build.unsharded(p, model, accelerator)
    if accelerator.is_main_process:
        labels = p.task.state()
        meta = artefact.run_meta(run.seed, {s: d.path for s, d in splits.items()})
        save = build.save_model(p, model, text)

        def write_model(target: Path) -> None:
            save(target)
            write_card(target / "README.md", run.to_dict(), p.task.export(), labels, metrics, meta)

        with quiet_transformers():  # no "Writing model shards" bar
            artefact.finish_run(folder, write_model, labels, metrics, meta)
        if not run.trainer.keep_checkpoints:
            shutil.rmtree(folder / "checkpoints", ignore_errors=True)
        _summary(run, p.task, metrics, folder)
    accelerator.wait_for_everyone()
    return RunResult(folder, metrics)


def parameter_counts(model: Any) -> dict[str, int]:
    """``{"trainable": N, "total": M}``: the parameters that train at the end of the run (the
    strategy's set; LoRA: adapters and heads) and all of them."""
    params = list(model.parameters())
    return {
        "trainable": sum(p.numel() for p in params if p.requires_grad),
        "total": sum(p.numel() for p in params),
    }


def summed_peak_memory(accelerator: Any) -> dict[str, Any]:
    """The run's peak memory in MB, every process's peak summed: resident memory
    (``peak_rss_mb``) and, on GPUs, what torch allocated there (``peak_gpu_mb``); with several
    processes also each one's (``peak_rss_mb_per_process``)."""
    import torch

    from nlptune.training.runtime import peak_memory

    mine = peak_memory()
    if accelerator.num_processes == 1:
        return mine
    every = accelerator.gather(torch.tensor([list(mine.values())], device=accelerator.device))
    rows = every.reshape(accelerator.num_processes, len(mine)).tolist()
    out: dict[str, Any] = {k: round(sum(r[i] for r in rows), 1) for i, k in enumerate(mine)}
    out["peak_rss_mb_per_process"] = [round(r[0], 1) for r in rows]
    return out


def validate_stages(
    configs: Sequence[str | Path | Mapping[str, Any]], overrides: Sequence[str] = ()
) -> dict[str, dict[str, Any]]:
    """Check every stage (config, data, model files) without loading weights. A stage that
    starts from an earlier stage's model not trained yet is checked against the backbone that
    stage starts from (the same architecture and tokenizer)."""
    out: dict[str, dict[str, Any]] = {}
    sources: dict[Path, str] = {}  # an earlier stage's model folder -> the backbone it adapts
    for stage in stages.expand(configs, overrides):
        backbone = stage.raw.get("backbone") or {}
        path = Path(str(backbone.get("path", "")))
        if not path.exists() and path.resolve() in sources:
            stage.raw["backbone"] = {**backbone, "path": sources[path.resolve()]}
        run = stage.config()
        out[stage.name] = validate(run)
        sources[(Path(run.output_dir) / "model").resolve()] = run.backbone.path
    return out


def train_stages(
    configs: Sequence[str | Path | Mapping[str, Any]],
    overrides: Sequence[str] = (),
    *,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Sequence[Callable[[Any], None]] = (),
) -> list[RunResult]:
    """Run stages in order (a stages file, or several configs where each later one starts
    from the previous one's model). A stage whose ``output_dir`` holds a finished run with the
    same config is reused, so a stopped job continues stage by stage; ``resume`` continues an
    interrupted stage from its checkpoint; ``overwrite`` trains every stage again."""
    show_messages(always=False)
    if resume and overwrite:
        raise ConfigError("choose one of --resume and --overwrite")
    validate_stages(configs, overrides)  # every stage's config and data, before any trains
    planned = stages.expand(configs, overrides)
    runs = [stage.config() for stage in planned]
    precisions = {run.trainer.precision for run in runs}
    if len(precisions) > 1 and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "stages launched on several processes must share trainer.precision (accelerate sets "
            f"it once per launch); they use {', '.join(sorted(precisions))}"
        )
    results: list[RunResult] = []
    for number, (stage, run) in enumerate(zip(planned, runs, strict=True), 1):
        folder = Path(run.output_dir)
        again = overwrite
        if artefact.is_complete(folder) and not overwrite:
            if not _stale(run, folder):
                results.append(_reuse(stage, run, folder))
                continue
            logger.info("stage %s: the model it starts from is newer; it trains again", stage.name)
            again = True
        logger.info("stage %s (%d of %d) -> %s", stage.name, number, len(planned), folder)
        unfinished = (folder / "checkpoints").exists() and not again
        results.append(
            train(run, resume=resume and unfinished, overwrite=again, callbacks=callbacks)
        )
    return results


def _stale(run: RunConfig, folder: Path) -> bool:
    """Whether the run in ``folder`` started from a run's model that finished after it."""
    source = Path(run.backbone.path).parent / artefact.META
    mine = folder / artefact.META
    return source.is_file() and source.stat().st_mtime_ns > mine.stat().st_mtime_ns


def _reuse(stage: stages.Stage, run: RunConfig, folder: Path) -> RunResult:
    saved, _ = artefact.read_run(folder)
    # resolved as today's code would (keys added since get their defaults); a config this
    # version no longer reads is compared as it is
    with contextlib.suppress(ConfigError):
        saved = config_validate({**saved, "output_dir": run.output_dir}).to_dict()
    changes = stages.changed_keys(saved, run.to_dict())
    if changes:
        raise ConfigError(
            f"stage {stage.name}: {folder} holds a finished run with another config "
            f"({'; '.join(changes[:4])}); pass --overwrite to train it again, or set "
            f"{stage.name}.output_dir=... to another folder"
        )
    logger.info("stage %s: %s holds this stage's finished run; reusing it", stage.name, folder)
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    return RunResult(folder, metrics)


def _check_output_dir(folder: Path, resume: bool, overwrite: bool) -> tuple[bool, bool]:
    """What may happen to ``folder``: nothing but a run is ever written into or cleared;
    ``--resume`` needs an unfinished run. Returns (resume, restart): a run stopped before its
    first checkpoint is started again from step 0 under ``--resume`` (nothing is lost)."""
    if resume and overwrite:
        raise ConfigError("choose one of --resume and --overwrite")
    artefact.check_output_dir(folder)
    if resume:
        if artefact.is_complete(folder):
            raise ConfigError(
                f"--resume: output_dir {folder} holds a finished run, nothing to resume; pass "
                "--overwrite to train it again"
            )
        if not artefact.is_run(folder):
            raise ConfigError(
                f"--resume: output_dir {folder} holds no run to resume; start without --resume"
            )
        if not candidates(folder / "checkpoints" / "last"):
            logger.info(
                "--resume: %s stopped before its first checkpoint; starting it from step 0",
                folder,
            )
            return False, True
        return True, False
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
    return False, False


def _check_tokenizer(run: RunConfig) -> None:
    """A transformers model folder must hold its tokenizer's files (without them every word
    would be read as unknown)."""
    if run.backbone.type in ("hf_encoder", "hf_seq2seq"):
        local = Path(run.backbone.path).expanduser()
        if local.is_dir():
            check_tokenizer_files(local, f"backbone.path {run.backbone.path}")


def _check_resume(folder: Path, run: RunConfig, digests: dict[str, str | None]) -> None:
    """Refuse to resume with another config (other than keys that only change how the run is
    shown or how fast it goes, ``stages.SAFE_KEYS``) or other data than the run started with."""
    changes = stages.changes_from_saved(folder, run)
    if changes:
        raise ConfigError(
            f"--resume: the config differs from the one {folder} started with "
            f"({'; '.join(changes[:4])}); resume with that config (its config.yaml), or pass "
            "--overwrite to start again"
        )
    before = artefact.started_data(folder)
    for split, digest in digests.items():
        if before.get(split) not in (None, digest):
            raise ConfigError(
                f"--resume: data.{split} ({run.data.model_dump().get(split)}) changed since the "
                "run started (its sha256 differs); resume with the same data, or pass "
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
