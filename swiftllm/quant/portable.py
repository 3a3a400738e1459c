"""Device- and CPU-independent form of a layer's linear ops, for files (the variant cache).

The in-memory INT4 op keeps the layout of the device's kernels (the CPU's row-major nibbles, ``int4_layout.py``;
AutoAWQ's on CUDA), so INT4 is written in AutoAWQ's GEMM layout and re-packed for the running device on load.
"""
import torch

from swiftllm.quant.awq_format import from_awq_gemm, to_awq_gemm
from swiftllm.quant.awq_linear import AwqLinear
from swiftllm.quant.int4_linear import Int4Linear
from swiftllm.quant.int8_linear import Int8Linear
from swiftllm.quant.variants import build_int4_linear
from swiftllm.worker.layers.linear import DenseLinear, Linear


def linear_to_portable(op: Linear) -> tuple[dict, dict[str, torch.Tensor]]:
    """-> (JSON-able description, tensors); inverse of ``linear_from_portable``."""
    if isinstance(op, DenseLinear):
        return {"kind": "dense"}, {"weight": op.weight}
    if isinstance(op, Int8Linear):
        return {"kind": "int8"}, op.tensors()
    if isinstance(op, (Int4Linear, AwqLinear)):
        meta = {"kind": "int4", "in_features": op.in_features, "group_size": op.group_size}
        return meta, to_awq_gemm(op.to_groups())
    raise TypeError(f"no portable form for linear op {type(op).__name__}")


def linear_from_portable(meta: dict, tensors: dict[str, torch.Tensor], device: torch.device,
                         layout: torch.device | None = None) -> Linear:
    """The op over tensors on ``device`` for the kernels of ``layout`` (default: ``device``)."""
    kind = meta["kind"]
    if kind == "dense":
        return DenseLinear(tensors["weight"].to(device).contiguous())
    if kind == "int8":
        return Int8Linear(tensors["weight"].to(device).contiguous(), tensors["scales"].to(device).contiguous())
    if kind == "int4":
        q = from_awq_gemm(tensors["qweight"], tensors["qzeros"], tensors["scales"], meta["group_size"], meta["in_features"])
        return build_int4_linear(q, device, layout)
    raise ValueError(f"unknown linear kind {kind!r} in a portable description")
