"""The one place that turns a run config into parts and wires them, for training, evaluation and
the Predictor alike.

Only this module reads :class:`~nlptune.config.RunConfig`: task, backbone and strategy are built
from flat keyword arguments (their own config keys, plus the data keys a task names in
``DATA_ARGS``), the model is an encoder from the backbone with the heads the task asks for, and
a trained run loads through :func:`load_trained` and nothing else.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlptune import artefact
from nlptune.config import RunConfig, validate
from nlptune.data import features as feats
from nlptune.data.features import Features
from nlptune.data.split import hold_out
from nlptune.errors import ConfigError, ModelError, NlptuneError
from nlptune.heads.model import TaskModel
from nlptune.registry import BACKBONES, STRATEGIES, TASKS
from nlptune.tasks.base import Task
from nlptune.training import trackers

logger = logging.getLogger("nlptune")


@dataclass
class Parts:
    """The registry entries of a run, instantiated from its config."""

    task: Task
    backbone: Any
    strategy: Any


def _fields(section: Any) -> dict[str, Any]:
    return {k: v for k, v in section.model_dump().items() if k != "type"}


def make_task(config: RunConfig) -> Task:
    """The run's task, unfitted (no backbone, no model): what ``main_metric`` and the readers
    need."""
    task_cls = TASKS.get(config.task.type)
    data = config.data.model_dump()
    task: Task = task_cls(
        max_length=config.backbone.max_length,
        **_fields(config.task),
        **{arg: data[key] for key, arg in task_cls.DATA_ARGS.items()},
    )
    return task


def parts(config: RunConfig) -> Parts:
    task = make_task(config)
    backbone_cls = BACKBONES.get(config.backbone.type)
    options = _fields(config.backbone)
    params = inspect.signature(backbone_cls).parameters
    plugin = "init" not in params and not any(  # a plugin that predates backbone.init
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )
    if plugin and options.pop("init") != "pretrained":
        raise ConfigError(
            f"backbone.type={config.backbone.type} can't start from random weights; remove "
            "backbone.init or use hf_encoder, hf_seq2seq or static_vectors"
        )
    backbone = backbone_cls(**options)
    strategy = _fields(config.strategy)
    if strategy.get("freeze_embeddings") is None:  # the family's (or the task's) default
        default = getattr(task, "freeze_embeddings", getattr(backbone, "freeze_embeddings", True))
        # random word embeddings learn, whatever the family's default for pre-trained ones
        strategy["freeze_embeddings"] = bool(default) and config.backbone.init != "random"
    return Parts(
        task=task,
        backbone=backbone,
        strategy=STRATEGIES.get(config.strategy.type)(**strategy),
    )


def check(p: Parts, run: RunConfig) -> None:
    """Cheap checks of the backbone (no weights) against task and strategy."""
    backbone_type, task_type, strategy_type = run.backbone.type, run.task.type, run.strategy.type
    for spec in p.task.heads().values():
        kind = spec.kind
        if kind not in p.backbone.head_kinds:
            able = [n for n, b in BACKBONES if kind in getattr(b, "head_kinds", ())]
            raise ConfigError(
                f"backbone.type={backbone_type} can't feed the {kind} head that task "
                f"{task_type} needs; use backbone.type {' or '.join(able) or '(none known)'}"
            )
    allowed = getattr(p.backbone, "strategies", None)  # {name: what it does} where limited
    if allowed is not None and strategy_type not in allowed:
        uses = "; ".join(f"{name}: {what}" for name, what in allowed.items())
        raise ConfigError(
            f"strategy.type={strategy_type} makes no sense for backbone.type={backbone_type}; "
            f"use {' or '.join(allowed)} ({uses})"
        )
    p.backbone.check()
    check_heads = getattr(p.backbone, "check_heads", None)  # can this checkpoint feed them?
    if check_heads is not None:
        check_heads({spec.kind for spec in p.task.heads().values()})
    p.strategy.check(p.backbone.num_layers())
    _check_adapters(p, run)
    _check_checkpointing(run, p)
    trackers.check(run.trainer)


def _check_adapters(p: Parts, run: RunConfig) -> None:
    """A strategy that adds adapters to linear layers (``check_layers``: lora) needs a family
    that names them (``linear_layers``) and pre-trained weights to adapt."""
    check_layers = getattr(p.strategy, "check_layers", None)
    if check_layers is None:
        return
    strategy, backbone = run.strategy.type, run.backbone.type
    linear_layers = getattr(p.backbone, "linear_layers", None)
    if linear_layers is None:
        able = [n for n, b in BACKBONES if hasattr(b, "linear_layers")]
        raise ConfigError(
            f"strategy.type={strategy} adapts the linear layers of a transformers model, which "
            f"backbone.type={backbone} has not; use backbone.type {' or '.join(able)}, or "
            "strategy.type full, last_k or frozen"
        )
    if run.backbone.init == "random":
        raise ConfigError(
            f"strategy.type={strategy} adapts pre-trained weights, and backbone.init=random has "
            "none; use strategy.type full to train from scratch"
        )
    check_layers(*linear_layers())


@dataclass
class Dataset:
    """Examples and (once featurized) features of one split."""

    path: str
    examples: list[Any]
    features: Features | None = None
    part: str = ""  # which part of ``path`` (a held-out split), for the feature cache key

    @property
    def feats(self) -> Features:
        assert self.features is not None, "featurize the split first"
        return self.features


def read_splits(config: RunConfig, task: Task) -> dict[str, Dataset]:
    """Read train/dev/test, fix the label set from train and check dev/test labels against it.

    Raises DataError (file, line, what to change) before any weights load.
    """
    out: dict[str, Dataset] = {}
    for split in ("train", "dev", "test"):
        path = getattr(config.data, split)
        if path is not None:
            out[split] = Dataset(path, task.read(path))
    fraction = config.data.dev_fraction
    if fraction and "dev" not in out:
        divide: Any = getattr(task, "hold_out", None) or hold_out  # a task's own units
        train, dev = divide(out["train"].examples, fraction, config.seed)
        out["train"] = Dataset(out["train"].path, train, part=f"train-{fraction}-{config.seed}")
        out["dev"] = Dataset(out["train"].path, dev, part=f"dev-{fraction}-{config.seed}")
    task.fit(out["train"].examples)
    for data in out.values():
        task.encode_labels(data.examples)  # unknown labels fail here, named
    return out


def featurize(config: RunConfig, task: Task, text: Any, data: Dataset) -> tuple[Features, bool]:
    """Features of ``data``, from the on-disk cache when the same data, text encoder and task
    settings were seen before. Returns ``(features, cache_hit)``."""
    key = [
        feats.source_digest(data.path) or data.path,
        data.part,
        text.fingerprint(),
        config.backbone.max_length,
        task.cache_key(),
    ]
    return feats.cached(
        feats.cache_dir(config.data.cache_dir),
        key,
        lambda: task.featurize(data.examples, text),
        examples=len(data.examples),
    )


def text_encoder(p: Parts, train: Dataset) -> Any:
    """The backbone's text encoder; a family whose vocabulary comes from the training data
    (``fit``: static word vectors) first sees the words the task reads from ``train``."""
    fit = getattr(p.backbone, "fit", None)
    if fit is not None:
        fit(lambda counter: p.task.featurize(train.examples, counter))
    return p.backbone.text_encoder()


def use_text(task: Task, text: Any) -> None:
    """Give the text encoder to a task that turns ids back into text (``use_text``)."""
    hook = getattr(task, "use_text", None)
    if hook is not None:
        hook(text)


def rounded(metrics: dict[str, Any]) -> dict[str, Any]:
    """Metrics rounded to 6 places (strings such as a sacreBLEU signature kept as they are)."""
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}


def make_model(task: Task, backbone: Any, encoder: Any, pretrained: bool) -> TaskModel:
    """The encoder with the task's heads; ``pretrained`` starts heads from what the checkpoint
    has for them (BERT's pooler)."""
    heads, weights = {}, {}
    specs = dict(task.heads())
    extra = getattr(backbone, "extra_heads", None)  # heads the family adds (an auxiliary LM)
    if extra is not None:
        specs.update(extra(encoder))
    for name, spec in specs.items():
        kind = spec.kind
        options = backbone.head_options(kind, encoder)
        accepted = inspect.signature(spec.cls).parameters
        options = {k: v for k, v in options.items() if k in accepted and k not in spec.args}
        head = spec.cls(hidden_size=encoder.hidden_size, **options, **spec.args)
        if pretrained:
            init = backbone.head_init(kind, encoder)
            if init:
                head.load_state_dict(init, strict=False)
        heads[name], weights[name] = head, spec.weight
    return TaskModel(encoder, heads, weights)


def new_model(p: Parts) -> tuple[TaskModel, set[str]]:
    """The pre-trained encoder with fresh heads; the names of newly initialised parameters."""
    encoder, new = p.backbone.load()
    return make_model(p.task, p.backbone, encoder, True), {f"encoder.{n}" for n in new}


def save_model(p: Parts, model: TaskModel, text: Any) -> Callable[[Path], None]:
    """A writer of the trained model's ``model/`` folder (for :func:`artefact.finish_run`),
    after the strategy's last word on the model (``finish``: lora merges its adapters)."""

    def write(folder: Path) -> None:
        finish = getattr(p.strategy, "finish", None)
        if finish is not None:
            finish(model)
        p.backbone.save(model, text, folder, p.task.export())

    return write


@dataclass
class Trained:
    """A finished run, loaded: its config, task (with its fitted state), model and text encoder."""

    config: RunConfig
    task: Task
    model: TaskModel
    text: Any


def load_trained(folder: Path) -> Trained:
    """The one load path for a finished run (evaluate, predict, the Python API)."""
    raw, labels = artefact.read_run(folder)
    config = validate({**raw, "output_dir": str(folder)}, str(folder / "config.yaml"))
    p = parts(config)
    try:
        p.task.load_state(labels)
        model, text = p.backbone.load_trained(
            folder / "model",
            p.task.export(),
            lambda encoder: make_model(p.task, p.backbone, encoder, False),
        )
    except NlptuneError:
        raise
    except Exception as err:  # noqa: BLE001 (missing, truncated or foreign files in the run)
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ModelError(
            f"{folder}: can't load the trained model ({type(err).__name__}: {first}); the run "
            "folder is damaged or was changed: train it again"
        ) from None
    use_text(p.task, text)
    return Trained(config, p.task, model, text)


def train_model(
    run: RunConfig,
    p: Parts,
    splits: dict[str, Dataset],
    text: Any,
    accelerator: Any,
    callbacks: Sequence[Callable[[Any], None]],
    resume: bool,
    started: float | None = None,
) -> tuple[Any, TaskModel]:
    """Load the model, apply the strategy, cache frozen outputs, run the loop (``started``:
    when this process began the run, ``time.perf_counter()``, for its wall time)."""
    import torch

    from nlptune.training import sharding
    from nlptune.training.loop import Job, fit

    t = run.trainer  # DeepSpeed: its micro-batch set, what it can't run refused, before loading
    sharding.check_deepspeed(accelerator, t.batch_size, t.grad_accum, run.strategy.type)
    torch.manual_seed(run.seed)  # the heads' initial weights
    model, new = new_model(p)
    model, plan = p.strategy.apply(model, new)
    sizes = {n: x.numel() for n, x in model.named_parameters()}
    n_train, n_all = sum(sizes[n] for n in plan.trainable), sum(sizes.values())
    logger.info(
        "strategy %s: %s of %s parameters train (%.2f%%)",
        run.strategy.type,
        f"{n_train:,}",
        f"{n_all:,}",
        100 * n_train / n_all,
    )
    model.to(accelerator.device)
    dev = eval_sample(run, p.task, splits.get("dev"), text)
    trained, cache = model, None
    if plan.cache_backbone:
        if p.task.cache_mode:
            _check_not_sharded(run, accelerator)
            # the states of the dev examples evaluated during training (a sample, or all)
            cached = {**splits, "dev": dev} if dev is not None else splits
            cache = frozen_cache(run, model, cached, text, accelerator, p.task.cache_mode)
            trained = model.with_encoder(cache)
            logger.info("frozen backbone: outputs computed once and reused every epoch")
        else:
            logger.info(
                "frozen backbone: task %s stores no backbone outputs, so the backbone runs "
                "each step",
                run.task.type,
            )
    if run.trainer.gradient_checkpointing:
        if cache is not None:
            logger.info(
                "trainer.gradient_checkpointing: not needed, the frozen backbone's outputs are "
                "cached (the backbone does not run in training steps)"
            )
        else:
            model.encoder.enable_checkpointing()
            logger.info("trainer.gradient_checkpointing: layers recompute in the backward pass")
    torch.manual_seed(run.seed)  # dropout stream
    job = Job(
        accelerator=accelerator,
        model=trained,
        plan=plan,
        update_plan=p.strategy.update,
        train=splits["train"].feats,
        dev=dev.feats if dev else None,
        evaluate=(lambda rows: p.task.evaluate(rows, dev.examples, dev.feats)) if dev else None,
        predict_step=p.task.predict_step,
        main_metric=p.task.main_metric,
        greater_is_better=p.task.greater_is_better,
        pad_id=text.pad_id,
        folder=Path(run.output_dir),
        trainer=run.trainer,
        seed=run.seed,
        cache=cache,
        callbacks=callbacks,
        resume=resume,
        eval_by_length=p.task.eval_by_length,
        prepare_batch=_prepare_batch(p.task, run.seed),
        loss_terms=getattr(p.task, "loss_terms", None),
        config=run.to_dict(),
        started=started,
    )
    state = fit(job)
    if cache is not None:
        _drop_states(run, cache, accelerator)
    return state, model


def _check_not_sharded(run: RunConfig, accelerator: Any) -> None:
    """A frozen backbone whose outputs are cached leaves only the heads to train: nothing for
    FSDP to shard (and the cache would be built for nothing)."""
    from nlptune.training import sharding

    if sharding.is_sharded(accelerator):
        raise NlptuneError(
            f"strategy.type={run.strategy.type} caches the backbone's outputs, so only the "
            "task heads train and FSDP has nothing to shard: launch with "
            "configs/accelerate/ddp.yaml instead"
        )


def unsharded(p: Parts, model: TaskModel, accelerator: Any) -> TaskModel:
    """A plain copy of a model FSDP shards (or DeepSpeed holds in bf16 with partitioned fp32
    masters), for the main process to save (the others return ``model``): every process takes
    part in gathering its parameters, which the main one loads into a model built again as
    training built it."""
    import torch

    from nlptune.training import sharding

    names = [n for n, _ in model.named_parameters()]
    weights = sharding.full_weights(model, names, accelerator)
    if not accelerator.is_main_process:
        return model
    torch.manual_seed(0)  # the heads' initial weights, replaced next
    whole, new = new_model(p)
    whole, _ = p.strategy.apply(whole, new)
    sharding.set_weights(whole, weights)
    return whole


def _check_checkpointing(run: RunConfig, p: Parts) -> None:
    """``trainer.gradient_checkpointing`` needs a family whose layers can recompute
    (``gradient_checkpointing`` on the backbone class: the transformers families)."""
    if run.trainer.gradient_checkpointing and not getattr(p.backbone, "gradient_checkpointing", 0):
        able = [n for n, b in BACKBONES if getattr(b, "gradient_checkpointing", False)]
        raise ConfigError(
            f"trainer.gradient_checkpointing=true recomputes transformer layers, which "
            f"backbone.type={run.backbone.type} has not; remove it, or use backbone.type "
            f"{' or '.join(able)}"
        )


def _prepare_batch(task: Task, seed: int) -> Callable[[dict[str, Any], int], None] | None:
    """The task's optional ``train_batch(batch, seed, epoch)`` hook (masked-LM masking), bound
    to the run's seed."""
    hook = getattr(task, "train_batch", None)
    if hook is None:
        return None
    return lambda batch, epoch: hook(batch, seed, epoch)


def frozen_cache(
    run: RunConfig,
    model: TaskModel,
    splits: dict[str, Dataset],
    text: Any,
    acc: Any,
    mode: str = "all",
) -> Any:
    """A CachedEncoder holding what the heads read of the frozen encoder (the first token's
    state when every head reads only that, else every token's), for train and dev.

    ``mode`` "disk" (extractive QA: every token of many long windows) keeps every token's
    states in bf16 files under ``output_dir/frozen_states/``, memory-mapped (not in memory);
    they are reused by a resumed run and deleted when training ends (:func:`_drop_states`)."""
    import time

    from nlptune.training.frozen_cache import (
        CachedEncoder,
        compute_states,
        states_key,
        write_states,
    )
    from nlptune.training.loop import eval_batch_size

    first = all(getattr(head, "reads", "all") == "first" for head in model.heads.values())
    started = time.perf_counter()
    options = {
        "batch_size": eval_batch_size(run.trainer),
        "device": acc.device,
        "autocast": acc.autocast,
        "accelerator": acc,
    }
    caches: dict[str, Any] = {}
    for split in ("train", "dev"):
        if split not in splits:
            continue
        features = splits[split].feats
        if mode == "disk" and not first:
            backbone = run.backbone
            key = states_key(
                features,
                backbone.path,
                backbone.init,
                run.seed if backbone.init == "random" else None,
                run.trainer.precision,
                str(acc.device.type),
            )
            path = _states_folder(run) / f"{split}.bf16"
            caches[split] = write_states(
                model.encoder, features, text.pad_id, path, key, model.hidden_size, **options
            )
        else:
            caches[split] = compute_states(model.encoder, features, first, text.pad_id, **options)
    if mode == "disk":
        logger.info(
            "frozen backbone: every token's states of %s in %s (bf16, memory-mapped; %.1fs)",
            " and ".join(caches),
            _states_folder(run),
            time.perf_counter() - started,
        )
    return CachedEncoder(caches, model.hidden_size)


def _states_folder(run: RunConfig) -> Path:
    return Path(run.output_dir) / "frozen_states"


def _drop_states(run: RunConfig, cache: Any, acc: Any) -> None:
    """Close the memory-mapped states of a finished training and delete their files."""
    import shutil

    for states in cache.caches.values():
        close = getattr(states, "close", None)
        if close is not None:
            close()
    acc.wait_for_everyone()
    if acc.is_main_process:
        shutil.rmtree(_states_folder(run), ignore_errors=True)


def score_split(
    run: RunConfig, task: Task, model: TaskModel, data: Dataset, accelerator: Any, pad_id: int
) -> dict[str, float]:
    """Metrics of the (best) model on ``data``, computed with the full model."""
    from nlptune.training import sharding
    from nlptune.training.evaluate import stream_features
    from nlptune.training.loop import eval_batch_size

    model.eval()
    rows = stream_features(
        lambda batch: task.predict_step(model, batch),
        data.feats,
        pad_id,
        batch_size=eval_batch_size(run.trainer),
        device=accelerator.device,
        autocast=accelerator.autocast,
        accelerator=accelerator,
        by_length=task.eval_by_length,
    )
    with sharding.gathered(model, accelerator):
        return rounded(task.evaluate(rows, data.examples, data.feats))


def eval_sample(run: RunConfig, task: Task, dev: Dataset | None, text: Any) -> Dataset | None:
    """The dev examples evaluated during training: all, or a fixed random sample of
    ``trainer.eval_samples`` (seeded; the final evaluation uses the whole dev set)."""
    n = run.trainer.eval_samples
    if dev is None or n is None or n >= len(dev.examples):
        return dev
    import numpy as np

    split = getattr(task, "hold_out", None)  # whole units where the task has them (documents)
    if split is not None:
        examples = split(dev.examples, n / len(dev.examples), run.seed)[1]
    else:
        rng = np.random.default_rng(run.seed)
        examples = [dev.examples[i] for i in np.sort(rng.choice(len(dev.examples), n, False))]
    logger.info(
        "evaluating on %d of %d dev examples during training (trainer.eval_samples); the whole "
        "dev set at the end",
        len(examples),
        len(dev.examples),
    )
    return Dataset(dev.path, examples, task.featurize(examples, text), part=f"sample-{n}")
