#!/usr/bin/env bash
# Builds into .whl/ the wheels of scripts/gpu_wheels.txt: the pure-Python packages the GPU check imports that the
# project's GPU machine lacks (it has no package index). Run it here, where pip reaches an index, then carry .whl:
#     bash scripts/gpu_wheels.sh
#     run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=560)
# The wheels are pure Python (py3-none-any), so they install under the GPU machine's Python whatever this one is.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl
python3 -m pip wheel --quiet --no-deps --wheel-dir .whl -r scripts/gpu_wheels.txt
ls .whl
