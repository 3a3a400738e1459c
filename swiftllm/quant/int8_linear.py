"""INT8 weight-only linear, symmetric per output channel (a drop-in ``Linear``).

``w[o, :] ~= code[o, :] * scale[o]`` with codes in -127..127. Paths, chosen by device and the number of tokens M:
- CUDA: a Triton W8A16 GEMM reads the codes directly (``triton_w8a16_gemm.py``; no float copy of the weight);
- CPU, M <= ``KERNEL_MAX_TOKENS`` on an AVX2 + FMA machine: the C++ kernel (``csrc/int8_linear.cpp``) streams the
  int8 codes and multiplies them, as integers, with the activations held as int16 in blocks of 32 (W8A16 numerics;
  a last partial block stays fp32). docs/quality.md measures the perplexity of both paths;
- otherwise: a float32 GEMM on the codes converted in a temporary, the per-channel scale applied to the output.
  Nothing is cached.
"""
import torch
import torch.nn.functional as F

from swiftllm.worker.kernels.cpu_kernels import cpu_kernels

INT8_MAX = 127


class Int8Linear:
    """y = x @ (codes * scales[:, None]).T; codes int8 [out, in], scales float32 [out]."""
    __slots__ = ("weight", "scales")

    # Up to this many tokens the C++ kernel beats convert + float32 GEMM (benchmarks/bench_quant_linear.py,
    # docs/benchmarks.md).
    KERNEL_MAX_TOKENS = 96

    def __init__(self, weight: torch.Tensor, scales: torch.Tensor):
        assert weight.dim() == 2 and weight.dtype == torch.int8, (
            f"weight must be int8 [out, in], got {weight.dtype} {tuple(weight.shape)}")
        assert scales.shape == (weight.shape[0],) and scales.dtype == torch.float32, "scales must be float32 [out]"
        assert weight.is_contiguous() and scales.is_contiguous(), "int8 state must be contiguous"
        self.weight = weight    # [out, in] int8
        self.scales = scales    # [out] float32

    @staticmethod
    def quantize(weight: torch.Tensor) -> "Int8Linear":
        """Round-to-nearest INT8 of a full-precision ``weight`` [out, in]."""
        w = weight.float()
        scales = (w.abs().amax(dim=1) / INT8_MAX).clamp(min=1e-8)                         # [out]
        codes = torch.round(w / scales.unsqueeze(1)).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
        return Int8Linear(codes.contiguous(), scales.contiguous())

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: [M, in_features] -> [M, out_features] in x's dtype."""
        if x.is_cuda:
            from swiftllm.quant.triton_w8a16_gemm import w8a16_gemm_triton   # Triton loads only for CUDA tensors
            return w8a16_gemm_triton(x.contiguous(), self.weight, self.scales)
        if (x.shape[0] <= self.KERNEL_MAX_TOKENS and x.dtype == torch.float32 and self.weight.is_cpu
                and cpu_kernels() is not None):
            return cpu_kernels().int8_linear(x.contiguous(), self.weight, self.scales)
        return F.linear(x, self.weight.to(x.dtype)) * self.scales.to(x.dtype)

    def rows(self, indices: torch.Tensor) -> torch.Tensor:
        """Rows ``indices`` [T] of the dequantized weight: [T, in_features] float32 (an INT8 embedding table)."""
        return self.weight[indices].float() * self.scales[indices, None]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"weight": self.weight, "scales": self.scales}

    def with_tensors(self, tensors: dict[str, torch.Tensor]) -> "Int8Linear":
        return Int8Linear(tensors["weight"], tensors["scales"])

    def dequantized_weight(self) -> torch.Tensor:
        """[out_features, in_features] float32."""
        return self.weight.float() * self.scales.unsqueeze(1)
