"""References for the CPU quantized-linear kernels, which round the activations to int16 in blocks of 32 columns
(``csrc/int16_activations.h``): per block, scale = max|x| / 32767 and x ~= round(x * (1 / scale)) * scale, half to even."""
import torch
import torch.nn.functional as F

from swiftllm.quant.int4_linear import CODE_OFFSET, Int4Linear
from swiftllm.quant.int8_linear import Int8Linear

BLOCK = 32


def rounded_activations(x: torch.Tensor) -> torch.Tensor:
    """x [M, K] with every whole block of 32 columns rounded as the kernels round it; a partial last block kept."""
    whole = x.shape[1] // BLOCK * BLOCK
    blocks = x[:, :whole].reshape(x.shape[0], -1, BLOCK)                               # [M, K / 32, 32]
    scales = blocks.abs().amax(dim=-1, keepdim=True) / 32767                            # [M, K / 32, 1]
    inverse = torch.where(scales > 0, 1 / scales, torch.zeros_like(scales))           # as the kernels compute it
    codes = torch.round(blocks * inverse)
    return torch.cat([(codes * scales).reshape(x.shape[0], whole), x[:, whole:]], dim=1)


def int8_kernel_reference(op: Int8Linear, x: torch.Tensor) -> torch.Tensor:
    return rounded_activations(x) @ op.dequantized_weight().t()


def int4_kernel_reference(op: Int4Linear, x: torch.Tensor) -> torch.Tensor:
    """The code term sees the rounded activations, the per-group offset term the exact ones."""
    x = F.pad(x, (0, op.padded_in_features - x.shape[1]))                             # [M, padded_in]
    params = op.scales_and_zeros.float()                                              # [out, G, 2]
    scales, biases = params[..., 0], params[..., 1] - CODE_OFFSET * params[..., 0]      # [out, G]
    codes = op.to_groups().codes.float().view(op.out_features, -1, op.group_size)     # [out, G, g]
    scaled_codes = (codes * scales.unsqueeze(-1)).view(op.out_features, -1)            # [out, padded_in]
    biases = biases.repeat_interleave(op.group_size, dim=1)                           # [out, padded_in]
    return rounded_activations(x) @ scaled_codes.t() + x @ biases.t()


def kernel_reference(op, x: torch.Tensor) -> torch.Tensor:
    return int4_kernel_reference(op, x) if isinstance(op, Int4Linear) else int8_kernel_reference(op, x)
