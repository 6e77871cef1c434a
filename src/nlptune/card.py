"""The model card: ``model/README.md`` in the Hugging Face format (YAML metadata, then text), so
a run's ``model/`` folder is ready for ``huggingface-cli upload``: base model, task, labels,
data files with their sha256, metrics, the training config and how to load the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from nlptune.backbones.base import Export

# export kind -> (pipeline tag, transformers class)
KINDS = {
    "sequence_classification": ("text-classification", "AutoModelForSequenceClassification"),
    "token_classification": ("token-classification", "AutoModelForTokenClassification"),
    "question_answering": ("question-answering", "AutoModelForQuestionAnswering"),
    "seq2seq_lm": ("text2text-generation", "AutoModelForSeq2SeqLM"),
    "masked_lm": ("fill-mask", "AutoModelForMaskedLM"),
}


def write_card(
    path: Path,
    config: dict[str, Any],
    export: Export,
    labels: dict[str, Any],
    metrics: dict[str, Any],
    meta: dict[str, Any],
) -> None:
    """Write the card for a run whose resolved config is ``config``."""
    task = str(config["task"]["type"])
    backbone = config.get("backbone") or {}
    name = Path(str(config.get("output_dir", "run"))).name
    transformers = backbone.get("type") != "static_vectors" and export.kind in KINDS
    tag, auto = KINDS.get(export.kind, ("feature-extraction", "AutoModel"))
    base = _hub_id(backbone)
    header: dict[str, Any] = {"library_name": "transformers" if transformers else "nlptune"}
    if base:
        header["base_model"] = base
    header["pipeline_tag"] = tag
    header["tags"] = ["nlptune", task]
    results = _results(task, tag, metrics, meta)
    if results:
        header["model-index"] = [{"name": name, "results": results}]
    front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True)
    text = [f"---\n{front}---\n", f"# {name}\n"]
    origin = (
        f"trained from randomly initialised weights (the architecture and tokenizer of "
        f"`{backbone.get('path')}`)"
        if backbone.get("init") == "random"
        else f"fine-tuned from `{backbone.get('path')}`"
    )
    strategy = (config.get("strategy") or {}).get("type", "full")
    text.append(f"A `{task}` model {origin} with nlptune (strategy `{strategy}`).\n")
    names = labels.get("labels") or list(export.label_names)
    if names:
        shown = ", ".join(f"`{n}`" for n in names[:50])
        more = f" and {len(names) - 50} more" if len(names) > 50 else ""
        text.append(f"## Labels\n\n{len(names)} labels: {shown}{more}.\n")
    text.append(_data_section(meta))
    text.append(_metrics_section(metrics))
    text.append(_load_section(transformers, export, tag, auto))
    body = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
    text.append(f"## Training config\n\n```yaml\n{body}```\n")
    versions = ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items() if v)
    if versions:
        text.append(f"Trained with {versions}; seed {meta.get('seed')}.\n")
    path.write_text("\n".join(text), encoding="utf-8")


def _hub_id(backbone: dict[str, Any]) -> str | None:
    """The base model as a hub id (what ``base_model`` holds), or None for a local folder or
    random weights."""
    path = str(backbone.get("path") or "")
    if not path or backbone.get("init") == "random" or Path(path).exists():
        return None
    if path.startswith((".", "/", "~")) or path.count("/") > 1:
        return None
    return path


def _results(
    task: str, tag: str, metrics: dict[str, Any], meta: dict[str, Any]
) -> list[dict[str, Any]]:
    out = []
    for split in ("dev", "test"):
        values = metrics.get(split)
        if not isinstance(values, dict):
            continue
        source = ((meta.get("data") or {}).get(split) or {}).get("path", split)
        numbers = [
            {"type": k, "value": v, "name": f"{split} {k}"}
            for k, v in values.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        if numbers:
            out.append(
                {
                    "task": {"type": tag, "name": task},
                    "dataset": {"name": Path(str(source)).name, "type": "custom", "split": split},
                    "metrics": numbers,
                }
            )
    return out


def _data_section(meta: dict[str, Any]) -> str:
    rows = [
        f"| {split} | `{info.get('path')}` | `{info.get('sha256')}` |"
        for split, info in (meta.get("data") or {}).items()
    ]
    if not rows:
        return ""
    return "## Data\n\n| split | file | sha256 |\n|---|---|---|\n" + "\n".join(rows) + "\n"


def _metrics_section(metrics: dict[str, Any]) -> str:
    lines = ["## Metrics\n"]
    for split in ("dev", "test"):
        values = metrics.get(split)
        if isinstance(values, dict):
            shown = json.dumps(values, ensure_ascii=False)
            lines.append(f"{split}: `{shown}`\n")
    steps = metrics.get("steps")
    if steps is not None:
        lines.append(
            f"{steps} optimizer steps ({metrics.get('epochs_done')} epochs), best at step "
            f"{metrics.get('best_step')}; {metrics.get('train_seconds')} s of training.\n"
        )
    return "\n".join(lines) if len(lines) > 1 else ""


def _load_section(transformers: bool, export: Export, tag: str, auto: str) -> str:
    nlptune = (
        "With nlptune (the whole run folder; this model folder is its `model/`):\n\n"
        "```python\nimport nlptune\n\n"
        'predictor = nlptune.Predictor.from_dir("RUN_DIR")\n'
        'predictor.predict(["your text"])\n```\n'
    )
    if not transformers:
        return f"## How to use\n\n{nlptune}"
    note = ""
    if export.kind == "token_classification" and export.extra == "crf":
        note = (
            f"\nWith a CRF head, the transitions are in `{export.extra}.safetensors`: "
            "transformers alone decodes each word's best tag without them; nlptune uses them.\n"
        )
    # transformers 5 has pipelines for these; QA and text-to-text load as model + tokenizer
    piped = tag in ("text-classification", "token-classification", "fill-mask")
    imports = f"{auto}, AutoTokenizer" + (", pipeline" if piped else "")
    lines = [
        f"from transformers import {imports}",
        "",
        f'model = {auto}.from_pretrained("PATH_TO_THIS_FOLDER")',
        'tokenizer = AutoTokenizer.from_pretrained("PATH_TO_THIS_FOLDER")',
    ]
    if piped:
        lines.append(f'pipe = pipeline("{tag}", model="PATH_TO_THIS_FOLDER")')
    if tag == "text2text-generation":
        lines.append('ids = model.generate(**tokenizer(["your text"], return_tensors="pt"))')
        lines.append("tokenizer.batch_decode(ids, skip_special_tokens=True)")
    code = "\n".join(lines)
    return f"## How to use\n\n```python\n{code}\n```\n{note}\n{nlptune}"
