#!/usr/bin/env bash
# Wheels for a GPU machine that has no network but a Python with torch (CUDA), numpy, scipy, pandas, matplotlib,
# scikit-learn, pyyaml and tqdm: the pure-Python packages dmafnet needs beyond those, downloaded here into .whl/
# (git-ignored). Carry .whl/ there and install with
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
# then run `python3 benchmarks/gpu_check.py --results $OUT/gpu --budget-s 480` (see its docstring).
# PY: the GPU machine's Python version (default 3.12). The versions are the ones `make install` gives here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-3.12}
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
  --platform manylinux2014_x86_64 --platform any -d .whl \
  fastcore==1.14.5 nibabel==5.4.2 monai==1.6.1 nilearn==0.14.1
ls -l .whl
