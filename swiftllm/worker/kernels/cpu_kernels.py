"""The C++ CPU kernels (``csrc/cpu_kernels.h``): fp32 and INT4 decode GEMV, paged decode attention, elementwise
decoder ops; AVX2 + FMA."""
from functools import cache
from types import ModuleType

from swiftllm.extensions import load_extension


@cache
def cpu_kernels() -> ModuleType | None:
    """The extension, or ``None`` on a CPU without AVX2/FMA (the torch ops then serve every call)."""
    extension = load_extension("_cpu_kernels")
    return extension if extension.cpu_supported() else None
