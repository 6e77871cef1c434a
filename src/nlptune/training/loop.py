"""The one training loop, written against accelerate.

``trainer.batch_size`` is the global batch: each optimizer step takes ``batch_size`` examples,
cut into ``grad_accum`` micro-batches and, under several processes, into one share per process.
The loss of each share is weighted by its size, so one process and N processes compute the same
gradient. Data order is a pure function of ``(seed, epoch)`` and every checkpoint stores the RNG,
optimizer, schedule and loop state, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlptune.config import TrainerConfig
from nlptune.data.batching import collate, train_batches
from nlptune.data.features import Features
from nlptune.errors import NlptuneError
from nlptune.progress import Progress
from nlptune.training import checkpoint as ckpt
from nlptune.training import sharding
from nlptune.training import trackers as tracking
from nlptune.training.evaluate import item_groups, stream
from nlptune.training.frozen_cache import CachedEncoder
from nlptune.training.log import RunLog
from nlptune.training.optim import (
    describe_groups,
    linear_schedule,
    make_optimizer,
    param_groups,
    warmup_steps,
)
from nlptune.training.plan import Plan, enable
from nlptune.training.prefetch import Prefetch
from nlptune.training.runtime import peak_memory

logger = logging.getLogger("nlptune")


@dataclass
class LoopState:
    """Where the loop is; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    examples: int = 0
    tokens: int = 0  # non-padding input tokens of the examples trained on
    best_metric: float | None = None
    best_step: int = -1
    best_metrics: dict[str, float] = field(default_factory=dict)
    bad_evals: int = 0
    train_seconds: float = 0.0
    stopped_early: bool = False
    wall_seconds: float = 0.0  # of the processes before a resume (saved with the checkpoint)
    epochs_done: float = 0.0  # passes over the data, a fraction for a run stopped mid-epoch


@dataclass
class Job:
    """Everything the loop needs, already built (see :mod:`nlptune.build`)."""

    accelerator: Any
    model: torch.nn.Module  # what trains (with a CachedEncoder when the encoder is frozen)
    plan: Plan
    update_plan: Callable[[Plan, int, int], Plan | None]  # the strategy's hook: (plan, epoch, step)
    train: Features
    dev: Features | None
    evaluate: Callable[[Iterator[tuple[int, np.ndarray]]], dict[str, float]] | None
    predict_step: Callable[[Any, dict[str, torch.Tensor]], torch.Tensor]
    main_metric: str
    greater_is_better: bool
    pad_id: int
    folder: Path
    trainer: TrainerConfig
    seed: int
    cache: CachedEncoder | None = None
    callbacks: Sequence[Callable[[LoopState], None]] = ()
    resume: bool = False
    eval_by_length: bool = True
    # the task's last word on a training batch, (batch, epoch) -> None: masked-LM masking
    prepare_batch: Callable[[dict[str, Any], int], None] | None = None
    # how many terms a batch's loss is the mean of (masked tokens); None: of its items
    loss_terms: Callable[[dict[str, Any]], int | None] | None = None
    config: dict[str, Any] | None = None  # the run's resolved config, for the trackers
    started: float | None = None  # when this process began the run (perf_counter)
    # the run's wall time so far, resumed processes included (set by fit)
    wall: Callable[[], float] = lambda: 0.0


def steps_per_epoch(job: Job) -> int:
    t = job.trainer
    n, minimum = len(job.train), job.accelerator.num_processes * t.grad_accum
    if t.batch_size < minimum:  # no batch can be cut into a share per process and micro-batch
        return 0
    full, rest = divmod(n, t.batch_size)
    return full + (1 if rest >= minimum else 0)


FEW_STEPS = 100  # fewer optimizer steps than this: warned before training starts


