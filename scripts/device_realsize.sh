#!/usr/bin/env bash
# The real-size bench at the issue's GPU protocol (SD-1.5 shapes, 30 keys x 4 seeds x 50 DDIM
# steps, 512², fp16, cuda), as one command for a lent GPU (the `device` tool), so the device
# time goes to measuring. It builds the two random SD-1.5-shaped pipelines there (about a
# minute: nothing of 4 GB travels), runs `python -m attribcheck.bench realsize --full` and
# leaves the figures and the log in $OUT.
#
# The GPU image has torch, transformers, safetensors and psutil but not diffusers or pydantic:
# carry them as wheels. Once, here (network needed), in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     diffusers==0.42.1 pydantic==2.13.4 pydantic-core==2.46.4 annotated-types typing-inspection
# then: run(command="bash scripts/device_realsize.sh", carry=[".whl"], timeout_s=560)
#
# Smoke test here, on the CPU, through the same lines: REALSIZE_SMOKE=1 bash scripts/device_realsize.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
OUT=${OUT:-$(mktemp -d)}; mkdir -p "$OUT"
export ATTRIBCHECK_CACHE=${ATTRIBCHECK_CACHE:-$OUT/../attribcheck-cache}  # the pipelines: not sent back
if [ -n "${REALSIZE_SMOKE:-}" ]; then
  args=(--preset tiny --size 32 --keys 2 --seeds 1 --steps 2 --device cpu --dtype float32 --no-pixels)
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  args=(--full --threads 4)
fi
python3 -c "import torch, diffusers, pydantic; print('torch', torch.__version__, 'diffusers', diffusers.__version__)"
python3 -m attribcheck.bench realsize "${args[@]}" --json "$OUT/bench_realsize_gpu.json" 2>&1 | tee "$OUT/realsize.log"
echo "figures in $OUT/bench_realsize_gpu.json"
