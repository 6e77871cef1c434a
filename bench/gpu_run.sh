#!/usr/bin/env bash
# One prepared GPU benchmark run for the lent H100/H200 machine (see bench/README.md), under 8
# minutes: the tests marked gpu, then nlptune against the padded and the tuned Trainer on SST-2
# (8k subset) and CoNLL-2003 with MiniLM (and MPNet-base where --mpnet's folder exists) in bf16
# (bench/gpu_compare.py: one table, JSON), then the MFU of a MiniLM step (bench/mfu.py).
#
#   bash bench/gpu_run.sh            on the GPU machine, with .whl/ and .gpu/ carried beside the
#                                    repository (build them here with bench/gpu_prepare.sh)
#   bash bench/gpu_run.sh --shrink   here, on the CPU: the same steps on tiny data (a smoke run,
#                                    a few minutes; its numbers are not a benchmark)
# Results go to $OUT (default bench/results/gpu).
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-bench/results/gpu}; mkdir -p "$OUT"
if [ "${1:-}" = "--shrink" ]; then
  PY=${PY:-.venv/bin/python}
  export PYTHONPATH=$PWD/src NLPTUNE_CACHE=/tmp/nlptune-gpu-run-cache
  $PY -m pytest -q -m gpu tests/integration/test_host_speed.py 2>&1 | tail -3
  $PY bench/gpu_compare.py --shrink --models minilm --out "$OUT/gpu_compare.json" 2>&1 | tail -12
  $PY bench/mfu.py --steps 2 --out "$OUT/mfu.json" 2>&1 | tail -9
  exit 0
fi
PY=python3
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src NLPTUNE_CACHE=/tmp/nlptune-cache
# the carried weights are fp16 (transfer limit): store them as fp32 again so every variant starts
# from the same fp32 checkpoint (transformers 5 would otherwise load fp16 parameters)
$PY - <<'PY'
import shutil
from pathlib import Path
from safetensors.torch import load_file, save_file
src, dst = Path(".gpu/minilm"), Path("/tmp/minilm")
shutil.copytree(src, dst, dirs_exist_ok=True)
save_file({k: v.float() for k, v in load_file(str(src / "model.safetensors")).items()},
          str(dst / "model.safetensors"), metadata={"format": "pt"})
PY
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"
($PY -m pytest -q -m gpu -p no:cacheprovider tests/integration/test_host_speed.py 2>&1 || echo "gpu tests: failed or pytest missing") | tail -5
timeout 380 $PY bench/gpu_compare.py --minilm /tmp/minilm --mpnet "${MPNET:-.gpu/mpnet}" --data-dir .gpu/data \
  --device-note "$(head -1 "$OUT/gpu.txt")" --out "$OUT/gpu_compare.json" 2>&1 | grep -v "it/s\]" | tail -16
$PY bench/mfu.py --model /tmp/minilm --out "$OUT/mfu_gpu.json" 2>&1 | tail -9