def planned_steps(t: TrainerConfig, per_epoch: int, examples: int, main: bool = True) -> int:
    """The run's optimizer steps: ``max_steps``, else ``epochs`` passes but at least
    ``min_steps``; says so when ``min_steps`` adds epochs, and warns when the run is short."""
    total = t.max_steps or math.ceil(t.epochs * per_epoch)
    if not t.max_steps and total < t.min_steps:
        if main:
            logger.info(
                "%d examples make %d steps per epoch at trainer.batch_size=%d; "
                "trainer.epochs=%g is %d steps, fewer than trainer.min_steps=%d: training %d "
                "steps (%.1f epochs); set trainer.min_steps=0 to train %g epochs only",
                examples,
                per_epoch,
                t.batch_size,
                t.epochs,
                total,
                t.min_steps,
                t.min_steps,
                t.min_steps / per_epoch,
                t.epochs,
            )
        total = t.min_steps
    if total < FEW_STEPS and main:
        logger.warning(
            "warning: this run makes only %d optimizer steps (%d examples, batch %d); runs this "
            "short often end with one class for every prediction. Raise trainer.epochs or "
            "trainer.min_steps, or lower trainer.batch_size",
            total,
            examples,
            t.batch_size,
        )
    return total


def fit(job: Job) -> LoopState:
    """Train ``job.model``; on return it holds the best weights. Returns the final loop state."""
    acc, t = job.accelerator, job.trainer
    per_epoch = steps_per_epoch(job)
    if per_epoch == 0:
        shares = acc.num_processes * t.grad_accum
        if t.batch_size < shares:
            raise NlptuneError(
                f"trainer.batch_size={t.batch_size} can't be cut into {acc.num_processes} "
                f"processes x {t.grad_accum} micro-batches (trainer.grad_accum); raise batch_size "
                "or lower grad_accum"
            )
        raise NlptuneError(
            f"{len(job.train)} training examples make no batch of trainer.batch_size={t.batch_size}"
        )
    total = planned_steps(t, per_epoch, len(job.train), acc.is_main_process)
    model = job.model
    groups = param_groups(model, job.plan, t.lr, t.head_lr, t.weight_decay)
    if acc.is_main_process:
        for line in describe_groups(model, job.plan, groups):
            logger.info(line)
    optimizer = make_optimizer(groups, acc.device)
    scheduler = linear_schedule(
        optimizer, warmup_steps(total, t.warmup_ratio, t.warmup_steps), total
    )
    state, moments = LoopState(), None
    last, best = job.folder / "checkpoints" / "last", job.folder / "checkpoints" / "best"
    if job.resume:
        state, moments = _resume(job, optimizer, scheduler, last, best)
        if acc.is_main_process:
            logger.info("resuming from step %d of %d", state.step, total)
    enable(model, job.plan)
    if _replan(job, state) and acc.is_main_process:
        stage, count = _stage(job)
        logger.info("step %d: %s (%s parameters train)", state.step, stage, f"{count:,}")
    if sharding.is_deepspeed(acc):
        sharding.remember_layout(model, optimizer)
    try:
        wrapped, optimizer = acc.prepare(model, optimizer)
    except ValueError as err:  # FSDP told to shard a layer class the model has not
        advice = sharding.prepare_error(model, err) if sharding.is_sharded(acc) else None
        if advice is None:
            raise
        raise NlptuneError(advice) from None
    sharding.mark(model, acc)
    if moments is not None and sharding.is_split(acc):
        # FSDP replaced the parameters, DeepSpeed the groups: the moments given again
        sharding.set_optimizer_state(model, optimizer, moments, acc)
    if t.compile:
        wrapped = compiled(wrapped)
    log = RunLog(
        job.folder,
        main=acc.is_main_process,
        total=total,
        start=state.step,
        progress=t.progress,
        trackers=tracking.wanted(t),
        config=job.config,
    )
    before, started = state.wall_seconds, job.started or time.perf_counter()
    job.wall = lambda: before + time.perf_counter() - started
    try:
        _run(job, wrapped, optimizer, scheduler, state, total, per_epoch, log, last, best)
    finally:
        log.close()
    state.epochs_done = round(state.epoch + state.batch_in_epoch / per_epoch, 4)
    seen = (best / "model.safetensors").is_file()
    if state.best_step >= 0 and not seen and acc.num_processes > 1:
        # the main process wrote them: this process runs on a machine that can't see its disk
        raise NlptuneError(
            f"process {acc.process_index} can't see the best weights the main process wrote "
            f"({best}): on several machines output_dir must be a folder they share"
        )
    if state.best_step >= 0 and seen:
        try:
            ckpt.load_weights(model, best, acc)
        except ckpt.DamagedCheckpoint as err:
            raise NlptuneError(
                f"the best weights ({best}, step {state.best_step}) are damaged ({err}); train "
                "again with --overwrite"
            ) from None
    return state


