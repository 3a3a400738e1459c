"""The CUDA part of the extension compiles with the machine's nvcc and keeps off ATen/torch headers
(so it builds without a CUDA torch; only the thin binding includes torch)."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CUDA_DIR = Path(__file__).resolve().parents[1] / "csrc" / "cuda"
DRIVER_API_SOURCES = [CUDA_DIR / "device_arena.cu", CUDA_DIR / "device_arena.h"]


def included_headers(source: Path) -> list[str]:
    return re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', source.read_text(), flags=re.MULTILINE)


@pytest.mark.parametrize("source", DRIVER_API_SOURCES, ids=lambda p: p.name)
def test_driver_api_sources_include_no_torch_headers(source):
    torch_headers = [h for h in included_headers(source) if re.match(r"(torch|ATen|c10|pybind11)/", h)]
    assert torch_headers == [], f"{source.name} must use only the CUDA driver API, includes {torch_headers}"


def test_binding_is_the_only_cuda_file_with_torch():
    assert "torch/extension.h" in included_headers(CUDA_DIR / "device_bindings.cpp")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed on this machine")
def test_device_arena_compiles_with_nvcc(tmp_path):
    result = subprocess.run(["nvcc", "-std=c++17", "-c", str(CUDA_DIR / "device_arena.cu"),
                             "-o", str(tmp_path / "device_arena.o")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "device_arena.o").stat().st_size > 0
