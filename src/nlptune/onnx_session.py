"""An onnxruntime session called like the PyTorch model (the ONNX runner's model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class OnnxModel:
    """An onnxruntime session called like the PyTorch model: ``model(**batch)`` -> a dict of
    output tensors (the batch keys the graph does not take are left out)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name: _dtype(i.type) for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, **batch: Any) -> dict[str, Any]:
        import torch

        if "token_type_ids" in self.inputs and "token_type_ids" not in batch:
            batch = {**batch, "token_type_ids": torch.zeros_like(batch["input_ids"])}  # default
        feeds = {n: batch[n].cpu().numpy().astype(t) for n, t in self.inputs.items()}
        values = self.session.run(self.outputs, feeds)
        return {n: torch.from_numpy(v) for n, v in zip(self.outputs, values, strict=True)}


def _dtype(onnx_type: str) -> str:
    return {"tensor(bool)": "bool", "tensor(float)": "float32"}.get(onnx_type, "int64")