def compiled(model: Any) -> Any:
    """``torch.compile`` of the training forward (``trainer.compile``); evaluation and saving
    use the plain module, so checkpoints keep their parameter names."""
    try:
        return torch.compile(model)
    except RuntimeError as err:  # e.g. a Python version torch.compile does not support yet
        raise NlptuneError(
            f"trainer.compile: torch.compile is not available here ({err}); set "
            "trainer.compile: false"
        ) from None


def _resume(
    job: Job, optimizer: Any, scheduler: Any, last: Path, best: Path
) -> tuple[LoopState, dict[str, Any]]:
    """The loop state and optimizer state of the newest intact checkpoint at ``last`` (restoring
    model, optimizer, schedule and RNG from it). A damaged checkpoint is said and passed over for
    an older intact one; none left is a NlptuneError that points to ``--overwrite``."""
    found = ckpt.candidates(last)
    if not found:
        raise NlptuneError(f"--resume: no checkpoint under {last.parent}; start without --resume")
    damaged: list[str] = []
    for folder in found:
        try:
            loaded, moments = ckpt.load_checkpoint(folder, job.model, optimizer, scheduler)
            state = LoopState(**loaded)
        except (ckpt.DamagedCheckpoint, TypeError) as err:
            step = ckpt.checkpoint_step(folder)
            at = f"at step {step} " if step is not None else ""
            damaged.append(f"the checkpoint {at}({folder}) is damaged ({err})")
            continue
        if damaged and job.accelerator.is_main_process:
            logger.warning(
                "warning: --resume: %s; resuming from the older intact checkpoint at step %d (%s)",
                "; ".join(damaged),
                state.step,
                folder,
            )
        if state.best_step >= 0 and (best / "model.safetensors").is_file():
            try:  # read at the end of the run: found damaged now, not after training
                ckpt.check_weights(job.model, best)
            except ckpt.DamagedCheckpoint as err:
                raise NlptuneError(
                    f"--resume: the best weights so far ({best}, step {state.best_step}) are "
                    f"damaged ({err}); pass --overwrite to start the run again"
                ) from None
        return state, moments
    raise NlptuneError(
        f"--resume: {damaged[0]}, and there is no older intact checkpoint; pass --overwrite to "
        "start the run again"
    )


