"""The run config: typed, strict, YAML plus dotted ``key=value`` overrides.

Top-level sections are ``task``, ``data``, ``backbone``, ``strategy`` and ``trainer``, plus
``seed`` and ``output_dir``. In ``task``, ``backbone`` and ``strategy`` the ``type`` key picks the
registry entry, whose own ``Config`` class lists the keys that section accepts. Every field
carries a one-line description; the same text feeds ``nlptune list keys``, the README's config
reference and error messages.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nlptune.errors import ConfigError, did_you_mean
from nlptune.registry import BACKBONES, STRATEGIES, TASKS

Column = str | int
SEED_MAX = 2**32 - 1  # numpy's seeds are 32-bit


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, and so are nan and inf (a float
    key that may be infinite says so itself)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class TaskConfig(Section):
    """Base of task sections; each task registers a subclass as ``Task.Config``."""

    type: str = Field("text_classification", description="task name (nlptune list tasks)")
    metric: str | None = Field(
        None, description="main metric for early stopping and the best checkpoint (task default)"
    )

    def check_run(self, run: RunConfig, where: str) -> None:
        """Refuse combinations with other sections (ConfigError naming the keys)."""

    @model_validator(mode="after")
    def _distinct_labels(self) -> TaskConfig:
        labels = getattr(self, "labels", None)
        if isinstance(labels, list):
            twice = sorted({str(x) for x in labels if labels.count(x) > 1})
            if twice:
                raise ValueError(f"task.labels names {', '.join(twice)} more than once")
        return self


class DataConfig(Section):
    train: str | None = Field(None, description="training data: a file, a saved dataset, or hf id")
    dev: str | None = Field(None, description="development data, evaluated during training")
    test: str | None = Field(None, description="test data, evaluated once with the best model")
    format: Literal[
        "auto",
        "csv",
        "tsv",
        "jsonl",
        "hf",
        "conll",
        "conllu",
        "streusle",
        "semeval",
        "squad",
        "text",
    ] = Field(
        "auto",
        description="file format; auto = from the file name and the task (.csv .tsv .jsonl, "
        "folder = hf; conll/conllu for tagging; .conllulex = streusle, .xml = semeval; SQuAD "
        ".json = squad; masked_lm: .txt[.gz] or a folder of them = text, one line each)",
    )
    text: Column = Field("text", description="column with the text (name or 0-based index)")
    text_pair: Column | None = Field(None, description="column with the second text of a pair")
    label: Column | list[Column] = Field(
        "label", description="label column; a list of columns (0/1 each) means multi-label"
    )
    target: Column = Field("target", description="text_to_text: column with the target text")
    source_lang: str | None = Field(
        None,
        description="text_to_text: parallel text files, data.train is the prefix of "
        "<train>.<source_lang>[.gz]",
    )
    target_lang: str | None = Field(
        None, description="text_to_text: the target side's suffix (<train>.<target_lang>[.gz])"
    )
    label_sep: str | None = Field(
        None, description="separator that splits one label cell into several labels (multi-label)"
    )
    header: bool | None = Field(
        None, description="CSV/TSV first row is a header; null = yes when columns are named"
    )
    quoting: Literal["auto", "none", "minimal"] = Field(
        "auto", description="CSV quoting; auto = none for TSV (as the GLUE files), minimal for CSV"
    )
    hf_subset: str | None = Field(None, description="configuration name of a hub dataset")
    dev_fraction: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="without data.dev: hold out this fraction of train as dev (per lemma for "
        "word_sense; seeded)",
    )
    token_column: int = Field(0, description="CoNLL: 0-based column of the words")
    tag_column: int = Field(-1, description="CoNLL: 0-based column of the tags (-1: the last)")
    scheme: Literal["iob1", "iob2", "bioes"] = Field(
        "iob2", description="CoNLL: the tag scheme of the file (converted to the run's scheme)"
    )
    conllu_column: Literal["upos", "xpos"] = Field("upos", description="CoNLL-U: which tags")
    cache_dir: str | None = Field(
        None, description="tokenized-feature cache (default $NLPTUNE_CACHE or ~/.cache/nlptune)"
    )


class BackboneConfig(Section):
    type: str = Field("hf_encoder", description="backbone family (nlptune list backbones)")
    path: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="local folder, hub id, or packaged model id of the pre-trained model",
    )
    max_length: int = Field(
        256, ge=8, description="longest input in subword tokens; longer inputs are truncated"
    )
    init: Literal["pretrained", "random"] = Field(
        "pretrained",
        description="pretrained = the checkpoint's weights; random = the same architecture (and "
        "tokenizer or vocabulary) with fresh weights: training from scratch",
    )


class StrategyConfig(Section):
    """Base of strategy sections; each strategy registers a subclass as ``Strategy.Config``."""

    type: str = Field("full", description="which parameters train (nlptune list strategies)")
    freeze_embeddings: bool | None = Field(
        None,
        description="keep the word-embedding matrix fixed; null = the family's default: true for "
        "hf_encoder (saves ~half of a small model's optimizer work; position and type embeddings "
        "still train), false for hf_seq2seq (the matrix is also its output layer) and "
        "static_vectors (frozen keeps the vectors fixed, full fine-tunes them)",
    )


Tracker = Literal["tensorboard", "mlflow", "wandb", "aim", "comet_ml", "clearml", "dvclive"]


class TrainerConfig(Section):
    epochs: float = Field(
        3, gt=0, allow_inf_nan=True, description="passes over the training data"
    )  # .inf with max_steps: until max_steps
    max_steps: int | None = Field(
        None, ge=1, description="stop after this many optimizer steps (overrides epochs)"
    )
    min_steps: int = Field(
        300,
        ge=0,
        description="train at least this many optimizer steps: small data gets more epochs "
        "(ignored with max_steps; 0: epochs only)",
    )
    batch_size: int = Field(32, ge=1, description="examples per optimizer step, over all processes")
    eval_batch_size: int | None = Field(None, ge=1, description="examples per evaluation batch")
    grad_accum: int = Field(1, ge=1, description="micro-batches accumulated per optimizer step")
    lr: float = Field(5e-5, gt=0, description="peak learning rate of the backbone")
    head_lr: float | None = Field(
        None, gt=0, description="peak learning rate of the task head (default: lr)"
    )
    weight_decay: float = Field(
        0.01, ge=0, description="AdamW weight decay (not on bias/LayerNorm)"
    )
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="fraction of steps spent warming up")
    warmup_steps: int | None = Field(
        None, ge=0, description="warm-up steps (replaces warmup_ratio)"
    )
    max_grad_norm: float | None = Field(1.0, gt=0, description="gradient clipping norm (null: off)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto = bf16 where the CPU/GPU supports it, else fp32"
    )
    eval_samples: int | None = Field(
        None,
        ge=1,
        description="evaluate on a fixed random sample of this many dev examples during training "
        "(the full dev set at the end; null: all)",
    )
    eval_every: int | None = Field(
        None, ge=1, description="evaluate every N optimizer steps (null: after each epoch)"
    )
    save_every: int | None = Field(
        None, ge=1, description="write a resume checkpoint every N steps (null: at each evaluation)"
    )
    early_stopping_patience: int | None = Field(
        None, ge=1, description="stop after N evaluations without improvement (null: never)"
    )
    group_by_length: bool = Field(True, description="batch examples of similar length together")
    log_every: int = Field(10, ge=1, description="log loss and learning rate every N steps")
    num_threads: int | None = Field(None, ge=1, description="CPU threads (null: torch default)")
    progress: bool = Field(True, description="show a progress bar")
    report_to: list[Tracker] = Field(
        ["tensorboard"],
        description="experiment trackers (accelerate's): tensorboard (event files under the "
        "run), mlflow, wandb, aim, comet_ml, clearml, dvclive; [] for none",
    )
    tensorboard: bool = Field(
        True, description="false drops tensorboard from report_to (the older switch)"
    )
    keep_checkpoints: bool = Field(
        False, description="keep checkpoints/ (resume state, best weights) after a finished run"
    )
    prefetch: int | None = Field(
        None,
        ge=0,
        description="training batches built ahead on a background thread while the model "
        "steps (0: built on the training thread; null: 2 on a GPU, 0 on a CPU, where the "
        "thread costs more than it saves)",
    )
    pad_to_multiple_of: int | None = Field(
        None,
        ge=1,
        description="pad every batch's length up to a multiple of N (few distinct shapes, for "
        "trainer.compile; null: to the batch's longest item)",
    )
    compile: bool = Field(
        False,
        description="torch.compile the model (pays off on a GPU with trainer.pad_to_multiple_of; "
        "see bench/README.md)",
    )
    gradient_checkpointing: bool = Field(
        False,
        description="recompute each transformer layer's activations in the backward pass: "
        "far less memory for long inputs (extractive QA), about a third more time",
    )

    @model_validator(mode="after")
    def _one_warmup(self) -> TrainerConfig:
        if self.warmup_steps is not None and "warmup_ratio" in self.model_fields_set:
            raise ValueError(
                "can't set both trainer.warmup_ratio and trainer.warmup_steps; choose one"
            )
        if self.grad_accum > self.batch_size:
            raise ValueError(
                f"trainer.grad_accum={self.grad_accum} is more than trainer.batch_size="
                f"{self.batch_size}: every micro-batch needs an example; lower grad_accum"
            )
        return self


class RunConfig(Section):
    task: TaskConfig
    data: DataConfig = Field(default_factory=DataConfig)  # type: ignore[arg-type]
    backbone: BackboneConfig = Field(default_factory=BackboneConfig)  # type: ignore[arg-type]
    strategy: StrategyConfig
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)  # type: ignore[arg-type]
    seed: int = Field(
        42,
        ge=0,
        le=SEED_MAX,
        strict=True,  # true is not a seed
        description="random seed for weights, data order and dropout",
    )
    output_dir: str = Field("runs/run", description="run directory (the artefact)")

    def to_dict(self) -> dict[str, Any]:
        """The resolved config (every default filled in) as plain data."""
        return {
            name: (
                getattr(self, name).model_dump()
                if isinstance(getattr(self, name), BaseModel)
                else getattr(self, name)
            )
            for name in type(self).model_fields
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_TYPED_SECTIONS = {
    "task": (TASKS, "text_classification"),
    "backbone": (BACKBONES, "hf_encoder"),
    "strategy": (STRATEGIES, "full"),
}
_SECTIONS: dict[str, type[Section]] = {
    "data": DataConfig,
    "trainer": TrainerConfig,
}


def section_class(section: str, type_name: str | None = None) -> type[Section]:
    """The config class for ``section`` (for typed sections, of the entry ``type_name``)."""
    if section in _TYPED_SECTIONS:
        registry, default = _TYPED_SECTIONS[section]
        cls: type[Section] = registry.get(type_name or default).Config
        return cls
    return _SECTIONS[section]


def load_config(source: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML file (or a mapping), apply ``key=value`` overrides, validate strictly.

    Raises:
        ConfigError: for a missing file, bad YAML, an unknown key (with a close-match hint),
            a wrong type or an impossible combination.
    """
    raw, name = read_raw(source, overrides)
    return validate(raw, name)


