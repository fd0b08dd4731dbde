#!/usr/bin/env bash
# Set-up on a fresh machine. torch comes first and only when none is importable: the local
# CPU wheel (torch==2.13.0) installs in seconds here, and a GPU user's own torch build is
# left alone (pyproject asks only for torch>=2.1).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q "torch==2.13.0"
fi
"$PY" -m pip install -q -e ".[lab,test]"
