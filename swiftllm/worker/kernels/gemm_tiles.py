"""Tile shapes of the Triton weight-only GEMMs (INT8 W8A16, INT4 AWQ W4A16), chosen by the number of activation
rows M.

Decode (M up to 16) streams the weights once for a handful of rows: narrow column tiles give many programs, so
every multiprocessor has loads in flight, and long K steps keep each program's loads large. Prefill (M in the
hundreds or thousands) is compute-bound: wide square tiles reuse each weight tile across many rows. Every tile is
one compiled variant of a kernel (the kernels do not specialize on M itself), so ``tile_token_counts`` (one M per
tile a batch can reach) is what a warm-up must run to compile them all.

These are starting points from the shapes of the problem, not yet tuned on a GPU (docs/gpu.md).
"""
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GemmTile:
    max_tokens: int       # the largest M this tile serves
    block_m: int
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int


GEMM_TILES = (
    GemmTile(max_tokens=16, block_m=16, block_n=32, block_k=128, num_warps=4, num_stages=4),
    GemmTile(max_tokens=64, block_m=32, block_n=64, block_k=64, num_warps=4, num_stages=4),
    GemmTile(max_tokens=256, block_m=64, block_n=128, block_k=64, num_warps=4, num_stages=4),
    GemmTile(max_tokens=1 << 62, block_m=128, block_n=128, block_k=64, num_warps=8, num_stages=3),
)


def gemm_tile(num_tokens: int) -> GemmTile:
    """The tile for ``num_tokens`` activation rows (>= 1)."""
    assert num_tokens >= 1, f"a GEMM needs at least one row, got {num_tokens}"
    return next(tile for tile in GEMM_TILES if num_tokens <= tile.max_tokens)


def tile_token_counts(max_tokens: int) -> list[int]:
    """One M per tile that batches of up to ``max_tokens`` rows can reach (the tile's largest M within the limit)."""
    counts, lowest = [], 1
    for tile in GEMM_TILES:
        if lowest > max_tokens:
            break
        counts.append(min(tile.max_tokens, max_tokens))
        lowest = tile.max_tokens + 1
    return counts
