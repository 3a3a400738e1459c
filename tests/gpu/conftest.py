"""tests/gpu: the CUDA path on a real GPU (marker ``gpu``). Without a CUDA device every test skips, saying so; under
``TRITON_INTERPRET=1`` they refuse to run, since the interpreter silently copies CUDA tensors to the host and would
test nothing of the GPU. ``scripts/gpu_check.sh`` runs them on the project's GPU machine."""
import os
from pathlib import Path

import pytest
import torch

GPU_DIR = Path(__file__).resolve().parent
NO_GPU = "no CUDA device visible (torch.cuda.is_available() is False): tests/gpu run on a GPU, see scripts/gpu_check.sh"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if GPU_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.gpu)


@pytest.fixture(autouse=True)
def compiled_cuda():
    if not torch.cuda.is_available():
        pytest.skip(NO_GPU)
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.fail("tests/gpu refuse to run under TRITON_INTERPRET=1: Triton's interpreter copies CUDA tensors to the "
                    "host, so nothing would run on the GPU; run them in a process without it")
    torch.manual_seed(0)


@pytest.fixture
def cuda() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())

