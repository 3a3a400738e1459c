"""INT8 weight-only linear, symmetric per output channel (a drop-in ``Linear``).

``w[o, :] ~= code[o, :] * scale[o]`` with codes in -127..127. On CUDA a Triton W8A16 GEMM reads the codes
directly (``triton_w8a16_gemm.py``; no float copy of the weight, ever). On CPU two paths, chosen by the number of
tokens M (see ``PACKED_KERNEL_MAX_TOKENS``): ``aten._weight_int8pack_mm`` (vectorised only for bf16
activations, so bf16-accurate: relative error about 1e-2) for decode, and for prefill a float32 GEMM
on the codes converted in a temporary, the per-channel scale applied to the output. Nothing is cached.

torch's kernel does not check its inputs: it steps over K in whole vectors (8 on AVX2, 16 on AVX512)
with aligned loads of the activation rows. It therefore only runs when ``in_features % 16 == 0``, on a
freshly allocated (aligned) bf16 copy of x; other shapes always take the float32 path. On AVX512
the weight rows are loaded aligned too: storage handed to ``with_tensors`` must start 64-byte aligned.
"""
import torch
import torch.nn.functional as F

INT8_MAX = 127
PACKED_KERNEL_K_MULTIPLE = 16


class Int8Linear:
    """y = x @ (codes * scales[:, None]).T; codes int8 [out, in], scales float32 [out]."""
    __slots__ = ("weight", "scales")

    # Up to this many tokens the packed bf16 kernel beats convert + float32 GEMM. Measured with
    # benchmarks/bench_quant_linear.py (SmolLM2 shapes, 1 thread, shared 2-core dev CPU),
    # ms per layer packed vs float: M=1 0.62 vs 0.80, M=4 0.91 vs 2.03, M=8 2.66 vs 1.89.
    PACKED_KERNEL_MAX_TOKENS = 4

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
        if self._packed_kernel_fits(x):
            x_bf16 = x.to(torch.bfloat16, memory_format=torch.contiguous_format, copy=True)  # fresh, aligned
            return torch.ops.aten._weight_int8pack_mm(x_bf16, self.weight, self.scales.to(torch.bfloat16)).to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype)) * self.scales.to(x.dtype)

    def _packed_kernel_fits(self, x: torch.Tensor) -> bool:
        return (x.is_cpu and x.shape[0] <= self.PACKED_KERNEL_MAX_TOKENS
                and self.in_features % PACKED_KERNEL_K_MULTIPLE == 0)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"weight": self.weight, "scales": self.scales}

    def with_tensors(self, tensors: dict[str, torch.Tensor]) -> "Int8Linear":
        return Int8Linear(tensors["weight"], tensors["scales"])

    def dequantized_weight(self) -> torch.Tensor:
        """[out_features, in_features] float32."""
        return self.weight.float() * self.scales.unsqueeze(1)
