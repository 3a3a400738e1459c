"""Group-wise asymmetric INT4 quantization (the math every INT4 variant shares).

A weight ``[out, in]`` is cut along ``in`` into groups of ``group_size`` columns; each (row, group)
gets a float scale and an integer zero point, and ``w ~= (code - zero) * scale`` with codes in 0..15.
The range always contains 0 (as in GPTQ), so the zero point is a valid code and a group that does
not straddle 0 is not clamped at one end.

Padding: when ``in`` is not a multiple of ``group_size`` (SmolLM2's hidden size 576 with groups of
128), the last group is partial. Its statistics use only the real columns, and the codes are stored
padded to ``padded_in = ceil(in / group_size) * group_size`` columns; the padded codes equal the
group's zero point, so they dequantize to exactly 0 and a zero-padded input sees no difference.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SUPPORTED_GROUP_SIZES = (32, 64, 128)
DEFAULT_GROUP_SIZE = 128
INT4_MAX = 15
MIN_SCALE = 1e-5 / INT4_MAX  # a constant group still gets a usable (tiny) scale


@dataclass(slots=True)
class GroupQuantized:
    """INT4 codes of one weight matrix; the portable form every INT4 op is built from."""
    codes: torch.Tensor    # [out, padded_in] uint8 in 0..15
    scales: torch.Tensor   # [out, groups] float32
    zeros: torch.Tensor    # [out, groups] uint8 in 0..15 (integer zero points)
    in_features: int       # real columns (<= padded_in)
    group_size: int

    @property
    def out_features(self) -> int:
        return self.codes.shape[0]

    @property
    def padded_in_features(self) -> int:
        return self.codes.shape[1]

    @property
    def num_groups(self) -> int:
        return self.scales.shape[1]


def check_group_size(group_size: int) -> None:
    if group_size not in SUPPORTED_GROUP_SIZES:
        raise ValueError(f"group_size must be one of {SUPPORTED_GROUP_SIZES}, got {group_size}")


def padded_in_features(in_features: int, group_size: int) -> int:
    return -(-in_features // group_size) * group_size


def pad_columns(x: torch.Tensor, padded_width: int) -> torch.Tensor:
    """Zero-pad the last dimension of ``x`` to ``padded_width`` (no copy when already that wide)."""
    extra = padded_width - x.shape[-1]
    return x if extra == 0 else F.pad(x, (0, extra))


def quantize_groups(weight: torch.Tensor, group_size: int = DEFAULT_GROUP_SIZE,
                    clip_ratio: torch.Tensor | None = None) -> GroupQuantized:
    """Round-to-nearest asymmetric INT4 of ``weight`` [out, in].

    clip_ratio: optional [out, groups] in (0, 1]; each group is first clamped to
    ``+-clip_ratio * max|w|`` (AWQ's clipping search picks these ratios).
    """
    check_group_size(group_size)
    if weight.dim() != 2:
        raise ValueError(f"weight must be [out, in], got shape {tuple(weight.shape)}")
    out_features, in_features = weight.shape
    padded = padded_in_features(in_features, group_size)
    groups = _replicate_pad(weight.float(), padded).view(out_features, -1, group_size)  # [out, G, g]
    if clip_ratio is not None:
        limit = (groups.abs().amax(dim=-1) * clip_ratio).unsqueeze(-1)                   # [out, G, 1]
        groups = torch.maximum(torch.minimum(groups, limit), -limit)
    w_min = groups.amin(dim=-1).clamp(max=0)                                               # [out, G]
    w_max = groups.amax(dim=-1).clamp(min=0)
    scales = ((w_max - w_min) / INT4_MAX).clamp(min=MIN_SCALE)
    zeros = (-torch.round(w_min / scales)).clamp(0, INT4_MAX)
    codes = (torch.round(groups / scales.unsqueeze(-1)) + zeros.unsqueeze(-1)).clamp(0, INT4_MAX)
    codes = codes.view(out_features, padded)
    codes[:, in_features:] = zeros[:, -1:]
    return GroupQuantized(codes=codes.to(torch.uint8), scales=scales, zeros=zeros.to(torch.uint8),
                          in_features=in_features, group_size=group_size)


def dequantize_groups(q: GroupQuantized) -> torch.Tensor:
    """[out, in] float32 (padding columns dropped)."""
    groups = q.codes.view(q.out_features, q.num_groups, q.group_size).float()            # [out, G, g]
    weight = (groups - q.zeros.unsqueeze(-1).float()) * q.scales.unsqueeze(-1)
    return weight.view(q.out_features, q.padded_in_features)[:, :q.in_features]


def fake_quantize(weight: torch.Tensor, group_size: int = DEFAULT_GROUP_SIZE,
                  clip_ratio: torch.Tensor | None = None) -> torch.Tensor:
    """Quantize then dequantize: what the INT4 variant of ``weight`` computes with ([out, in], float32)."""
    return dequantize_groups(quantize_groups(weight, group_size, clip_ratio))


def concat_rows(parts: list[GroupQuantized]) -> GroupQuantized:
    """Stack several quantized matrices with the same columns along ``out`` (e.g. q, k, v -> qkv)."""
    first = parts[0]
    if any(p.in_features != first.in_features or p.group_size != first.group_size for p in parts):
        raise ValueError("only matrices with the same in_features and group_size can be stacked")
    return GroupQuantized(codes=torch.cat([p.codes for p in parts]), scales=torch.cat([p.scales for p in parts]),
                          zeros=torch.cat([p.zeros for p in parts]), in_features=first.in_features,
                          group_size=first.group_size)


def _replicate_pad(weight: torch.Tensor, padded_width: int) -> torch.Tensor:
    """Pad columns by repeating the last one, so a partial group's min/max see only real values."""
    extra = padded_width - weight.shape[1]
    if extra == 0:
        return weight.contiguous()
    return F.pad(weight.unsqueeze(0), (0, extra), mode="replicate").squeeze(0)
