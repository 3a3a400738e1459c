"""The C++ CPU kernels (``csrc/cpu_kernels.h``): fp32, INT8 and INT4 decode GEMVs, paged decode attention, elementwise
decoder ops (AVX2 + FMA), and the layer store's checksum (SSE4.2)."""
import zlib
from functools import cache
from types import ModuleType

import torch

from swiftllm.extensions import load_extension


@cache
def cpu_kernels() -> ModuleType | None:
    """The extension, or ``None`` on a CPU without AVX2/FMA (the torch ops then serve every call)."""
    extension = load_extension("_cpu_kernels")
    return extension if extension.cpu_supported() else None


def tensor_checksum(tensor: torch.Tensor) -> int:
    """A checksum of a tensor's bytes (any device; a CUDA tensor is read back). CRC-32C lanes in C++ where the CPU
    has SSE4.2, zlib's CRC-32 otherwise: the same function within a process, which is all a store's checksums need."""
    host = tensor.detach().cpu().contiguous()
    extension = load_extension("_cpu_kernels")
    if extension.checksum_supported():
        return extension.checksum(host)
    return zlib.crc32(memoryview(host.view(-1).view(torch.uint8).numpy()))
