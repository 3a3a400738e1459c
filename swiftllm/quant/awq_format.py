"""AutoAWQ / llm-awq "GEMM" packing of INT4 weights.

A linear with ``in`` inputs and ``out`` outputs, groups of ``g`` input columns, is stored as
- ``qweight`` int32 [in, out / 8]: eight 4-bit codes per int32, along ``out``;
- ``qzeros``  int32 [in / g, out / 8]: the integer zero points, packed the same way;
- ``scales``  fp16  [in / g, out].
Inside one int32, nibble ``i`` (bits ``4i .. 4i+3``) holds output channel ``8c + AWQ_PACK_ORDER[i]``
(the interleave AWQ's CUDA kernels unpack fastest); ``w[o, k] = (code - zero) * scale``.
"""
import torch

from swiftllm.quant.groupwise import GroupQuantized

AWQ_PACK_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)
CODES_PER_INT32 = 8
# bit offset of channel c (within its group of 8): 4 * (position of c in AWQ_PACK_ORDER)
_CHANNEL_SHIFTS = tuple(4 * AWQ_PACK_ORDER.index(c) for c in range(CODES_PER_INT32))


def pack_awq(codes: torch.Tensor) -> torch.Tensor:
    """codes [rows, cols] with values 0..15 (cols a multiple of 8) -> int32 [rows, cols / 8]."""
    rows, cols = codes.shape
    if cols % CODES_PER_INT32 != 0:
        raise ValueError(f"AWQ packing needs a multiple of {CODES_PER_INT32} columns, got {cols}")
    grouped = codes.to(torch.int32).view(rows, cols // CODES_PER_INT32, CODES_PER_INT32)
    packed = torch.zeros(rows, cols // CODES_PER_INT32, dtype=torch.int32, device=codes.device)
    for channel, shift in enumerate(_CHANNEL_SHIFTS):
        packed |= grouped[:, :, channel] << shift       # int32 shifts wrap: channel 7 fills the sign bit
    return packed


def unpack_awq(packed: torch.Tensor) -> torch.Tensor:
    """int32 [rows, cols / 8] -> codes uint8 [rows, cols] in natural channel order."""
    rows, packed_cols = packed.shape
    shifts = torch.tensor(_CHANNEL_SHIFTS, dtype=torch.int32, device=packed.device)
    codes = (packed.unsqueeze(-1) >> shifts) & 0xF                                     # [rows, cols/8, 8]
    return codes.to(torch.uint8).view(rows, packed_cols * CODES_PER_INT32)


def to_awq_gemm(q: GroupQuantized) -> dict[str, torch.Tensor]:
    """Our [out, in] codes -> AutoAWQ GEMM tensors (``in`` padded to whole groups)."""
    return {
        "qweight": pack_awq(q.codes.t()),          # [padded_in, out / 8]
        "qzeros": pack_awq(q.zeros.t()),           # [groups, out / 8]
        "scales": q.scales.t().to(torch.float16).contiguous(),  # [groups, out]
    }


def from_awq_gemm(qweight: torch.Tensor, qzeros: torch.Tensor, scales: torch.Tensor,
                  group_size: int, in_features: int | None = None) -> GroupQuantized:
    """AutoAWQ GEMM tensors -> our codes. ``in_features`` drops padding rows (default: none)."""
    padded_in, packed_out = qweight.shape
    num_groups = padded_in // group_size
    expected = {"qzeros": (num_groups, packed_out), "scales": (num_groups, packed_out * CODES_PER_INT32)}
    for name, tensor in (("qzeros", qzeros), ("scales", scales)):
        if tuple(tensor.shape) != expected[name]:
            raise ValueError(f"AWQ {name} has shape {tuple(tensor.shape)}, expected {expected[name]} "
                             f"for qweight {tuple(qweight.shape)} and group_size {group_size}")
    if padded_in % group_size != 0:
        raise ValueError(f"AWQ qweight has {padded_in} input rows, not a multiple of group_size {group_size}")
    return GroupQuantized(codes=unpack_awq(qweight).t().contiguous(), scales=scales.t().float().contiguous(),
                          zeros=unpack_awq(qzeros).t().contiguous(),
                          in_features=padded_in if in_features is None else in_features, group_size=group_size)
