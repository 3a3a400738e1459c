"""The CUDA part of the extension compiles with the machine's nvcc and keeps off ATen/torch headers
(so it builds without a CUDA torch; only the thin binding includes torch); setup.py links it against the toolkit's
libcuda stubs, and the link itself is tested where a libcuda.so exists."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CUDA_DIR = ROOT / "csrc" / "cuda"
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


def _setup_module(monkeypatch, cuda_home: str) -> dict:
    """setup.py's functions, with ``setup()`` itself not run and the toolkit at ``cuda_home``."""
    import runpy
    import setuptools
    import torch.utils.cpp_extension as cpp_extension
    monkeypatch.setattr(setuptools, "setup", lambda **metadata: None)
    monkeypatch.setattr(cpp_extension, "CUDA_HOME", cuda_home)
    return runpy.run_path(str(ROOT / "setup.py"), run_name="setup_under_test")


def test_the_cuda_extension_links_the_driver_api_against_the_toolkit_stubs(tmp_path, monkeypatch):
    stubs = tmp_path / "lib64" / "stubs"
    stubs.mkdir(parents=True)
    (tmp_path / "include").mkdir()
    extension = _setup_module(monkeypatch, str(tmp_path))["device_arena_extension"]()
    assert "cuda" in extension.libraries and str(stubs.resolve()) in extension.library_dirs


def _toolkit_home() -> str | None:
    """The CUDA toolkit's root (the folder holding ``include/cuda.h``), or ``None`` without nvcc."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), str(Path(nvcc).resolve().parents[1]),
                  "/usr/local/cuda"]
    return next((c for c in candidates if c and (Path(c) / "include" / "cuda.h").is_file()), None)


def _libcuda_for_linking(folders: list[str]) -> str | None:
    """A ``libcuda.so`` the linker finds: in the stub folders, or where the compiler looks by default."""
    for folder in folders:
        if (Path(folder) / "libcuda.so").exists():
            return str(Path(folder) / "libcuda.so")
    found = subprocess.run(["g++", "-print-file-name=libcuda.so"], capture_output=True, text=True).stdout.strip()
    return found if os.path.isabs(found) else None


def test_the_device_arena_links_into_a_shared_library_with_the_setup_flags(tmp_path, monkeypatch):
    """The link itself (not only ``nvcc -c``): every driver symbol the arena calls resolves against libcuda."""
    home = _toolkit_home()
    if home is None:
        pytest.skip("nvcc (CUDA toolkit) is not installed on this machine")
    folders = _setup_module(monkeypatch, home)["cuda_stub_dirs"](home)
    if _libcuda_for_linking(folders) is None:
        pytest.skip(f"no libcuda.so to link against here: the toolkit at {home} has no lib64/stubs and no driver is "
                    "installed (scripts/gpu_check.sh links it on a GPU machine)")
    objects = tmp_path / "device_arena.o"
    subprocess.run(["nvcc", "-std=c++17", "-Xcompiler", "-fPIC", "-c", str(CUDA_DIR / "device_arena.cu"), "-o",
                    str(objects)], check=True, capture_output=True)
    library = tmp_path / "libdevice_arena.so"
    result = subprocess.run(["nvcc", "-shared", str(objects), "-o", str(library), *(f"-L{f}" for f in folders),
                             "-lcuda", "-Xlinker", "--no-undefined"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert library.stat().st_size > 0


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed on this machine")
@pytest.mark.skipif(_toolkit_home() is None, reason="no CUDA toolkit headers (nvcc) on this machine")
def test_the_torch_binding_compiles_against_the_installed_torch_headers():
    """``device_bindings.cpp`` is only built where torch is a CUDA build; its syntax and its calls into the arena
    are checked here against this machine's torch headers and the toolkit's ``cuda.h``."""
    import sysconfig
    from torch.utils.cpp_extension import include_paths
    includes = [f"-I{p}" for p in [*include_paths(), sysconfig.get_paths()["include"], f"{_toolkit_home()}/include"]]
    result = subprocess.run(["g++", "-std=c++20", "-fsyntax-only", "-w", *includes, "-DTORCH_EXTENSION_NAME=_arena_cuda",
                             str(CUDA_DIR / "device_bindings.cpp")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
