"""The weight layout of torch's CPU INT4 GEMM (``aten._weight_int4pack_mm_for_cpu``), both ways.

``aten._convert_weight_to_int4pack_for_cpu`` turns codes ``[N, K]`` (int32, 0..15) into uint8
``[N, K / 2]``, but the bytes are not row-major: rows are cut into blocks of ``block_n`` (64 on AVX512,
32 on AVX2 and the scalar build), each stored as ``[K, block_n / 2]`` bytes, and inside a full block
byte ``j`` holds rows ``j`` (low nibble) and ``j + block_n / 2`` (high nibble) on AVX512/AVX2, or rows
``2j`` and ``2j + 1`` otherwise; a last partial block always uses the adjacent-pair form.

The layout thus depends on the CPU the process runs on. ``unpack_int4pack`` inverts it; the variant
in use is found once per process by packing a probe with torch's own op and keeping the candidate
that reads it back, so an unknown build fails loudly instead of dequantizing garbage.
"""
import functools
from dataclasses import dataclass

import torch

ROW_MULTIPLE = 16  # torch's converter needs N divisible by 16
WORD_BYTES = 8     # unpacking moves 8-byte words; every block holds a multiple of 8 bytes per k


@dataclass(frozen=True, slots=True)
class Int4PackLayout:
    block_n: int
    split_halves: bool  # full blocks pair rows (j, j + block_n/2) instead of (2j, 2j + 1)


CANDIDATE_LAYOUTS = (Int4PackLayout(64, True), Int4PackLayout(32, True), Int4PackLayout(32, False),
                     Int4PackLayout(64, False), Int4PackLayout(16, False))


def pack_int4pack(codes: torch.Tensor) -> torch.Tensor:
    """codes [N, K] (0..15, N % 16 == 0, K even) -> uint8 [N, K / 2] in this CPU's kernel layout."""
    rows, cols = codes.shape
    if rows % ROW_MULTIPLE != 0 or cols % 2 != 0:
        raise ValueError(f"the CPU INT4 kernel needs out_features % {ROW_MULTIPLE} == 0 and an even in_features, "
                         f"got [{rows}, {cols}]")
    return torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.to(torch.int32).contiguous(), 1)


def unpack_int4pack(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [N, K / 2] from ``pack_int4pack`` -> codes uint8 [N, K]."""
    return unpack_int4pack_k_major(packed).t().contiguous()


def unpack_int4pack_k_major(packed: torch.Tensor) -> torch.Tensor:
    """uint8 [N, K / 2] from ``pack_int4pack`` -> codes uint8 [K, N] (the transposed weight).

    The fast direction: the kernel layout is already K-major inside each block of rows.
    """
    return _unpack_k_major(packed, cpu_int4pack_layout())


@functools.cache
def cpu_int4pack_layout() -> Int4PackLayout:
    """The layout torch's converter uses in this process (checked against a probe)."""
    generator = torch.Generator().manual_seed(0)
    probe = torch.randint(0, 16, (2 * 64 + ROW_MULTIPLE, 8), dtype=torch.uint8, generator=generator)  # full + partial blocks
    packed = pack_int4pack(probe)
    for layout in CANDIDATE_LAYOUTS:
        if torch.equal(_unpack_k_major(packed, layout), probe.t()):
            return layout
    raise RuntimeError("unrecognised layout of torch's CPU INT4 pack (aten._convert_weight_to_int4pack_for_cpu); "
                       f"torch {torch.__version__} packs differently from {CANDIDATE_LAYOUTS}")


def _unpack_k_major(packed: torch.Tensor, layout: Int4PackLayout) -> torch.Tensor:
    rows, half_cols = packed.shape
    cols = 2 * half_cols
    if packed.storage_offset() % WORD_BYTES:
        packed = packed.clone()                   # blocks are moved as int64 words: needs 8-byte alignment
    flat = packed.reshape(-1)
    num_full = rows // layout.block_n
    full_bytes = num_full * layout.block_n * half_cols
    parts = []
    if num_full:
        parts.append(_k_major_codes(flat[:full_bytes], num_full, cols, layout.block_n, layout.split_halves))
    tail_rows = rows - num_full * layout.block_n
    if tail_rows:
        parts.append(_k_major_codes(flat[full_bytes:], 1, cols, tail_rows, split_halves=False))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _k_major_codes(flat: torch.Tensor, num_blocks: int, cols: int, block_rows: int, split_halves: bool) -> torch.Tensor:
    """Bytes of ``num_blocks`` blocks, each [K, block_rows / 2] -> codes [K, num_blocks * block_rows]."""
    chunk = block_rows // 2                                                               # bytes per (block, k)
    words = flat.view(torch.int64).view(num_blocks, cols, chunk // WORD_BYTES)            # [NB, K, chunk / 8]
    k_major = words.transpose(0, 1).contiguous().view(torch.uint8).view(cols, num_blocks, chunk)  # [K, NB, chunk]
    low, high = k_major & 0xF, k_major >> 4
    if split_halves:
        codes = torch.cat([low, high], dim=-1)                                            # [K, NB, block_rows]
    else:
        codes = torch.stack([low, high], dim=-1).flatten(-2)                              # [K, NB, block_rows]
    return codes.view(cols, num_blocks * block_rows)
