#!/usr/bin/env bash
# Install collapsebench for the workflows (one place: .github/actions/install calls it).
#
#   scripts/install.sh [--results-remote]     # PYTHON names the interpreter (default: python)
#
# torch comes first, alone, from PyTorch's CPU-only wheel index (its URL in TORCH_CPU_INDEX, a repository
# variable the maintainers set to what PyTorch's install selector gives for "CPU"): on Linux, PyPI's torch==2.13.0
# is the CUDA build
# (gigabytes of CUDA libraries), which no job uses: the CPU jobs have no GPU, and the GPU jobs run each model and
# the scoring in their own pinned containers. The package then finds torch satisfied and takes everything else
# from PyPI at the exact versions of constraints.txt (scripts/lock_constraints.py). open_clip_torch is installed
# for its CLIP BPE vocabulary only (--no-deps keeps its torchvision, and with it a CUDA torch, out).
# --results-remote adds DVC's S3 plugin for the results remote (.dvc/config).
set -euo pipefail

python="${PYTHON:-python}"
if [[ -n "${TORCH_CPU_INDEX:-}" ]]; then
  "$python" -m pip install torch==2.13.0 --index-url "$TORCH_CPU_INDEX"
else
  echo "install: TORCH_CPU_INDEX is not set; torch==2.13.0 comes from the default index (the CUDA build on Linux)" >&2
  "$python" -m pip install torch==2.13.0
fi
"$python" -m pip install -e ".[dev]" -c constraints.txt
"$python" -m pip install --no-deps open_clip_torch==3.3.0
if [[ "${1:-}" == --results-remote ]]; then
  "$python" -m pip install dvc-s3==3.3.0
fi