def _run(
    job: Job,
    wrapped: Any,
    optimizer: Any,
    scheduler: Any,
    state: LoopState,
    total: int,
    per_epoch: int,
    log: RunLog,
    last: Path,
    best: Path,
) -> None:
    acc, t = job.accelerator, job.trainer
    evaluated_at, trained_at, warned = -1, state.train_seconds, [False]
    # the first step whose loss was not finite (0: none), kept on the device: read only where
    # the loop syncs anyway (a logged step, an evaluation, a checkpoint)
    diverged = torch.zeros((), dtype=torch.int64, device=acc.device)
    # batches built ahead pay off where the device computes while the host collates (a GPU);
    # on a CPU the thread only competes with the step for the cores (bench/overhead.py)
    depth = t.prefetch if t.prefetch is not None else (2 if acc.device.type == "cuda" else 0)
    while state.step < total and not state.stopped_early:
        batches = train_batches(
            job.train.lengths,
            t.batch_size,
            seed=job.seed,
            epoch=state.epoch,
            group_by_length=t.group_by_length,
        )
        batches = [b for b in batches if len(b) >= acc.num_processes * t.grad_accum]
        if not batches:  # never loop without stepping
            raise RuntimeError(f"epoch {state.epoch} makes no optimizer step ({per_epoch} planned)")
        build = functools.partial(_build_step, job, epoch=state.epoch)
        with Prefetch(build, batches[state.batch_in_epoch :], depth) as ahead:
            for indices, built, waited in _timed(iter(ahead)):
                if _replan(job, state):
                    if acc.num_processes > 1:
                        wrapped = acc.prepare_model(job.model)  # DDP must see the new trainable set
                    stage, count = _stage(job)
                    log.write(f"step {state.step}: {stage} ({count:,} parameters train)")
                    log.event("plan", state.step, {"stage": stage, "trainable": count})
                started = time.perf_counter()
                loss, head_losses = _step(job, wrapped, optimizer, scheduler, built)
                state.step += 1
                diverged.masked_fill_((diverged == 0) & ~torch.isfinite(loss), state.step)
                state.batch_in_epoch += 1
                state.examples += len(indices)
                state.tokens += int(job.train.lengths[indices].sum())
                epoch_end = state.batch_in_epoch == len(batches)
                if epoch_end:
                    state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                logged = state.step % t.log_every == 0 or state.step == total
                if logged or epoch_end:
                    _sync(acc.device)  # queued device work belongs to training time
                state.train_seconds += waited + time.perf_counter() - started
                if logged:  # the loss is read (a device sync) only here, not after every step
                    _check_finite(job, diverged, state.step)
                    seconds = max(state.train_seconds, 1e-9)
                    rate, tokens = state.examples / seconds, state.tokens / seconds
                    # each process holds its share of the global mean: sum the shares (every process
                    # logs at the same steps, so all take part), and the processes' peak memory
                    names = sorted(head_losses)
                    memory = peak_memory()
                    shares = torch.cat(
                        [
                            torch.stack([loss, *(head_losses[k] for k in names)]).float(),
                            torch.tensor(list(memory.values()), device=loss.device),
                        ]
                    )
                    if acc.num_processes > 1:
                        shares = acc.reduce(shares, reduction="sum")
                    lr, value = scheduler.get_last_lr()[-1], float(shares[0])
                    parts = {
                        f"loss_{k[: -len('.loss')]}": float(v)
                        for k, v in zip(names, shares[1 : 1 + len(names)], strict=True)
                    }
                    peaks = zip(memory, shares[1 + len(names) :].tolist(), strict=True)
                    log.step(state.step, loss=value, lr=lr, ex_s=rate)
                    log.event(
                        "train",
                        state.step,
                        {
                            "loss": value,
                            **parts,
                            "lr": lr,
                            "examples_per_s": rate,
                            "tokens_per_s": tokens,
                            **{k: round(v, 1) for k, v in peaks},
                            "epoch": state.epoch + state.batch_in_epoch / per_epoch,
                        },
                    )
                else:
                    log.step(state.step)
                done = state.step >= total
                if job.dev is not None and (
                    (t.eval_every and state.step % t.eval_every == 0)
                    or (not t.eval_every and epoch_end)
                    or done
                ):
                    trained_for = state.train_seconds - trained_at
                    _check_finite(job, diverged, state.step)
                    started = time.perf_counter()
                    _evaluate(job, state, log, best)
                    _warn_slow_eval(log, time.perf_counter() - started, trained_for, t, warned)
                    evaluated_at, trained_at = state.step, state.train_seconds
                if (t.save_every and state.step % t.save_every == 0) or (
                    not t.save_every and evaluated_at == state.step and not done
                ):
                    _check_finite(job, diverged, state.step)  # never a checkpoint of a diverged run
                    _checkpoint(job, optimizer, scheduler, state, last)
                for callback in job.callbacks:
                    callback(state)
                if done or state.stopped_early:
                    break


def _check_finite(job: Job, diverged: torch.Tensor, step: int) -> None:
    """Stop the run (every process alike) once a step's loss was nan or inf: the weights are
    lost from there on, and training on would only save them."""
    if job.accelerator.num_processes > 1:
        diverged = job.accelerator.reduce(diverged, reduction="max")
    first = int(diverged)
    if first:
        t = job.trainer
        head = f", trainer.head_lr {t.head_lr:g}" if t.head_lr else ""
        clip = " or set trainer.max_grad_norm (gradient clipping)" if not t.max_grad_norm else ""
        raise NlptuneError(
            f"the training loss is not finite (nan or inf) at step {first} (stopped at step "
            f"{step}): training diverged; lower trainer.lr (now {t.lr:g}{head}){clip} and train "
            "again with --overwrite"
        )


def _replan(job: Job, state: LoopState) -> bool:
    """Ask the strategy for the plan at this point; switch to it if it changed."""
    plan = job.update_plan(job.plan, state.epoch, state.step)
    if plan is None or plan.trainable == job.plan.trainable:
        return False
    unknown = plan.trainable - set(job.plan.params)
    if unknown:
        raise RuntimeError(
            f"the strategy's new plan trains parameters the optimizer lacks: {sorted(unknown)[:3]}"
        )
    plan.params = job.plan.params
    job.plan = plan
    enable(job.model, plan)
    return True


