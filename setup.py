"""Package metadata and the C++ extension build.

Install with ``pip install --no-build-isolation -e .``: the extension compiles against the torch
already installed (build isolation would pull a CUDA torch). The CPU extensions (memory arena, decode
kernels) are always built; the CUDA arena extension only where torch is a CUDA build and a CUDA toolkit is found.
"""
import os

from setuptools import find_packages, setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError as missing_torch:
    raise SystemExit("MorphServe compiles its C++ extension against the installed torch: install "
                     "torch==2.13.0 (see requirements.txt), then run `pip install --no-build-isolation -e .`"
                     ) from missing_torch

COMPILE_ARGS = {"cxx": ["-O3"], "nvcc": ["-O3"]}
# Sweeps beyond one job at a time (configs/hydra/launcher/): `pip install -e .[cluster]` (scripts/setup.sh does).
# Ray 2.60 is the version the online server's ray[serve] pins; the Ray launcher needs cloudpickle < 3, which keeps
# joblib below 1.6 (joblib 1.6 needs cloudpickle >= 3).
CLUSTER_REQUIRES = ["hydra-joblib-launcher==1.2.0", "hydra-submitit-launcher==1.2.0", "hydra-ray-launcher==1.2.2",
                    "ray[default]==2.60.0"]

# The online server is optional: `pip install -e .[serve]` for one process, `.[ray]` for replicas on Ray Serve,
# `.[test]` for what the server's tests also need (scripts/setup.sh installs it).
SERVE_REQUIRES = ["fastapi>=0.115", "uvicorn>=0.30", "prometheus-client>=0.20", "pydantic>=2.7"]
RAY_REQUIRES = SERVE_REQUIRES + ["ray[serve]==2.60.0"]
TEST_REQUIRES = RAY_REQUIRES + ["httpx>=0.27", "openai>=1.40", "schemathesis>=4.0,<5"]


def host_arena_extension() -> CppExtension:
    return CppExtension("swiftllm._arena_cpu", ["csrc/host_arena.cpp", "csrc/host_bindings.cpp"],
                        extra_compile_args=COMPILE_ARGS["cxx"])


def cpu_kernels_extension() -> CppExtension:
    """``at::parallel_for`` is inline OpenMP: without -fopenmp the kernels would run on one thread."""
    sources = ["csrc/skinny_linear.cpp", "csrc/int4_linear.cpp", "csrc/int8_linear.cpp", "csrc/checksum.cpp",
               "csrc/paged_decode_attention.cpp",
               "csrc/decoder_ops.cpp", "csrc/cpu_kernels_bindings.cpp"]
    return CppExtension("swiftllm._cpu_kernels", sources, extra_compile_args=COMPILE_ARGS["cxx"] + ["-fopenmp"],
                        extra_link_args=["-fopenmp"])


def cuda_stub_dirs(cuda_home: str) -> list[str]:
    """The toolkit's folders of link stubs (``libcuda.so``): the driver API links against them, so the extension
    builds where no driver is installed; at run time the driver's own ``libcuda.so.1`` is loaded."""
    candidates = [os.path.join(cuda_home, "lib64", "stubs"), os.path.join(cuda_home, "lib", "stubs"),
                  os.path.join(cuda_home, "targets", f"{os.uname().machine}-linux", "lib", "stubs")]
    return sorted({os.path.realpath(folder) for folder in candidates if os.path.isdir(folder)})


def device_arena_extension() -> CUDAExtension:
    return CUDAExtension("swiftllm._arena_cuda", ["csrc/cuda/device_arena.cu", "csrc/cuda/device_bindings.cpp"],
                         libraries=["cuda"], library_dirs=cuda_stub_dirs(CUDA_HOME), extra_compile_args=COMPILE_ARGS)


def extensions() -> list:
    cpu = [host_arena_extension(), cpu_kernels_extension()]
    if torch.version.cuda is not None and CUDA_HOME is not None:
        return cpu + [device_arena_extension()]
    return cpu


class BuildExtensions(BuildExtension):
    """Fails the install with the reason when an extension does not build (no silent fallback)."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as failure:
            raise SystemExit(f"building the C++ extension {ext.name} failed: {failure}\n"
                             "MorphServe needs it (elastic memory arena, swap copy, decode kernels). Check that a C++ compiler "
                             "(g++ with C++20) is installed and that torch's headers match the installed torch; "
                             "the CUDA part also needs nvcc and libcuda.so (the driver's, or the toolkit's "
                             "lib64/stubs).") from failure


setup(
    name="morphserve",
    version="0.1.0",
    description="MorphServe: workload-aware LLM serving with runtime layer swapping and KV-cache resizing",
    packages=find_packages(include=["swiftllm*", "morph*", "experiments*"]),
    package_data={"swiftllm.sim": ["op_tables/*.json"]},
    python_requires=">=3.10",
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtensions},
    extras_require={"cluster": CLUSTER_REQUIRES, "serve": SERVE_REQUIRES, "ray": RAY_REQUIRES, "test": TEST_REQUIRES},
    entry_points={"console_scripts": ["morphserve=morph.serve:main"]},
)
