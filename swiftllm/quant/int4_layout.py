"""The CPU INT4 weight layout that ``csrc/int4_linear.cpp`` reads: row-major, two codes per byte.

Each output row of ``K`` codes (``K`` a multiple of 32) is ``K / 2`` bytes; in every chunk of 32 consecutive
codes (16 bytes) byte ``j`` holds code ``j`` in its low nibble and code ``j + 16`` in its high nibble, so a
16-byte load unpacks to the chunk's codes in order with one mask and one shift.
"""
import torch

CHUNK = 32


def pack_int4_rows(codes: torch.Tensor) -> torch.Tensor:
    """codes [N, K] (0..15, K % 32 == 0) -> uint8 [N, K / 2]."""
    rows, cols = codes.shape
    if cols % CHUNK != 0:
        raise ValueError(f"the INT4 layout needs in_features padded to a multiple of {CHUNK}, got {cols}")
    chunks = codes.to(torch.uint8).reshape(rows, cols // CHUNK, 2, CHUNK // 2)       # [N, K/32, 2, 16]
    return (chunks[:, :, 0] | (chunks[:, :, 1] << 4)).reshape(rows, cols // 2).contiguous()


def unpack_int4_rows(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [N, K / 2] from ``pack_int4_rows`` -> codes uint8 [N, K]."""
    rows, half = packed.shape
    chunks = packed.reshape(rows, half // (CHUNK // 2), 1, CHUNK // 2)               # [N, K/32, 1, 16]
    return torch.cat([chunks & 0x0F, chunks >> 4], dim=2).reshape(rows, 2 * half)
