"""The runner of an ``nlptune export`` folder: a :class:`~nlptune.predict.Predictor` whose model
is an onnxruntime session (:func:`load`), and the check of it (and of the int8 model) against
PyTorch on labelled data (:func:`compare`): identical task outputs, the largest difference of
the model outputs, metrics and speed. onnx and onnxruntime are imported only here and in
:mod:`nlptune.onnx_export` (``pip install 'nlptune[onnx]'``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nlptune.errors import NlptuneError

INSTALL = "ONNX export needs onnx and onnxruntime: pip install 'nlptune[onnx]'"


def require() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise NlptuneError(INSTALL) from None


class OnnxModel:
    """An onnxruntime session called like the PyTorch model: ``model(**batch)`` -> a dict of
    output tensors (the batch keys the graph does not take are left out)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, **batch: Any) -> dict[str, Any]:
        import torch

        feeds = {n: batch[n].cpu().numpy().astype("int64") for n in self.inputs}
        values = self.session.run(self.outputs, feeds)
        return {n: torch.from_numpy(v) for n, v in zip(self.outputs, values, strict=True)}


def load(
    folder: str | Path,
    int8: bool = False,
    batch_size: int | None = None,
    threads: int | None = None,
) -> Any:
    """A :class:`~nlptune.predict.Predictor` on an exported folder's ONNX model (``int8``: the
    quantised one): ``load("out").predict(["a gripping film"])``."""
    require()
    import torch
    from transformers import AutoTokenizer

    from nlptune import artefact, build
    from nlptune.backbones.hf_text import HFTextEncoder
    from nlptune.config import validate
    from nlptune.predict import Predictor

    folder = Path(folder)
    name = "model.int8.onnx" if int8 else "model.onnx"
    if not (folder / name).is_file():
        extra = " (export with --int8)" if int8 else ""
        raise NlptuneError(f"{folder}: no {name}; not an `nlptune export` folder{extra}")
    raw, labels = artefact.read_run(folder)
    config = validate({**raw, "output_dir": str(folder)}, str(folder / "config.yaml"))
    task = build.parts(config).task
    task.load_state(labels)
    text = HFTextEncoder(AutoTokenizer.from_pretrained(folder / "tokenizer"))
    build.use_text(task, text)
    model = OnnxModel(folder / name, threads)
    return Predictor(config, task, model, text, torch.device("cpu"), batch_size)


# --- the check against PyTorch ---------------------------------------------------------------


def compare(run: str | Path, out: str | Path, data: str) -> dict[str, Any]:
    """ONNX (and int8) against PyTorch on the labelled file ``data``: how many task outputs
    (labels, tags, answers) are identical, the largest difference of the model outputs, the
    metrics of each, and examples/s of each (featurize, model and decode, on the CPU)."""
    from nlptune.predict import Predictor

    reference = Predictor.from_dir(run, device="cpu")
    exported = load(out)
    examples = reference.task.read(data)
    report: dict[str, Any] = {"data": data, "examples": len(examples)}
    report["max_abs_diff"] = _max_diff(reference, exported, examples)
    expected = _outputs(reference, examples)
    report["same_outputs"] = _agree(expected, _outputs(exported, examples))
    runners = {"pytorch": reference, "onnx": exported}
    if (Path(out) / "model.int8.onnx").is_file():
        runners["onnx_int8"] = load(out, int8=True)
        report["int8_same_outputs"] = _agree(expected, _outputs(runners["onnx_int8"], examples))
    for name, predictor in runners.items():
        list(predictor.predict_records(_records(examples[:8]), buffer=9))  # warm up
        started = time.perf_counter()
        metrics = predictor.evaluate(data)
        seconds = time.perf_counter() - started
        report[name] = {"metrics": metrics, "examples_per_s": round(len(examples) / seconds, 1)}
    return report


def _records(examples: list[Any]) -> list[Any]:
    from nlptune.inputs import Record

    return [Record(e, getattr(e, "where", ""), i + 1) for i, e in enumerate(examples)]


def _outputs(predictor: Any, examples: list[Any]) -> list[dict[str, Any]]:
    return list(predictor.predict_records(_records(examples), buffer=len(examples) + 1))


def _agree(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    """The share of records whose outputs are equal but for scores (floats)."""

    def fixed(row: Any) -> Any:
        if isinstance(row, dict):
            return {k: fixed(v) for k, v in row.items() if not isinstance(v, float)}
        if isinstance(row, list):
            return [fixed(v) for v in row]
        return row

    same = sum(fixed(x) == fixed(y) for x, y in zip(a, b, strict=True))
    return round(same / max(len(a), 1), 6)


def _max_diff(reference: Any, exported: Any, examples: list[Any]) -> float:
    """The largest absolute difference between the PyTorch and ONNX outputs, batch by batch."""
    import torch

    from nlptune.data.batching import collate

    features = reference.task.featurize(examples, reference.text, labelled=False)
    worst = 0.0
    size = reference.batch_size
    for at in range(0, len(features), size):
        index = list(range(at, min(at + size, len(features))))
        batch = dict(collate(features, index, reference.text.pad_id, values=False))
        with torch.inference_mode():
            want = reference.model(**batch)
        got = exported.model(**batch)
        for name, value in got.items():
            diff = (want[name].float() - value.float()).abs().max().item()
            worst = max(worst, float(diff))
    return worst