def _stage(job: Job) -> tuple[str, int]:
    """What the plan trains now, for the log: the strategy's words and the parameter count."""
    size = sum(p.numel() for n, p in job.model.named_parameters() if n in job.plan.trainable)
    return job.plan.stage or "the strategy changed what trains", size


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(steps: Iterator[tuple[list[int], Built]]) -> Iterator[tuple[list[int], Built, float]]:
    """The prefetched steps with the seconds the loop waited for each (training time too)."""
    while True:
        started = time.perf_counter()
        try:
            indices, built = next(steps)
        except StopIteration:
            return
        yield indices, built, time.perf_counter() - started


@dataclass
class Built:
    """One optimizer step's input, built ahead (:func:`_build_step`): this process's
    micro-batches on the CPU (pinned on a GPU), the items of each, and the global batch size."""

    batches: list[dict[str, torch.Tensor]]
    parts: list[list[int]]
    items: int  # of the global batch, all processes


def _build_step(job: Job, indices: list[int], epoch: int) -> Built:
    """Cut the global batch ``indices`` into micro-batches and this process's share of each,
    and collate them (on the prefetch thread: host work only, no collectives)."""
    acc, t = job.accelerator, job.trainer
    micro = np.array_split(np.asarray(indices), t.grad_accum)
    world, rank = acc.num_processes, acc.process_index
    parts = [np.array_split(chunk, world)[rank].tolist() for chunk in micro]
    batches = [_batch(job, part, torch.device("cpu"), epoch=epoch) for part in parts]
    if acc.device.type == "cuda":  # page-locked: the copies to the GPU run asynchronously
        batches = [{k: v.pin_memory() for k, v in b.items()} for b in batches]
    return Built(batches, parts, len(indices))


