#!/usr/bin/env bash
# Create .venv with everything pairhook and its tests need; safe to run again (it only adds what is missing).
# torch 2.14.1 + torchvision 0.29.1 is the CUDA build from this machine's local wheel folder; it runs on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  .venv/bin/pip install --disable-pip-version-check -q torch==2.14.1 torchvision==0.29.1
fi
.venv/bin/pip install --disable-pip-version-check -q -e ".[test,tune,docs]"  # tune: Ray Tune, so its tests run too; docs: the site
