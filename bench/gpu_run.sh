#!/usr/bin/env bash
# One prepared GPU benchmark run (for the lent H100/H200 machine; see bench/README.md).
# Expects, carried beside the repo: .whl/ (pydantic wheels, missing on that image),
# .gpu/minilm (all-MiniLM-L6-v2, weights stored as fp16 to fit the transfer limit; loaded as fp32)
# and .gpu/data/{sst2,mrpc,rte,stsb}/{train,dev}.tsv. Results go to $OUT.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src HF_HUB_OFFLINE=1 NLPTUNE_CACHE=/tmp/nlptune-cache PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
# the carried weights are fp16 (transfer limit): store them as fp32 again so every variant starts
# from the same fp32 checkpoint (transformers 5 would otherwise load fp16 parameters)
python3 - <<'PY'
import shutil
from pathlib import Path
from safetensors.torch import load_file, save_file
src, dst = Path(".gpu/minilm"), Path("/tmp/minilm")
shutil.copytree(src, dst, dirs_exist_ok=True)
save_file({k: v.float() for k, v in load_file(str(src / "model.safetensors")).items()},
          str(dst / "model.safetensors"), metadata={"format": "pt"})
PY
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
python3 bench/text_classification.py --train-size 8000 --epochs 3 --variants a,b,c \
  --model /tmp/minilm --data-dir .gpu/data/sst2 --device-note "$(head -1 "$OUT/gpu.txt")" \
  --out "$OUT/text_classification_gpu.json" 2>&1 | grep -v "it/s\]" | tail -30
python3 bench/glue.py --sst2-epochs 1 --model /tmp/minilm --data-dir .gpu/data --device-note "$(head -1 "$OUT/gpu.txt")" \
  --out "$OUT/glue_gpu.json" 2>&1 | grep -vE "it/s\]|step/s" | tail -30
