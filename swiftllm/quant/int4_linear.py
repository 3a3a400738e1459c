"""INT4 group-wise weight-only linear for the CPU (a drop-in ``Linear``).

State (what a weight slot stores): the codes in torch's CPU INT4 kernel layout and, per group and
output channel, a bf16 ``(scale, offset)`` pair with ``w = (code - 8) * scale + offset``; this is the
tinygemm convention, i.e. ``offset = (8 - zero) * scale`` for our integer zero point.

Paths, chosen by the number of tokens M:
- M <= ``FUSED_KERNEL_MAX_TOKENS`` on an AVX2 CPU whose torch packs in 32-row blocks (this project's
  machines): our C++ kernel (``csrc/int4pack_linear.cpp``) reads the 4-bit weight directly with fp32
  activations (float32-accurate). ``benchmarks/bench_quant_linear.py --threads 2``, ms per SmolLM2 layer at
  M = 1 / 32 / 64 / 192: 0.27 / 1.71 / 3.10 / 9.05, against torch's packed kernel 0.36 / 3.04 / 5.98 / 18.1 and
  dequantize + GEMM 2.35 / 4.51 / 6.24 / 12.0 (fp32 weights: 0.48 / 1.82 / 3.28 / 8.94; docs/benchmarks.md);
- otherwise, small M (decode): ``aten._weight_int4pack_mm_for_cpu``. It is only vectorised for bf16
  activations, so x is rounded to bf16 and the result is bf16-accurate (relative error about 1e-2);
- large M (prefill): dequantize to float32 into a temporary, then one float32 GEMM. Nothing is cached:
  a kept full-precision copy would cancel the memory the variant frees.
"""
from functools import cache

import torch

from swiftllm.quant.groupwise import GroupQuantized, pad_columns
from swiftllm.quant.int4pack_layout import (
    Int4PackLayout, cpu_int4pack_layout, pack_int4pack, unpack_int4pack, unpack_int4pack_k_major,
)
from swiftllm.worker.kernels.cpu_kernels import cpu_kernels

CODE_OFFSET = 8  # the CPU kernel reads codes as signed int4: code - 8


