"""Compile the quantized variants' kernels when morph attaches, not at a layer's first swap.

The engine's warm-up covers the full-precision path; each quantized precision adds its own GEMM (Triton W8A16 for
INT8, W4A16 for INT4), compiled once per tile (``swiftllm.worker.kernels.gemm_tiles``). One layer of each precision
is copied from the host store to the device, run at one row count per tile, and dropped.
"""
import torch

from morph.layer_store import LayerStore
from morph.plan import Precision
from swiftllm.worker.warm_up import warm_up_linears


def warm_up_variants(store: LayerStore, device: torch.device, dtype: torch.dtype, max_tokens: int) -> None:
    """Run every quantized precision's linears on ``device`` at each GEMM tile reachable with ``max_tokens`` rows."""
    for precision in store.precisions:
        if precision == Precision.FP:
            continue
        layer = store.layer(0, precision)
        on_device = layer.with_tensors({name: t.to(device) for name, t in layer.tensors().items()})
        warm_up_linears(on_device, max_tokens, dtype, device)
