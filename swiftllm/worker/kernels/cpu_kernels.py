"""The C++ CPU kernels (``csrc/cpu_kernels.h``): fp32, INT8 and INT4 decode GEMVs, paged decode attention, elementwise
decoder ops (AVX2 + FMA), and the layer store's checksums (SSE4.2 + AVX2)."""
import zlib
from collections.abc import Sequence
from functools import cache
from types import ModuleType

import torch

from swiftllm.extensions import load_extension
from swiftllm.worker.memory_arena import copy_into


@cache
def cpu_kernels() -> ModuleType | None:
    """The extension, or ``None`` on a CPU without AVX2/FMA (the torch ops then serve every call)."""
    extension = load_extension("_cpu_kernels")
    return extension if extension.cpu_supported() else None


CHECKSUM_CHUNK_BYTES = 1 << 18     # bytes per checksum: a swap's copy slices start on these boundaries


@cache
def checksum_kernels() -> ModuleType | None:
    """The extension, or ``None`` on a CPU without SSE4.2 and AVX2 (zlib then computes the checksums)."""
    extension = load_extension("_cpu_kernels")
    return extension if extension.checksum_supported() else None


def tensor_checksums(tensor: torch.Tensor) -> tuple[int, ...]:
    """The checksums of a tensor's bytes, one per ``CHECKSUM_CHUNK_BYTES`` (any device; a CUDA tensor is read back).
    CRC-32C lanes in C++ where the CPU has SSE4.2 and AVX2, zlib's CRC-32 otherwise: the same function within a
    process, which is all a store's checksums need."""
    host = tensor.detach().cpu().contiguous()
    extension = checksum_kernels()
    if extension is not None:
        return tuple(extension.chunk_checksums(host, CHECKSUM_CHUNK_BYTES))
    data = memoryview(host.view(-1).view(torch.uint8).numpy())
    return tuple(zlib.crc32(data[start:start + CHECKSUM_CHUNK_BYTES])
                 for start in range(0, len(data), CHECKSUM_CHUNK_BYTES))


CopyPiece = tuple[torch.Tensor, torch.Tensor, int, int]   # (destination, source, begin, end): bytes [begin, end)


def copy_checksummed(pieces: Sequence[CopyPiece]) -> list[list[int]]:
    """For each piece, copy bytes [begin, end) of ``source`` to the same bytes of ``destination`` (contiguous CPU
    tensors of equal byte size, ``begin`` a multiple of ``CHECKSUM_CHUNK_BYTES``) and return those chunks' checksums,
    as ``tensor_checksums`` gives them: in one pass over the bytes, all the pieces' chunks on torch's intra-op threads,
    where the CPU has SSE4.2 and AVX2."""
    extension = checksum_kernels()
    if extension is not None:
        destinations, sources, begins, ends = zip(*pieces) if pieces else ((), (), (), ())
        return extension.copy_checksummed(destinations, sources, begins, ends, CHECKSUM_CHUNK_BYTES)
    copied = []
    for destination, source, begin, end in pieces:
        into = destination.view(-1).view(torch.uint8)[begin:end]
        copy_into(into, source.view(-1).view(torch.uint8)[begin:end])
        copied.append(list(tensor_checksums(into)))
    return copied
