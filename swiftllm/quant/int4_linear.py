"""INT4 group-wise weight-only linear for the CPU (a drop-in ``Linear``).

State (what a weight slot stores): the codes in this project's row-major CPU layout (``int4_layout.py``) and, per
output channel and group, a bf16 ``(scale, offset)`` pair with ``w = (code - 8) * scale + offset``; this is the
tinygemm convention, i.e. ``offset = (8 - zero) * scale`` for our integer zero point.

Paths, chosen by the number of tokens M:
- M <= ``KERNEL_MAX_TOKENS`` on an AVX2 + FMA CPU: the C++ kernel (``csrc/int4_linear.cpp``) streams the 4-bit
  codes and multiplies them, as integers, with the activations held as int16 in blocks of 32 (2^-16 of each block's
  largest value: W4A16 numerics; the per-group offsets see the exact fp32 activations). docs/quality.md measures the
  perplexity of both paths (``swiftllm.quant.linear_path`` forces either);
- otherwise (prefill, or a CPU without AVX2): dequantize to float32 into a temporary, then one float32 GEMM.
  Nothing is cached: a kept full-precision copy would cancel the memory the variant frees.
"""
import torch

from swiftllm.quant.groupwise import GroupQuantized, pad_columns
from swiftllm.quant.int4_layout import pack_int4_rows, unpack_int4_rows
from swiftllm.worker.kernels.cpu_kernels import cpu_kernels

CODE_OFFSET = 8  # codes are stored unsigned: w = (code - 8) * scale + offset


class Int4Linear:
    """y = x @ dequant(W).T with W int4 [out, in] in groups of ``group_size`` input columns."""
    __slots__ = ("weight", "scales_and_zeros", "in_features", "group_size")

    # Up to this many tokens the C++ kernel beats dequantize + float32 GEMM (benchmarks/bench_quant_linear.py,
    # docs/benchmarks.md: per layer 14.8 against 15.5 ms at 96 rows, 29.1 against 23.1 ms at 192); beyond, a GEMM on
    # the dequantized weight is compute-bound and faster.
    KERNEL_MAX_TOKENS = 96

    def __init__(self, weight: torch.Tensor, scales_and_zeros: torch.Tensor, in_features: int, group_size: int):
        out_features, half_padded_in = weight.shape
        assert weight.dtype == torch.uint8, f"weight must be uint8 (packed int4), got {weight.dtype}"
        assert scales_and_zeros.shape == (out_features, 2 * half_padded_in // group_size, 2), (
            f"scales_and_zeros must be [{out_features}, groups, 2], got {tuple(scales_and_zeros.shape)}")
        assert scales_and_zeros.dtype == torch.bfloat16, "scales_and_zeros must be bfloat16"
        assert weight.is_contiguous() and scales_and_zeros.is_contiguous(), "int4 state must be contiguous"
        self.weight = weight                      # [out, padded_in / 2] uint8, int4_layout
        self.scales_and_zeros = scales_and_zeros  # [out, groups, 2] bf16: (scale, offset)
        self.in_features = in_features
        self.group_size = group_size

    @staticmethod
    def from_groups(q: GroupQuantized) -> "Int4Linear":
        scales = q.scales.to(torch.bfloat16)                                               # [out, G]
        offsets = ((CODE_OFFSET - q.zeros.float()) * scales.float()).to(torch.bfloat16)    # [out, G]
        scales_and_zeros = torch.stack([scales, offsets], dim=-1).contiguous()             # [out, G, 2]
        return Int4Linear(pack_int4_rows(q.codes), scales_and_zeros, q.in_features, q.group_size)

    def to_groups(self) -> GroupQuantized:
        """The portable codes / scales / zero points (exact inverse of ``from_groups``)."""
        scales = self.scales_and_zeros[..., 0].float()                                     # [out, G]
        offsets = self.scales_and_zeros[..., 1].float()
        zeros = torch.round(CODE_OFFSET - offsets / scales).clamp(0, 15).to(torch.uint8)
        return GroupQuantized(codes=unpack_int4_rows(self.weight), scales=scales.contiguous(),
                              zeros=zeros.contiguous(), in_features=self.in_features, group_size=self.group_size)

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @property
    def padded_in_features(self) -> int:
        return 2 * self.weight.shape[1]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: [M, in_features] -> [M, out_features] in x's dtype."""
        assert x.dim() == 2 and x.shape[1] == self.in_features, f"x must be [M, {self.in_features}], got {tuple(x.shape)}"
        if (x.shape[0] <= self.KERNEL_MAX_TOKENS and x.dtype == torch.float32 and self.weight.is_cpu
                and cpu_kernels() is not None):     # the kernel pads x with zeros itself
            return cpu_kernels().int4_linear(x.contiguous(), self.weight, self.scales_and_zeros, self.group_size)
        return pad_columns(x, self.padded_in_features) @ self.dequantized_transposed().to(x.dtype)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"weight": self.weight, "scales_and_zeros": self.scales_and_zeros}

    def with_tensors(self, tensors: dict[str, torch.Tensor]) -> "Int4Linear":
        return Int4Linear(tensors["weight"], tensors["scales_and_zeros"], self.in_features, self.group_size)

    def dequantized_weight(self) -> torch.Tensor:
        """[out_features, in_features] float32: exactly what the float32 path multiplies with."""
        return self.dequantized_transposed()[:self.in_features].t().contiguous()

    def dequantized_transposed(self) -> torch.Tensor:
        """[padded_in, out] float32: the temporary the float32 path builds per call (K-major is the fastest order)."""
        num_groups = self.scales_and_zeros.shape[1]
        codes = unpack_int4_rows(self.weight).t().reshape(num_groups, self.group_size, self.out_features)  # [G, g, out]
        params = self.scales_and_zeros.float().transpose(0, 1)                                   # [G, out, 2]
        scales = params[..., 0].unsqueeze(1).contiguous()                                        # [G, 1, out]
        offsets = (params[..., 1] - CODE_OFFSET * params[..., 0]).unsqueeze(1)                   # [G, 1, out]
        weight = codes.float().mul_(scales).add_(offsets)                                        # in place: one temporary
        return weight.view(self.padded_in_features, self.out_features)
