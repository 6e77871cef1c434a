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

Exported: every task on the families nlptune ships (``hf_encoder``, ``hf_seq2seq``,
``static_vectors``). A CRF tagger's graph gives the emission scores (its transitions go to
``crf.safetensors``; the runner decodes with Viterbi); an encoder-decoder becomes
``encoder.onnx`` and ``decoder.onnx`` plus ``generation_config.json``, and the runner generates
(:mod:`nlptune.onnx_seq2seq`). Refused with a reason: plugin families; generation settings the
runner does not implement.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlptune.errors import NlptuneError
from nlptune.onnx_runner import INSTALL, compare, require

if TYPE_CHECKING:
    import argparse

logger = logging.getLogger("nlptune")
FAMILIES = ("hf_encoder", "hf_seq2seq", "static_vectors")
CRF_FILE = "crf.safetensors"
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
    from nlptune.predict import Predictor

    trained = Predictor.from_dir(run, device="cpu")  # config, task, model, text
    _refuse(trained.config)
    data = _check_data(check, trained.config.data.dev)
    _clear(out, overwrite)
    created = not out.exists()
    staging = out / ".staging"
    staging.mkdir(parents=True)
    summary: dict[str, Any] = {"run": str(run), "task": trained.config.task.type}
    try:
        summary.update(_write(trained, run, staging, int8, opset))
    except BaseException:  # nothing half-written stays behind
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    for item in staging.iterdir():
        item.replace(out / item.name)
    staging.rmdir()
    summary["opset"] = opset
    summary["files"] = sorted(p.name for p in out.iterdir())
    if data is not None:
        summary["check"] = compare(run, out, data)
    (out / "onnx.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _write(trained: Any, run: Path, staging: Path, int8: bool, opset: int) -> dict[str, Any]:
    """The graphs, the text encoder and the run's files, into ``staging``."""
    family = trained.config.backbone.type
    summary: dict[str, Any] = {}
    if family == "hf_seq2seq":
        from nlptune.onnx_seq2seq import export_graphs

        export_graphs(trained, sample_batch(trained), staging, opset, _tracing())
        summary["graphs"] = ["encoder.onnx", "decoder.onnx"]
    else:
        summary.update(_export_forward(trained, staging, opset))
    save_text(trained.text, family, staging / "tokenizer")
    for name in COPIED:
        if (run / name).is_file():
            shutil.copy2(run / name, staging / name)
    if int8:
        for graph in sorted(staging.glob("*.onnx")):
            _quantize(graph, graph.with_suffix(".int8.onnx"))
    return summary


def _export_forward(trained: Any, staging: Path, opset: int) -> dict[str, Any]:
    """``model.onnx``: the task model's forward pass (the emission scores of a CRF tagger, whose
    transitions go to ``crf.safetensors`` for the runner's Viterbi)."""
    import torch
    from safetensors.torch import save_file

    model = trained.model.eval()
    batch = sample_batch(trained)
    names = [k for k in batch if k != "index"]
    with _emissions(model) as crf, torch.no_grad():
        produced = model(**batch)
        first = next(iter(model.heads))
        outputs = [k for k in produced if not k.endswith("loss") and not k.startswith(f"{first}.")]
        graph = _Graph(model, names, outputs)
        axes = {n: {i: f"{n}_{i}" for i in range(batch[n].dim())} for n in names}
        axes.update({k: _axes(k, produced[k].dim()) for k in outputs})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracing notes on transformers' shape checks
            torch.onnx.export(
                graph,
                tuple(batch[n] for n in names),
                str(staging / "model.onnx"),
                input_names=names,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=opset,
                **_tracing(),
            )
    if crf is not None:
        save_file({k: v.contiguous() for k, v in crf.state_dict().items()}, staging / CRF_FILE)
    return {"inputs": names, "outputs": outputs, "crf": crf is not None}


def _axes(name: str, dims: int) -> dict[int, str]:
    """An output's axes but the last (labels, vocabulary) are dynamic (batch, length, masks)."""
    return {i: f"{name}_{i}" for i in range(max(dims - 1, 1))}


@contextlib.contextmanager
def _emissions(model: Any) -> Iterator[Any]:
    """The first head's CRF taken off while tracing (its ``logits`` are then the emission
    scores); yields the CRF module, or None."""
    head = next(iter(model.heads.values()))
    crf = getattr(head, "crf", None)
    if crf is not None:
        head.crf = None
    try:
        yield crf
    finally:
        if crf is not None:
            head.crf = crf


def save_text(text: Any, family: str, folder: Path) -> None:
    """The run's text encoder as the runner reads it back (:func:`nlptune.onnx_runner.load`)."""
    folder.mkdir()
    if family == "static_vectors":
        text.save(folder)
        return
    text.tokenizer.save_pretrained(folder)
    if family == "hf_seq2seq":
        start = {"decoder_start_token_id": text.decoder_start}
        (folder / "nlptune_seq2seq.json").write_text(json.dumps(start), encoding="utf-8")


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


def _tracing() -> dict[str, Any]:
    """The TorchScript tracer (torch >= 2.9 defaults to the torch.export one, which needs
    onnxscript); older torch has no ``dynamo`` switch and traces anyway."""
    import inspect

    import torch

    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}


def _refuse(config: Any) -> None:
    family = config.backbone.type
    if family not in FAMILIES:
        raise NlptuneError(
            f"ONNX export supports the model families nlptune ships ({', '.join(FAMILIES)}); "
            f"this run is {family}: use it with `nlptune serve` or `nlptune predict`"
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


def sample_batch(trained: Any) -> dict[str, Any]:
    """A padded batch of two inputs of different lengths, for tracing (with the mask
    positions a masked-LM head reads)."""
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
    batch = dict(collate(features, list(range(len(features))), trained.text.pad_id, values=False))
    if trained.config.task.type == "masked_lm":
        batch["mlm_positions"] = batch["input_ids"] == trained.text.mask_id
    return batch


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
