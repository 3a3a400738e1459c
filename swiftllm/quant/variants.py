"""Quantized variants of a decoder layer: each is a complete ``LayerWeights`` whose linears are quantized ops.

``model.py`` never sees the difference: a variant is swapped in by replacing the layer object.
"""
import dataclasses
from typing import Callable

import torch

from swiftllm.quant.awq_linear import AwqLinear
from swiftllm.quant.groupwise import DEFAULT_GROUP_SIZE, GroupQuantized, quantize_groups
from swiftllm.quant.int4_linear import Int4Linear
from swiftllm.quant.int8_linear import Int8Linear
from swiftllm.worker.layers.linear import Linear
from swiftllm.worker.weight import LINEAR_NAMES, LayerWeights


def map_linears(layer: LayerWeights, convert: Callable[[str, Linear], Linear]) -> LayerWeights:
    """The same layer with every linear op replaced by ``convert(name, op)``; norms are kept."""
    return dataclasses.replace(layer, **{name: convert(name, getattr(layer, name)) for name in LINEAR_NAMES})


def build_int4_linear(q: GroupQuantized, device: torch.device, layout: torch.device | None = None) -> Linear:
    """The INT4 op over tensors on ``device`` for the kernels of ``layout`` (default: ``device``): the C++ kernel's
    row-major nibble layout for a CPU, AutoAWQ's layout for CUDA (e.g. a CUDA variant kept in host memory)."""
    layout = device if layout is None else torch.device(layout)
    q = GroupQuantized(q.codes.to(device), q.scales.to(device), q.zeros.to(device), q.in_features, q.group_size)
    return AwqLinear.from_groups(q) if layout.type == "cuda" else Int4Linear.from_groups(q)


def quantize_layer_rtn(layer: LayerWeights, bits: int = 4, group_size: int = DEFAULT_GROUP_SIZE) -> LayerWeights:
    """Round-to-nearest asymmetric INT4 (the AWQ baseline); norms unchanged."""
    if bits != 4:
        raise ValueError(f"RTN variants are 4-bit group-wise, got bits={bits}; use quantize_layer_int8 for 8-bit")
    device = layer.attn_norm.device
    return map_linears(layer, lambda _, op: build_int4_linear(quantize_groups(op.dequantized_weight(), group_size), device))


def quantize_layer_int8(layer: LayerWeights) -> LayerWeights:
    """INT8 weight-only, per output channel; norms unchanged."""
    return map_linears(layer, lambda _, op: Int8Linear.quantize(op.dequantized_weight()))