def read_raw(
    source: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()
) -> tuple[dict[str, Any], str]:
    """The raw config of a YAML file (``output_dir`` defaults to ``runs/<file stem>``) or a
    mapping, with ``overrides`` applied, not validated; and its name for messages."""
    name = "<dict>"
    if isinstance(source, Mapping):
        raw: Any = deep_copy(source)
    else:
        path = Path(source)
        name = str(path)
        raw = read_yaml(path)
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        raw.setdefault("output_dir", f"runs/{path.stem}")
    for item in overrides:
        apply_override(raw, item)
    return raw, name


class _StrictLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key '{key}' is given twice (lines {seen[key]} and {line})",
                key_node.start_mark,
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def read_yaml(path: Path) -> Any:
    """A YAML config file's content, or ConfigError: missing, not UTF-8 (the line named), not
    valid YAML, or a key given twice."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    from nlptune.data.textfile import check_utf8
    from nlptune.errors import DataError

    try:
        check_utf8(path)  # UTF-16/32: the encoding named, not "from Latin-1"
    except DataError as err:
        raise ConfigError(str(err)) from None
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x}); save the file as "
            "UTF-8 (from Latin-1: iconv -f latin1 -t utf-8)"
        ) from None
    try:
        return yaml.load(text, Loader=_StrictLoader) or {}  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None


def validate(raw: dict[str, Any], name: str = "<dict>") -> RunConfig:
    known = list(RunConfig.model_fields)
    for key in raw:
        if key not in known:
            raise ConfigError(f"{name}: unknown key '{key}'{did_you_mean(key, known)}")
    _check_text(raw, name)
    sections: dict[str, Any] = {}
    for section in [*_TYPED_SECTIONS, *_SECTIONS]:
        body = raw.get(section) or {}
        if not isinstance(body, dict):
            raise ConfigError(f"{name}: '{section}' must be a mapping, got {body!r}")
        kind = body.get("type")
        if kind is not None and (not isinstance(kind, str) or not kind.strip()):
            raise ConfigError(
                f"{name}: {section}.type must be a name (nlptune list {section}s), got {kind!r}"
            )
        cls = section_class(section, kind)
        try:
            sections[section] = cls.model_validate(body)
        except ValidationError as err:
            raise ConfigError(_format_errors(name, section, cls, err)) from None
    rest = {k: v for k, v in raw.items() if k not in sections}
    try:
        config = RunConfig.model_validate({**sections, **rest})
    except ValidationError as err:
        raise ConfigError(_format_errors(name, "", RunConfig, err)) from None
    _check_combinations(config, name)
    return config


def _check_text(value: Any, name: str, key: str = "") -> None:
    """Refuse a string that is not valid Unicode text: a path made of bytes that are not UTF-8
    (``os.fsdecode`` keeps them as lone surrogates), which the model and checkpoint files
    (safetensors) can't be opened under."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_text(v, name, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(v, name, f"{key}[{i}]")
    elif isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(
                f"{printable(name)}: {key}: '{printable(value)}' is not valid UTF-8; rename the "
                "file or folder, or give a UTF-8 name"
            ) from None


