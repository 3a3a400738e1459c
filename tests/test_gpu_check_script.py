"""scripts/gpu_check.sh on a machine without a GPU: it says it needs one, how to run it on one, and fails."""
import os
import subprocess
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the script would run the whole check")
def test_without_a_gpu_the_check_says_so_and_how_to_run_it_and_exits_non_zero(tmp_path):
    environment = os.environ | {"OUT": str(tmp_path / "out")}
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=environment, timeout=120)
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr and "bash scripts/gpu_wheels.sh" in result.stderr
    assert 'run(command="bash scripts/gpu_check.sh", carry=[".whl"]' in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_header_says_how_to_run_it_on_the_gpu_machine():
    header = SCRIPT.read_text().split("set -uo pipefail")[0]
    assert 'run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=560)' in header
    assert "bash scripts/gpu_wheels.sh" in header
