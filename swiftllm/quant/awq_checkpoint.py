"""Decoder layers of a published AutoAWQ / llm-awq checkpoint (HF folder, "GEMM" packing) as INT4 variants.

The folder holds ``config.json`` (with ``quantization_config``, or a separate ``quant_config.json``)
and safetensors with ``model.layers.<i>.<module>.{qweight,qzeros,scales}`` per linear plus the
full-precision norms. q/k/v and gate/up are fused into our four ops on load.
"""
import json
import os

import torch
from safetensors import safe_open

from swiftllm.model_config import LlamaModelConfig
from swiftllm.quant.awq_format import from_awq_gemm
from swiftllm.quant.groupwise import check_group_size, concat_rows
from swiftllm.quant.variants import build_int4_linear
from swiftllm.worker.weight import LayerWeights
from swiftllm.worker.weight_loader import safetensors_files

# our op -> the checkpoint modules fused into it, in row order
FUSED_MODULES = {
    "qkv_proj": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "o_proj": ("self_attn.o_proj",),
    "gate_up_proj": ("mlp.gate_proj", "mlp.up_proj"),
    "down_proj": ("mlp.down_proj",),
}
NORM_MODULES = {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}


def awq_group_size(path: str) -> int:
    """Check the folder is a 4-bit, zero-point, GEMM-packed AWQ checkpoint; return its group size."""
    qcfg = _quantization_config(path)
    method = qcfg.get("quant_method", "awq")
    bits = qcfg.get("bits", qcfg.get("w_bit"))
    version = str(qcfg.get("version", "gemm")).lower()
    if method != "awq" or bits != 4 or version != "gemm" or not qcfg.get("zero_point", True):
        raise ValueError(f"{path}: only 4-bit zero-point AWQ checkpoints in GEMM packing are supported, got {qcfg}")
    group_size = qcfg.get("group_size", qcfg.get("q_group_size"))
    check_group_size(group_size)
    return group_size


def load_awq_layers(path: str, device: str | torch.device = "cpu",
                    norm_dtype: torch.dtype = torch.float32) -> list[LayerWeights]:
    """Every decoder layer of the checkpoint at ``path`` as an INT4 ``LayerWeights`` for ``device``."""
    cfg = LlamaModelConfig.from_hf_folder(path)
    group_size = awq_group_size(path)
    device = torch.device(device)
    get = _tensor_reader(path)
    in_features = {"qkv_proj": cfg.hidden_size, "o_proj": cfg.q_size, "gate_up_proj": cfg.hidden_size,
                   "down_proj": cfg.intermediate_size}

    def layer(i: int) -> LayerWeights:
        prefix = f"model.layers.{i}."
        ops = {}
        for op, modules in FUSED_MODULES.items():
            parts = [from_awq_gemm(get(f"{prefix}{m}.qweight"), get(f"{prefix}{m}.qzeros"), get(f"{prefix}{m}.scales"),
                                   group_size, in_features[op]) for m in modules]
            ops[op] = build_int4_linear(concat_rows(parts), device)
        norms = {ours: get(f"{prefix}{theirs}.weight").to(device=device, dtype=norm_dtype)
                 for ours, theirs in NORM_MODULES.items()}
        return LayerWeights(**norms, **ops)

    return [layer(i) for i in range(cfg.num_layers)]


def _quantization_config(path: str) -> dict:
    with open(os.path.join(path, "config.json")) as f:
        qcfg = json.load(f).get("quantization_config")
    separate = os.path.join(path, "quant_config.json")
    if qcfg is None and os.path.isfile(separate):
        with open(separate) as f:
            qcfg = json.load(f)
    if qcfg is None:
        raise ValueError(f"{path}: no quantization_config in config.json and no quant_config.json: not an AWQ checkpoint")
    return qcfg


def _tensor_reader(path: str):
    where = {}
    for file in safetensors_files(path):
        with safe_open(file, framework="pt") as f:
            where.update({name: file for name in f.keys()})

    def get(name: str) -> torch.Tensor:
        if name not in where:
            raise KeyError(f"{path}: tensor {name!r} missing from the AWQ checkpoint")
        with safe_open(where[name], framework="pt") as f:
            return f.get_tensor(name)
    return get