def _step(
    job: Job, wrapped: Any, optimizer: Any, scheduler: Any, built: Built
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One optimizer step over a global batch (built by :func:`_build_step`); returns this
    process's share of the loss (a 0-d tensor, left on the device) and, with several heads, of
    each head's loss."""
    acc, t = job.accelerator, job.trainer
    wrapped.train()
    world = acc.num_processes
    total = torch.zeros((), device=acc.device)
    heads: dict[str, torch.Tensor] = {}
    # counted (loss_terms) on the CPU batches, before they move: no device syncs
    shares = _shares(job, built.parts, built.batches, built.items)
    pinned = acc.device.type == "cuda"  # _build_step pinned them: the copies need not block
    last = len(built.batches) - 1
    for j, (batch, share) in enumerate(zip(built.batches, shares, strict=True)):
        batch = {k: v.to(acc.device, non_blocking=pinned) for k, v in batch.items()}
        sync = nullcontext() if j == last else acc.no_sync(wrapped)
        with sync:
            with acc.autocast():
                out = wrapped(**batch)
            loss = out["loss"] * share
            acc.backward(loss)
        total += loss.detach() / world
        for key, value in out.items():
            if key.endswith(".loss"):  # several heads: each one's loss, for the log
                heads[key] = heads.get(key, 0.0) + value.float() * share / world
    if t.max_grad_norm:
        acc.clip_grad_norm_(wrapped.parameters(), t.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total, heads


def _shares(
    job: Job, parts: list[list[int]], batches: list[dict[str, Any]], items: int
) -> list[float]:
    """What each of this process's micro-batch losses counts for in the step, times the
    process count (DDP averages gradients over processes): its share of the step's items, or
    of the step's loss terms where the task counts them (``loss_terms``: a token-mean loss), so
    that N processes and any ``grad_accum`` compute the gradient of one big batch."""
    world = job.accelerator.num_processes
    counted = [job.loss_terms(b) for b in batches] if job.loss_terms is not None else [None]
    if any(c is None for c in counted):  # a mean over items (or the task does not say)
        return [len(p) * world / items for p in parts]
    every = torch.tensor(float(sum(c or 0 for c in counted)), dtype=torch.float64)
    if world > 1:  # one collective per step, over all this step's terms
        every = job.accelerator.reduce(every.to(job.accelerator.device), reduction="sum")
    total = max(float(every), 1.0)
    return [float(c or 0) * world / total for c in counted]


def _batch(
    job: Job, indices: list[int], device: torch.device, split: str = "train", epoch: int = 0
) -> dict[str, Any]:
    features = job.train if split == "train" else job.dev
    assert features is not None
    batch: dict[str, Any] = collate(
        features,
        indices,
        job.pad_id,
        values=split == "train",
        multiple=job.trainer.pad_to_multiple_of,
    )
    if split == "train" and job.prepare_batch is not None:
        job.prepare_batch(batch, epoch)
    return {k: v.to(device) for k, v in batch.items()}


def evaluate_dev(job: Job) -> dict[str, float]:
    """Metrics on the dev set (all processes take part; outputs are streamed to the task)."""
    assert job.dev is not None
    model = job.model
    model.eval()
    lengths = job.dev.lengths
    if job.cache is not None:
        job.cache.split = "dev"
        if job.cache.caches["dev"].first:
            lengths = np.ones(len(job.dev), dtype=np.int64)
    rows = stream(
        lambda batch: job.predict_step(model, batch),
        lengths,
        lambda idx: _batch(job, list(idx), torch.device("cpu"), "dev"),
        batch_size=eval_batch_size(job.trainer),
        device=job.accelerator.device,
        autocast=job.accelerator.autocast,
        accelerator=job.accelerator,
        by_length=job.eval_by_length,
        groups=None if job.eval_by_length else item_groups(job.dev),
        progress=Progress(
            "evaluating dev",
            len(lengths),
            "example",
            enabled=job.trainer.progress and job.accelerator.is_main_process,
            leave=False,
        ),
    )
    try:
        assert job.evaluate is not None
        with sharding.gathered(model, job.accelerator):
            return job.evaluate(rows)
    finally:
        if job.cache is not None:
            job.cache.split = "train"


def eval_batch_size(trainer: TrainerConfig) -> int:
    """``trainer.eval_batch_size``, else twice the training batch (no gradients to hold)."""
    return trainer.eval_batch_size or 2 * trainer.batch_size


def _warn_slow_eval(
    log: Any, seconds: float, trained: float, t: TrainerConfig, warned: list[bool]
) -> None:
    """Say once when one evaluation costs more than the training between two of them."""
    if warned[0] or seconds <= max(trained, 1.0):
        return
    warned[0] = True
    log.write(
        f"warning: one dev evaluation took {seconds:.0f}s, more than the {trained:.0f}s of "
        "training since the last; set trainer.eval_samples (a dev sample during training) or a "
        "larger trainer.eval_every"
    )


def _evaluate(job: Job, state: LoopState, log: RunLog, best: Path) -> None:
    assert job.dev is not None
    metrics = evaluate_dev(job)
    value = metrics[job.main_metric]
    better = state.best_metric is None or (
        value > state.best_metric if job.greater_is_better else value < state.best_metric
    )
    log.event("eval", state.step, {**metrics, "best": better})
    if better:
        state.best_metric, state.best_step, state.best_metrics = value, state.step, metrics
        state.bad_evals = 0
        # every process takes part (FSDP gathers the shards); the main one writes
        weights = sharding.full_weights(job.model, job.plan.params, job.accelerator)
        if job.accelerator.is_main_process:
            best.mkdir(parents=True, exist_ok=True)
            ckpt.save_weights(weights, best)
    else:
        state.bad_evals += 1
        patience = job.trainer.early_stopping_patience
        if patience is not None and state.bad_evals >= patience:
            state.stopped_early = True
            log.write(f"early stopping: no {job.main_metric} improvement in {patience} evaluations")
    job.accelerator.wait_for_everyone()


def _checkpoint(job: Job, optimizer: Any, scheduler: Any, state: LoopState, last: Path) -> None:
    acc = job.accelerator
    # every process takes part (FSDP gathers the shards); the main one writes
    weights = sharding.full_weights(job.model, job.plan.params, acc)
    moments = sharding.full_optimizer_state(job.model, optimizer, acc)
    if acc.is_main_process:
        saved = {**asdict(state), "wall_seconds": job.wall()}  # what a resumed run adds to
        ckpt.save_checkpoint(last, weights, moments, scheduler, saved)
    job.accelerator.wait_for_everyone()
