"""Glue between the built parts and the loop: accelerator, model, strategy, caches, scoring."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from nlptune import build
from nlptune.config import RunConfig
from nlptune.training.cached_backbone import StateCache, backbone_states, supports_cache
from nlptune.training.evaluate import stream_features
from nlptune.training.loop import Job, LoopState, fit

logger = logging.getLogger("nlptune")


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool((check and check()) or (amx and amx()))
    return False


def make_accelerator(precision: str, threads: int | None) -> Any:
    """An Accelerator with ``precision`` resolved (auto = bf16 where supported)."""
    from accelerate import Accelerator

    if threads:
        torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if precision == "auto":
        precision = "bf16" if bf16_supported(device) else "fp32"
    mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]
    # cpu=True on GPU-less machines: accelerate then sets up gloo (MULTI_CPU) when launched with
    # several processes; without it each process would train alone.
    _reset_single_process_state()
    accelerator = Accelerator(mixed_precision=mixed, cpu=device.type == "cpu")
    if not accelerator.is_main_process:
        logger.setLevel(logging.WARNING)  # one process reports
    return accelerator


def _reset_single_process_state() -> None:
    """Let one Python process train several runs with different precisions (accelerate keeps
    one global state); launched multi-process runs keep theirs."""
    import os

    from accelerate.state import AcceleratorState

    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        AcceleratorState._reset_state(reset_partial_state=True)


def autocast_for(precision: str, device: torch.device) -> Callable[[], Any]:
    """An autocast context factory for inference outside an Accelerator."""
    if precision == "auto":
        precision = "bf16" if bf16_supported(device) else "fp32"
    if precision == "fp32":
        return nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


def train_model(
    run: RunConfig,
    p: build.Parts,
    splits: dict[str, build.Dataset],
    tokenizer: Any,
    accelerator: Any,
    callbacks: Sequence[Callable[[LoopState], None]],
    resume: bool,
) -> tuple[LoopState, Any]:
    """Load the model, apply the strategy, cache frozen outputs, run the loop."""
    torch.manual_seed(run.seed)  # the head's initial weights
    model, new = build.load_model(run, p.task, p.backbone)
    plan = p.strategy.apply(model, new)
    n_train = sum(model.get_parameter(n).numel() for n in plan.trainable)
    n_all = sum(x.numel() for x in model.parameters())
    logger.info(
        "strategy %s: %s of %s parameters train (%.2f%%)",
        run.strategy.type,
        f"{n_train:,}",
        f"{n_all:,}",
        100 * n_train / n_all,
    )
    model.to(accelerator.device)
    cache: dict[str, StateCache] | None = None
    if plan.cache_backbone:
        if supports_cache(model) and p.task.cache_mode:
            cache = {
                s: compute_states(
                    model,
                    splits[s],
                    p.task.cache_mode == "first",
                    run,
                    accelerator,
                    tokenizer.pad_token_id or 0,
                )
                for s in ["train", "dev"]
                if s in splits
            }
            logger.info("frozen backbone: outputs computed once and reused every epoch")
        else:
            logger.info(
                "frozen backbone: this %s head reads more than one vector per example, so "
                "the backbone runs each step (no cached outputs)",
                model.config.model_type,
            )
    torch.manual_seed(run.seed)  # dropout stream
    job = Job(
        accelerator=accelerator,
        model=model,
        plan=plan,
        train=_features(splits["train"]),
        dev=_features(splits["dev"]) if "dev" in splits else None,
        evaluate=_evaluator(p.task, splits.get("dev")),
        outputs=p.task.outputs,
        eval_by_length=p.task.eval_by_length,
        main_metric=p.task.main_metric,
        greater_is_better=p.task.greater_is_better,
        pad_id=tokenizer.pad_token_id or 0,
        folder=Path(run.output_dir),
        trainer=run.trainer,
        seed=run.seed,
        cache=cache,
        callbacks=callbacks,
        resume=resume,
    )
    state = fit(job)
    return state, model


def _evaluator(task: Any, data: build.Dataset | None) -> Any:
    if data is None:
        return None
    return lambda rows: task.evaluate(rows, data.examples, _features(data))


def _features(data: build.Dataset) -> Any:
    assert data.features is not None
    return data.features


def compute_states(
    model: Any, data: build.Dataset, first: bool, run: RunConfig, accelerator: Any, pad_id: int
) -> StateCache:
    """Run the frozen backbone once over ``data`` and keep its states on the device."""
    features = _features(data)
    model.eval()
    rows = stream_features(
        lambda batch: backbone_states(model, batch, first),
        features,
        pad_id,
        batch_size=run.trainer.eval_batch_size or 2 * run.trainer.batch_size,
        device=accelerator.device,
        autocast=accelerator.autocast,
        accelerator=accelerator,
    )
    lengths = features.lengths
    kept: list[torch.Tensor | None] = [None] * len(features)
    for i, row in rows:
        kept[i] = torch.from_numpy(row if first else row[: lengths[i]])
    device = accelerator.device
    if first:
        return StateCache(torch.stack([r for r in kept if r is not None]).to(device))
    return StateCache([r.to(device) for r in kept if r is not None])


def score_split(
    run: RunConfig, task: Any, model: Any, data: build.Dataset, accelerator: Any, pad_id: int
) -> dict[str, float]:
    """Metrics of the (best) model on ``data``, computed with the full model."""
    features = _features(data)
    model.eval()
    rows = stream_features(
        lambda batch: task.outputs(model(**batch)),
        features,
        pad_id,
        batch_size=run.trainer.eval_batch_size or 2 * run.trainer.batch_size,
        device=accelerator.device,
        autocast=accelerator.autocast,
        accelerator=accelerator,
        by_length=task.eval_by_length,
    )
    result: dict[str, float] = task.evaluate(rows, data.examples, features)
    return {k: round(v, 6) for k, v in result.items()}
