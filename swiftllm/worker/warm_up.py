"""Warm-up: run every kernel the serving path can pick once, at start, so that Triton compiles each variant (and
cuBLAS picks its algorithms) before the first request instead of inside a step.

What picks a compiled variant: the Triton GEMMs of the quantized linears pick a tile by the number of rows
(``gemm_tiles``: one M per tile); paged decode attention has one variant for a context in one partition and one
for a split context plus its merge kernel; the elementwise kernels and the KV store have one each per dtype. Other
integers (M, the context split, the block-table width) are not specialized on.
"""
import torch

from swiftllm.worker.batch import SequenceChunk
from swiftllm.worker.kernels.gemm_tiles import tile_token_counts
from swiftllm.worker.weight import LINEAR_NAMES, LayerWeights


def warm_up_linears(layer: LayerWeights, max_tokens: int, dtype: torch.dtype, device: torch.device) -> None:
    """Run every linear of ``layer`` at one row count per GEMM tile reachable with ``max_tokens`` rows."""
    for num_tokens in tile_token_counts(max_tokens):
        for name in LINEAR_NAMES:
            op = getattr(layer, name)
            op(torch.zeros(num_tokens, op.in_features, dtype=dtype, device=device))


def warm_up_chunks(max_tokens: int, max_context: int, block_size: int) -> list[list[SequenceChunk]]:
    """Batches that reach every attention and elementwise variant, over the cache's first blocks: a prefill of
    ``min(max_tokens, max_context)`` tokens, a decode row with a context of one token (one partition), and one with
    ``max_context`` tokens (the most partitions a single sequence can have, so split if any context ever is)."""
    prompt_len = max(2, min(max_tokens, max_context))
    table = list(range(-(-max(prompt_len, max_context) // block_size)))
    return [[SequenceChunk("warm-up-prefill", [0] * prompt_len, 0, table, None)],
            [SequenceChunk("warm-up-short", [0], 0, table, None)],
            [SequenceChunk("warm-up-long", [0], max_context - 1, table, None)]]
