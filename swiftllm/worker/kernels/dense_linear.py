"""Full-precision ``x @ weight.T``: the C++ GEMV (``csrc/skinny_linear.cpp``) for decode-sized fp32 CPU
inputs, torch's GEMM otherwise.

A decode step streams every weight once for a handful of rows, and torch's fp32 GEMV reads an [N, K]
weight on one thread. ``benchmarks/bench_decode_kernels.py`` over SmolLM2's 120 decoder linears, 2 threads
(docs/benchmarks.md): 14.8 against 26.8 ms at 1 row, 40 against 54 ms at 16, 163 against 172 ms at 96, even
at 128 rows and slower at 192. Both compute the same sums in another order.
"""
import torch
import torch.nn.functional as F

from swiftllm.worker.kernels.cpu_kernels import cpu_kernels

SKINNY_MAX_TOKENS = 96


def dense_linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x: [M, K], weight: [N, K] -> [M, N]."""
    if (x.shape[0] <= SKINNY_MAX_TOKENS and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32 and weight.is_contiguous() and cpu_kernels() is not None):
        return cpu_kernels().skinny_linear(x.contiguous(), weight)
    return F.linear(x, weight)
