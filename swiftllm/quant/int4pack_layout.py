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
    return _unpack_with(packed, cpu_int4pack_layout())


@functools.cache
def cpu_int4pack_layout() -> Int4PackLayout:
    """The layout torch's converter uses in this process (checked against a probe)."""
    generator = torch.Generator().manual_seed(0)
    probe = torch.randint(0, 16, (2 * 64 + ROW_MULTIPLE, 8), dtype=torch.uint8, generator=generator)  # full + partial blocks
    packed = pack_int4pack(probe)
    for layout in CANDIDATE_LAYOUTS:
        if torch.equal(_unpack_with(packed, layout), probe):
            return layout
    raise RuntimeError("unrecognised layout of torch's CPU INT4 pack (aten._convert_weight_to_int4pack_for_cpu); "
                       f"torch {torch.__version__} packs differently from {CANDIDATE_LAYOUTS}")


def _unpack_with(packed: torch.Tensor, layout: Int4PackLayout) -> torch.Tensor:
    rows, half_cols = packed.shape
    cols = 2 * half_cols
    flat = packed.reshape(-1)
    num_full = rows // layout.block_n
    full_bytes = num_full * layout.block_n * half_cols
    full = flat[:full_bytes].view(num_full, cols, layout.block_n // 2)              # [NB, K, block_n/2]
    parts = [_block_rows(full, layout.split_halves)]
    tail_rows = rows - num_full * layout.block_n
    if tail_rows:
        tail = flat[full_bytes:].view(1, cols, tail_rows // 2)                          # [1, K, tail/2]
        parts.append(_block_rows(tail, split_halves=False))
    return torch.cat(parts)


def _block_rows(blocks: torch.Tensor, split_halves: bool) -> torch.Tensor:
    """[NB, K, B/2] bytes -> [NB * B, K] codes."""
    low, high = blocks & 0xF, blocks >> 4
    if split_halves:
        rows = torch.cat([low, high], dim=-1)                                           # [NB, K, B]
    else:
        rows = torch.stack([low, high], dim=-1).flatten(-2)                            # [NB, K, B]
    return rows.transpose(1, 2).reshape(-1, blocks.shape[1])
