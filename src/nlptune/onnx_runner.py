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
from nlptune.onnx_session import OnnxModel

INSTALL = "ONNX export needs onnx and onnxruntime: pip install 'nlptune[onnx]'"


def require() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise NlptuneError(INSTALL) from None


class CrfModel:
    """The emission graph, then the CRF's Viterbi (``crf.safetensors``) as the PyTorch head
    decodes: ``logits`` become one-hot Viterbi tags valued at their emission probability."""

    def __init__(self, graph: OnnxModel, crf: Any) -> None:
        self.graph, self.crf = graph, crf

    def __call__(self, **batch: Any) -> dict[str, Any]:
        from nlptune.heads.token import crf_scores

        out = self.graph(**batch)
        out["logits"] = crf_scores(self.crf, out["logits"], batch["word_mask"].bool())
        return out


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

    from nlptune import artefact, build
    from nlptune.config import validate
    from nlptune.predict import Predictor

    folder = Path(folder)
    suffix = ".int8.onnx" if int8 else ".onnx"
    graphs = [folder / f"{n}{suffix}" for n in ("model", "encoder")]
    if not any(g.is_file() for g in graphs):
        extra = " (export with --int8)" if int8 else ""
        raise NlptuneError(f"{folder}: no model{suffix}; not an `nlptune export` folder{extra}")
    raw, labels = artefact.read_run(folder)
    config = validate({**raw, "output_dir": str(folder)}, str(folder / "config.yaml"))
    task = build.parts(config).task
    task.load_state(labels)
    family = config.backbone.type
    text = _text(folder / "tokenizer", family)
    build.use_text(task, text)
    model: Any
    if family == "hf_seq2seq":
        from nlptune.onnx_seq2seq import OnnxSeq2Seq

        model = OnnxSeq2Seq(folder, int8, threads)
    else:
        model = OnnxModel(folder / f"model{suffix}", threads)
        if (folder / "crf.safetensors").is_file():
            model = CrfModel(model, _crf(folder / "crf.safetensors", task))
    return Predictor(config, task, model, text, torch.device("cpu"), batch_size)


def _text(folder: Path, family: str) -> Any:
    """The text encoder :func:`nlptune.onnx_export.save_text` wrote."""
    if family == "static_vectors":
        from nlptune.backbones.word_text import WordTextEncoder

        return WordTextEncoder.load(folder)
    from transformers import AutoTokenizer

    from nlptune.backbones.hf_text import HFTextEncoder

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if family == "hf_seq2seq":
        import json

        from nlptune.backbones.hf_seq2seq import Seq2SeqText

        info = json.loads((folder / "nlptune_seq2seq.json").read_text(encoding="utf-8"))
        return Seq2SeqText(tokenizer, info["decoder_start_token_id"])
    return HFTextEncoder(tokenizer)


def _crf(path: Path, task: Any) -> Any:
    from safetensors.torch import load_file

    from nlptune.heads.crf import CRF

    crf = CRF(list(task.labels))
    crf.load_state_dict(load_file(str(path)), strict=False)
    return crf.eval()


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
    if any(Path(out).glob("*.int8.onnx")):
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
    """The largest absolute difference between what PyTorch and ONNX give the task's decoder
    (logits; CRF tags as scores; generated ids), batch by batch; inf where shapes differ."""
    import torch

    from nlptune.data.batching import collate

    # a masked LM's dev batches (masked words, their loss) exercise its logits; its
    # predictions (fills of [MASK] in the input) would find no mask in plain text
    labelled = reference.config.task.type == "masked_lm"
    features = reference.task.featurize(examples, reference.text, labelled=labelled)
    worst = 0.0
    size = reference.batch_size
    step = reference.task.predict_step
    for at in range(0, len(features), size):
        index = list(range(at, min(at + size, len(features))))
        batch = dict(collate(features, index, reference.text.pad_id, values=False))
        with torch.inference_mode():
            want = step(reference.model, dict(batch))  # a step may take keys out
            got = step(exported.model, dict(batch))
        if want.shape != got.shape:
            return float("inf")
        worst = max(worst, float((want.float() - got.float()).abs().max()))
    return worst
