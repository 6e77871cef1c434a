"""``nlptune export RUN --format onnx -o OUT``: a finished run as an ONNX model.

``OUT`` holds ``model.onnx`` (dynamic batch and length; inputs named as the batch keys:
``input_ids``, ``attention_mask``, ``token_type_ids`` ...; outputs the model's: ``logits``, or
``start_logits`` and ``end_logits``), ``tokenizer/``, and the run's ``config.yaml``,
``labels.json``, ``metrics.json`` and ``meta.json``, plus ``onnx.json`` (what was exported, and
the check against PyTorch). ``--int8`` adds ``model.int8.onnx``, quantised dynamically by
onnxruntime (int8 weights, activations quantised on the fly).

:func:`nlptune.onnx_runner.load` gives a :class:`~nlptune.predict.Predictor` whose model is an
onnxruntime session: featurizing, batching and decoding are nlptune's own, so labels, entity
spans and QA answers come out as ``nlptune predict`` writes them; it needs onnxruntime, the
tokenizer and nlptune, not the PyTorch weights. The export checks it against PyTorch on the
run's dev set (:func:`nlptune.onnx_runner.compare`). onnx and onnxruntime are imported only
when used (``pip install 'nlptune[onnx]'``).

Exported: the tasks whose prediction is one forward pass of a transformers encoder
(``text_classification``, ``sentence_pair``, ``sequence_labelling`` without a CRF,
``extractive_qa``, ``word_sense``). Refused with a reason: text_to_text (generation), masked_lm,
a CRF (Viterbi), static word vectors.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlptune.errors import NlptuneError
from nlptune.onnx_runner import INSTALL, compare, require

if TYPE_CHECKING:
    import argparse

logger = logging.getLogger("nlptune")
TASKS = (
    "text_classification",
    "sentence_pair",
    "sequence_labelling",
    "extractive_qa",
    "word_sense",
)
COPIED = ("config.yaml", "labels.json", "metrics.json", "meta.json")
SAMPLES = ["Peter lives in Paris , France .", "a gripping film", "we met at the cafe"]


def export(
    run: str | Path,
    out: str | Path,
    int8: bool = False,
    opset: int = 17,
    overwrite: bool = False,
    check: str | None = None,
) -> dict[str, Any]:
    """Export the finished run ``run`` to the folder ``out``; returns what ``onnx.json`` says.

    ``check``: a labelled file (the run's dev set by default, when it exists; ``"none"`` to
    skip) on which the ONNX outputs are compared with PyTorch's (:func:`compare`)."""
    require()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:  # onnxruntime's quantisation calls logging.basicConfig: messages would show twice
        return _export(Path(run), Path(out), int8, opset, overwrite, check)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _export(
    run: Path, out: Path, int8: bool, opset: int, overwrite: bool, check: str | None
) -> dict[str, Any]:
    import torch

    from nlptune.predict import Predictor

    trained = Predictor.from_dir(run, device="cpu")  # config, task, model, text
    _refuse(trained.config, trained.task)
    data = _check_data(check, trained.config.data.dev)
    _clear(out, overwrite)
    model = trained.model.eval()
    batch = _sample_batch(trained)
    names = [k for k in batch if k != "index"]
    outputs = [k for k in model(**batch) if "." not in k and k != "loss"]
    graph = _Graph(model, names, outputs)
    axes = {n: {0: "batch", 1: "length"} if batch[n].dim() > 1 else {0: "batch"} for n in names}
    with torch.no_grad():
        shapes = {k: v.dim() for k, v in model(**batch).items()}
    for k in outputs:
        axes[k] = {0: "batch", 1: "length"} if shapes[k] > 2 else {0: "batch"}
    staging = out / ".staging"
    staging.mkdir(parents=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing notes on transformers' shape checks
        torch.onnx.export(
            graph,
            tuple(batch[n] for n in names),
            str(staging / "model.onnx"),
            input_names=names,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=opset,
            **_tracing(torch.onnx.export),
        )
    trained.text.tokenizer.save_pretrained(staging / "tokenizer")
    for name in COPIED:
        if (run / name).is_file():
            shutil.copy2(run / name, staging / name)
    if int8:
        _quantize(staging / "model.onnx", staging / "model.int8.onnx")
    for item in staging.iterdir():
        item.replace(out / item.name)
    staging.rmdir()
    summary: dict[str, Any] = {
        "run": str(run),
        "task": trained.config.task.type,
        "inputs": names,
        "outputs": outputs,
        "opset": opset,
        "files": sorted(p.name for p in out.iterdir()),
    }
    if data is not None:
        summary["check"] = compare(run, out, data)
    (out / "onnx.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


class _Graph:
    """The model as positional tensors in, its output tensors out (what ONNX traces)."""

    def __new__(cls, model: Any, names: list[str], outputs: list[str]) -> Any:
        import torch

        class Graph(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
                out = self.model(**dict(zip(names, tensors, strict=True)))
                return tuple(out[k] for k in outputs)

        return Graph().eval()


def _tracing(export: Any) -> dict[str, Any]:
    """The TorchScript tracer (torch >= 2.9 defaults to the torch.export one, which needs
    onnxscript); older torch has no ``dynamo`` switch and traces anyway."""
    import inspect

    return {"dynamo": False} if "dynamo" in inspect.signature(export).parameters else {}


def _refuse(config: Any, task: Any) -> None:
    kind, family = config.task.type, config.backbone.type
    if family != "hf_encoder":
        raise NlptuneError(
            f"ONNX export is for transformers encoders (backbone.type hf_encoder); this run is "
            f"{family}: use it with `nlptune serve` or `nlptune predict`"
        )
    if kind not in TASKS:
        why = "generates text step by step" if kind == "text_to_text" else "is not exported"
        raise NlptuneError(f"{kind} {why}; ONNX export supports {', '.join(TASKS)}")
    if getattr(task, "crf", False):
        raise NlptuneError(
            "a CRF tagger decodes with Viterbi, which the ONNX graph does not hold; train with "
            "task.crf: false to export, or serve the run with `nlptune serve`"
        )


def _check_data(check: str | None, dev: str | None) -> str | None:
    """The labelled file to check the export on: ``--check`` (which must exist), else the run's
    dev set where it is found; None for none."""
    from nlptune.inputs import input_exists

    if check == "none":
        return None
    if check is not None:
        if not input_exists(Path(check)):
            raise NlptuneError(f"--check {check}: file not found")
        return check
    if dev and input_exists(Path(dev)):
        return str(dev)
    if dev:
        logger.warning("warning: the run's dev set %s is not here: the export is not checked", dev)
    return None


def _clear(out: Path, overwrite: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not (overwrite and (out / "onnx.json").is_file()):
            hint = " (add --overwrite to replace it)" if (out / "onnx.json").is_file() else ""
            raise NlptuneError(f"{out} exists and is not empty{hint}; name a new folder")
        for item in out.iterdir():
            shutil.rmtree(item) if item.is_dir() else item.unlink()


def _sample_batch(trained: Any) -> dict[str, Any]:
    """A padded batch of two inputs of different lengths, for tracing."""
    from nlptune.data.batching import collate
    from nlptune.serve_requests import example_input, input_form

    task = trained.task
    first = example_input(task, trained.config.task.type)
    if input_form(task, trained.config.task.type) == "text":
        items = [first, f"{SAMPLES[1]} {first}"]
    else:
        items = [first, {k: f"{v} {v}" for k, v in first.items()}]
    examples = [task.input_example(x, f"sample {i}") for i, x in enumerate(items)]
    features = task.featurize(examples, trained.text, labelled=False)
    return dict(collate(features, list(range(len(features))), trained.text.pad_id, values=False))


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process first (shape inference)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def add_parser(sub: Any) -> None:
    """``nlptune export``'s arguments (``sub``: the CLI's subparsers)."""
    parser = sub.add_parser(
        "export",
        help="export a finished run to ONNX (model, tokenizer, labels) for onnxruntime "
        f"(needs {INSTALL.split(': ', 1)[1]})",
    )
    parser.add_argument("run", help="run directory")
    parser.add_argument("--format", default="onnx", choices=["onnx"], help="onnx (the only one)")
    parser.add_argument("-o", "--output", required=True, help="a new folder for the export")
    parser.add_argument("--int8", action="store_true", help="also a dynamic int8 quantised model")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (17)")
    parser.add_argument(
        "--check",
        metavar="DATA",
        help="labelled data to compare ONNX with PyTorch on (default: the run's dev set; "
        "'none' skips the check)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export")


def main(args: argparse.Namespace) -> int:
    """Run ``nlptune export`` as parsed: print the summary as one JSON line."""
    summary = export(args.run, args.output, args.int8, args.opset, args.overwrite, args.check)
    check = summary.get("check")
    if check:
        logger.info(
            "ONNX vs PyTorch on %s (%d examples): %.2f%% same outputs, largest output "
            "difference %.2g; %s examples/s vs %s",
            check["data"],
            check["examples"],
            100 * check["same_outputs"],
            check["max_abs_diff"],
            check["onnx"]["examples_per_s"],
            check["pytorch"]["examples_per_s"],
        )
    logger.info("exported to %s", args.output)
    print(json.dumps(summary))
    return 0