class Int4Linear:
    """y = x @ dequant(W).T with W int4 [out, in] in groups of ``group_size`` input columns."""
    __slots__ = ("weight", "scales_and_zeros", "in_features", "group_size")

    # Up to this many tokens the packed bf16 kernel beats dequantize + float32 GEMM. Measured with
    # benchmarks/bench_quant_linear.py (SmolLM2 shapes, group 128, 1 thread, shared 2-core dev CPU),
    # ms per layer packed vs float: M=16 4.6 vs 7.6, M=32 9.4 vs 9.8, M=64 19.5 vs 13.6.
    PACKED_KERNEL_MAX_TOKENS = 32
    FUSED_KERNEL_MAX_TOKENS = 192

    def __init__(self, weight: torch.Tensor, scales_and_zeros: torch.Tensor, in_features: int, group_size: int):
        out_features, half_padded_in = weight.shape
        assert weight.dtype == torch.uint8, f"weight must be uint8 (packed int4), got {weight.dtype}"
        assert scales_and_zeros.shape == (2 * half_padded_in // group_size, out_features, 2), (
            f"scales_and_zeros must be [groups, {out_features}, 2], got {tuple(scales_and_zeros.shape)}")
        assert scales_and_zeros.dtype == torch.bfloat16, "scales_and_zeros must be bfloat16"
        assert weight.is_contiguous() and scales_and_zeros.is_contiguous(), "int4 state must be contiguous"
        self.weight = weight                      # [out, padded_in / 2] uint8, CPU kernel layout
        self.scales_and_zeros = scales_and_zeros  # [groups, out, 2] bf16: (scale, offset)
        self.in_features = in_features
        self.group_size = group_size

    @staticmethod
    def from_groups(q: GroupQuantized) -> "Int4Linear":
        scales = q.scales.to(torch.bfloat16)                                               # [out, G]
        offsets = ((CODE_OFFSET - q.zeros.float()) * scales.float()).to(torch.bfloat16)    # [out, G]
        scales_and_zeros = torch.stack([scales.t(), offsets.t()], dim=-1).contiguous()     # [G, out, 2]
        return Int4Linear(pack_int4pack(q.codes), scales_and_zeros, q.in_features, q.group_size)

    def to_groups(self) -> GroupQuantized:
        """The portable codes / scales / zero points (exact inverse of ``from_groups``)."""
        scales = self.scales_and_zeros[..., 0].t().float()                                 # [out, G]
        offsets = self.scales_and_zeros[..., 1].t().float()
        zeros = torch.round(CODE_OFFSET - offsets / scales).clamp(0, 15).to(torch.uint8)
        return GroupQuantized(codes=unpack_int4pack(self.weight), scales=scales.contiguous(), zeros=zeros.contiguous(),
                              in_features=self.in_features, group_size=self.group_size)

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @property
    def padded_in_features(self) -> int:
        return 2 * self.weight.shape[1]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: [M, in_features] -> [M, out_features] in x's dtype."""
        assert x.dim() == 2 and x.shape[1] == self.in_features, f"x must be [M, {self.in_features}], got {tuple(x.shape)}"
        x_padded = pad_columns(x, self.padded_in_features)                                 # [M, padded_in]
        if x.shape[0] <= self.FUSED_KERNEL_MAX_TOKENS and x.dtype == torch.float32 and self._fused_kernel_applies():
            return cpu_kernels().int4pack_linear(x_padded.contiguous(), self.weight, self.scales_and_zeros,
                                                 self.group_size)
        if x.shape[0] <= self.PACKED_KERNEL_MAX_TOKENS:
            out = torch.ops.aten._weight_int4pack_mm_for_cpu(
                x_padded.to(torch.bfloat16), self.weight, self.group_size, self.scales_and_zeros)
            return out.to(x.dtype)
        return x_padded @ self.dequantized_transposed().to(x.dtype)

    def _fused_kernel_applies(self) -> bool:
        return (self.weight.device.type == "cpu" and self.out_features % FUSED_KERNEL_LAYOUT.block_n == 0
                and _fused_kernel_available())

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"weight": self.weight, "scales_and_zeros": self.scales_and_zeros}

    def with_tensors(self, tensors: dict[str, torch.Tensor]) -> "Int4Linear":
        return Int4Linear(tensors["weight"], tensors["scales_and_zeros"], self.in_features, self.group_size)

    def dequantized_weight(self) -> torch.Tensor:
        """[out_features, in_features] float32: exactly what the float32 path multiplies with."""
        return self.dequantized_transposed()[:self.in_features].t().contiguous()

    def dequantized_transposed(self) -> torch.Tensor:
        """[padded_in, out] float32: the temporary the float32 path builds per call (K-major is the fastest order)."""
        num_groups = self.scales_and_zeros.shape[0]
        codes = unpack_int4pack_k_major(self.weight).view(num_groups, self.group_size, self.out_features)  # [G, g, out]
        params = self.scales_and_zeros.float()                                                  # [G, out, 2]
        scales = params[..., 0].unsqueeze(1).contiguous()                                       # [G, 1, out]
        offsets = (params[..., 1] - CODE_OFFSET * params[..., 0]).unsqueeze(1)                  # [G, 1, out]
        weight = codes.float().mul_(scales).add_(offsets)                                       # in place: one temporary
        return weight.view(self.padded_in_features, self.out_features)


FUSED_KERNEL_LAYOUT = Int4PackLayout(block_n=32, split_halves=True)   # the layout csrc/int4pack_linear.cpp reads


@cache
def _fused_kernel_available() -> bool:
    """Whether this CPU runs the C++ kernel and torch packs INT4 in the layout it reads."""
    return cpu_kernels() is not None and cpu_int4pack_layout() == FUSED_KERNEL_LAYOUT