def printable(text: str) -> str:
    """``text`` (a path) with what is not UTF-8 written as escapes (a byte 0xff as ``\\xff``)."""
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _check_combinations(config: RunConfig, name: str) -> None:
    trainer = config.trainer
    if not config.output_dir.strip():
        raise ConfigError(f"{name}: output_dir is empty; name the run's folder, e.g. runs/my-run")
    if trainer.precision == "fp16" and not _cuda_available():
        raise ConfigError(f"{name}: trainer.precision=fp16 needs a GPU; use bf16 or auto on CPU")
    if config.data.train is None:
        raise ConfigError(f"{name}: data.train is not set; give a file, e.g. data.train=train.tsv")
    if trainer.max_steps is None and not math.isfinite(trainer.epochs):
        raise ConfigError(f"{name}: trainer.epochs must be finite")
    config.task.check_run(config, name)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _format_errors(name: str, section: str, cls: type[BaseModel], err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in (section, *e["loc"]) if p != "")
        leaf = str(e["loc"][-1]) if e["loc"] else section
        if e["type"] == "extra_forbidden":
            hint = did_you_mean(leaf, cls.model_fields)
            lines.append(f"unknown key '{key}'{hint}")
        else:
            desc = cls.model_fields[leaf].description if leaf in cls.model_fields else None
            about = f" ({desc})" if desc else ""
            got = e.get("input")
            lines.append(f"{key}: {e['msg']}, got {got!r}{about}")
    return f"{name}: " + "; ".join(lines)


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``a.b.c=value`` override; the value is YAML (``3``, ``null``, ``[a]``)."""
    if "=" not in item:
        raise ConfigError(f"override '{item}' must look like key=value, e.g. trainer.epochs=2")
    key, _, text = item.partition("=")
    try:
        value = yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        value = text
    if not isinstance(value, (str, bool, int, float, list, dict, type(None))):
        value = text  # dates and other YAML types stay strings
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override '{item}': '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def deep_copy(value: Any) -> Any:
    """A copy of plain config data (mappings become dicts, lists are copied)."""
    if isinstance(value, Mapping):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def iter_keys(builtin: bool = False) -> Iterator[tuple[str, str, Any, str]]:
    """Yield ``(key, type, default, description)`` for every config key of every registered
    entry (``builtin``: of nlptune's own entries only, not plugins'); used by ``nlptune list
    keys`` and the README's config reference. A key that only some entries of a section accept
    names them in brackets."""
    for field, info in RunConfig.model_fields.items():
        if field in _TYPED_SECTIONS:
            registry = _TYPED_SECTIONS[field][0]
            rows: dict[str, tuple[Any, list[str]]] = {}
            entries = [
                (n, e) for n, e in registry if not builtin or e.__module__.startswith("nlptune.")
            ]
            for entry_name, entry in entries:
                for key, sub in entry.Config.model_fields.items():
                    rows.setdefault(key, (sub, []))[1].append(entry_name)
            for key, (sub, owners) in rows.items():
                default = "(entry name)" if key == "type" else sub.default
                only = (
                    ""
                    if key == "type" or len(owners) == len(entries)
                    else (f" [{', '.join(owners)}]")
                )
                yield (
                    f"{field}.{key}",
                    _type_name(sub.annotation),
                    default,
                    (sub.description or "") + only,
                )
        elif field in _SECTIONS:
            for key, sub in _SECTIONS[field].model_fields.items():
                yield (
                    f"{field}.{key}",
                    _type_name(sub.annotation),
                    sub.default,
                    sub.description or "",
                )
        else:
            yield field, _type_name(info.annotation), info.default, info.description or ""


def reference_markdown() -> str:
    """The config reference as a Markdown table (kept in README.md; a test compares them)."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for key, kind, default, doc in iter_keys(builtin=True):
        lines.append(f"| `{key}` | {kind} | `{yaml_value(default)}` | {doc.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def yaml_value(value: Any) -> str:
    """A default as it is written in a YAML config: null, true, [a, b], '' for an empty string
    (``(entry name)`` for a registry entry's own type)."""
    if value == "(entry name)":
        return str(value)
    shown = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return shown.removesuffix("...").strip()


def _type_name(annotation: Any) -> str:
    args = get_args(annotation)
    if get_origin(annotation) is Literal:
        return " / ".join(str(a) for a in args)
    if args and get_origin(annotation) in (UnionType, Union):
        return " or ".join(_type_name(a) for a in args)
    if get_origin(annotation) is list:
        return f"list of {_type_name(args[0])}"
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))
