"""INT4 linear over the AutoAWQ GEMM layout: the CUDA INT4 variant (a drop-in ``Linear``).

On CUDA it runs AutoAWQ's kernel when the ``awq_ext`` extension (AutoAWQ_kernels) is installed and the
activations are float16 (the only dtype it takes), otherwise our Triton W4A16 GEMM. On CPU (tests, or a CUDA
variant inspected on the host) it dequantizes into a temporary and runs a float GEMM; the CPU engine uses
``Int4Linear`` instead.
"""
import functools
import importlib
import importlib.util

import torch
import torch.nn.functional as F

from swiftllm.quant.awq_format import from_awq_gemm, to_awq_gemm
from swiftllm.quant.groupwise import GroupQuantized, dequantize_groups, pad_columns

AWQ_EXT_SPLIT_K = 8  # AutoAWQ's own choice for gemm_forward_cuda


class AwqLinear:
    """y = x @ dequant(W).T; W stored as AutoAWQ qweight / qzeros / scales."""
    __slots__ = ("qweight", "qzeros", "scales", "in_features", "group_size")

    def __init__(self, qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor, in_features: int, group_size: int):
        assert qweight.dtype == torch.int32 and qzeros.dtype == torch.int32, "qweight and qzeros must be int32"
        assert all(t.is_contiguous() for t in (qweight, qzeros, scales)), "AWQ state must be contiguous"
        self.qweight = qweight    # [padded_in, out / 8] int32
        self.qzeros = qzeros      # [groups, out / 8] int32
        self.scales = scales      # [groups, out] fp16
        self.in_features = in_features
        self.group_size = group_size

    @staticmethod
    def from_groups(q: GroupQuantized) -> "AwqLinear":
        packed = to_awq_gemm(q)
        return AwqLinear(packed["qweight"], packed["qzeros"], packed["scales"], q.in_features, q.group_size)

    def to_groups(self) -> GroupQuantized:
        return from_awq_gemm(self.qweight, self.qzeros, self.scales, self.group_size, self.in_features)

    @property
    def out_features(self) -> int:
        return self.scales.shape[1]

    @property
    def padded_in_features(self) -> int:
        return self.qweight.shape[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: [M, in_features] -> [M, out_features] in x's dtype."""
        assert x.dim() == 2 and x.shape[1] == self.in_features, f"x must be [M, {self.in_features}], got {tuple(x.shape)}"
        if not x.is_cuda:
            return F.linear(x, self.dequantized_weight().to(x.dtype))
        x_padded = pad_columns(x, self.padded_in_features).contiguous()                    # [M, padded_in]
        if awq_ext_takes(x):
            awq_ext = importlib.import_module("awq_ext")
            return awq_ext.gemm_forward_cuda(x_padded, self.qweight, self.scales, self.qzeros, AWQ_EXT_SPLIT_K)
        from swiftllm.quant.triton_awq_gemm import awq_gemm_triton   # Triton loads only for CUDA tensors
        return awq_gemm_triton(x_padded, self.qweight, self.qzeros, self.scales, self.group_size)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"qweight": self.qweight, "qzeros": self.qzeros, "scales": self.scales}

    def with_tensors(self, tensors: dict[str, torch.Tensor]) -> "AwqLinear":
        return AwqLinear(tensors["qweight"], tensors["qzeros"], tensors["scales"], self.in_features, self.group_size)

    def dequantized_weight(self) -> torch.Tensor:
        """[out_features, in_features] float32."""
        return dequantize_groups(self.to_groups())


def awq_ext_takes(x: torch.Tensor) -> bool:
    """Whether AutoAWQ's kernel is installed and takes activations ``x`` (float16 only)."""
    return x.dtype == torch.float16 and _has_awq_ext()


@functools.cache
def _has_awq_ext() -> bool:
    return importlib.util.find_spec("awq_ext") is not None
