"""Packing round trips: AutoAWQ GEMM layout, torch's CPU INT4 kernel layout, AutoAWQ checkpoint folders."""
import json

import pytest
import torch
from safetensors.torch import save_file

from swiftllm.quant.awq_checkpoint import awq_group_size, load_awq_layers
from swiftllm.quant.awq_format import from_awq_gemm, pack_awq, to_awq_gemm, unpack_awq
from swiftllm.quant.groupwise import dequantize_groups, fake_quantize, quantize_groups
from swiftllm.quant.int4_linear import Int4Linear
from swiftllm.quant.int4_layout import pack_int4_rows, unpack_int4_rows
from tests.test_quant_support import random_layer, tiny_config


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def autoawq_reference_dequantize(qweight, qzeros, scales, group_size):
    """AutoAWQ's own recipe, written independently: shift out nibbles, undo the order, (q - z) * s -> [in, out]."""
    shifts = torch.arange(0, 32, 4)
    reverse_order = [0, 4, 1, 5, 2, 6, 3, 7]

    def unpack(packed):
        nibbles = (packed[:, :, None] >> shifts[None, None, :]).view(packed.shape[0], -1)
        cols = torch.arange(nibbles.shape[1]).view(-1, 8)[:, reverse_order].reshape(-1)
        return nibbles[:, cols] & 0xF
    iweight, izeros = unpack(qweight), unpack(qzeros)
    return (iweight - izeros.repeat_interleave(group_size, 0)) * scales.float().repeat_interleave(group_size, 0)


def test_awq_pack_order_matches_autoawq():
    codes = torch.arange(8, dtype=torch.uint8).view(1, 8)          # channel c holds value c
    packed = pack_awq(codes)
    # nibble i holds channel AWQ_PACK_ORDER[i] = 0, 2, 4, 6, 1, 3, 5, 7
    assert packed.item() & 0xFFFFFFFF == 0x75316420


@pytest.mark.parametrize("rows,cols", [(1, 8), (5, 64), (128, 960)])
def test_awq_pack_round_trip(rows, cols):
    codes = torch.randint(0, 16, (rows, cols), dtype=torch.uint8)
    codes[0, :8] = 15                                              # top nibble set: negative int32
    packed = pack_awq(codes)
    assert packed.dtype == torch.int32 and packed.shape == (rows, cols // 8)
    assert torch.equal(unpack_awq(packed), codes)


def test_awq_pack_rejects_ragged_columns():
    with pytest.raises(ValueError, match="multiple of 8"):
        pack_awq(torch.zeros(2, 12, dtype=torch.uint8))


@pytest.mark.parametrize("in_features,group_size", [(128, 32), (256, 128), (96, 64)])
def test_awq_gemm_tensors_match_autoawq_dequantization(in_features, group_size):
    q = quantize_groups(torch.randn(64, in_features), group_size)
    awq = to_awq_gemm(q)
    padded = q.padded_in_features
    assert awq["qweight"].shape == (padded, 8) and awq["qzeros"].shape == (padded // group_size, 8)
    assert awq["scales"].shape == (padded // group_size, 64) and awq["scales"].dtype == torch.float16
    reference = autoawq_reference_dequantize(awq["qweight"], awq["qzeros"], awq["scales"], group_size)  # [padded, out]
    back = from_awq_gemm(awq["qweight"], awq["qzeros"], awq["scales"], group_size, in_features)
    torch.testing.assert_close(dequantize_groups(back), reference.t()[:, :in_features])
    assert torch.equal(back.codes, q.codes) and torch.equal(back.zeros, q.zeros)
    torch.testing.assert_close(back.scales, q.scales, rtol=1e-3, atol=0)  # fp16 scales


def test_from_awq_gemm_rejects_mismatched_scales():
    awq = to_awq_gemm(quantize_groups(torch.randn(16, 64), 32))
    with pytest.raises(ValueError, match="AWQ scales has shape"):
        from_awq_gemm(awq["qweight"], awq["qzeros"], awq["scales"][:, :8], 32)


@pytest.mark.parametrize("rows,cols", [(3072, 576), (960, 640), (13, 64), (1, 32)])
def test_cpu_int4_layout_round_trip(rows, cols):
    codes = torch.randint(0, 16, (rows, cols), dtype=torch.uint8)
    packed = pack_int4_rows(codes)
    assert packed.shape == (rows, cols // 2) and packed.dtype == torch.uint8
    assert torch.equal(unpack_int4_rows(packed), codes)


def test_cpu_int4_layout_pairs_code_j_with_code_j_plus_16_in_each_chunk():
    codes = torch.arange(32, dtype=torch.uint8).remainder(16).view(1, 32)
    codes[0, 16:] = 15 - codes[0, 16:]
    packed = pack_int4_rows(codes)
    assert packed[0, 0].item() == codes[0, 0].item() | (codes[0, 16].item() << 4)
    assert packed[0, 15].item() == codes[0, 15].item() | (codes[0, 31].item() << 4)


def test_cpu_int4_layout_rejects_unpadded_rows():
    with pytest.raises(ValueError, match="multiple of 32"):
        pack_int4_rows(torch.zeros(4, 48, dtype=torch.uint8))


def test_int4_linear_round_trips_its_portable_codes():
    q = quantize_groups(torch.randn(96, 100), 64)
    back = Int4Linear.from_groups(q).to_groups()
    assert torch.equal(back.codes, q.codes) and torch.equal(back.zeros, q.zeros)
    torch.testing.assert_close(back.scales, q.scales, rtol=4e-3, atol=0)  # bf16 scales


HF_MODULES = {"self_attn.q_proj": "wq", "self_attn.k_proj": "wk", "self_attn.v_proj": "wv", "self_attn.o_proj": "wo",
              "mlp.gate_proj": "w_gate", "mlp.up_proj": "w_up", "mlp.down_proj": "w_down"}


def write_autoawq_folder(path, cfg, separate_weights, group_size):
    """A checkpoint laid out like AutoAWQ's output: per-module qweight/qzeros/scales, fp16 norms."""
    tensors = {}
    for i, layer in enumerate(separate_weights):
        for module, key in HF_MODULES.items():
            for name, t in to_awq_gemm(quantize_groups(layer[key], group_size)).items():
                tensors[f"model.layers.{i}.{module}.{name}"] = t
        tensors[f"model.layers.{i}.input_layernorm.weight"] = layer["attn_norm"].half()
        tensors[f"model.layers.{i}.post_attention_layernorm.weight"] = layer["ffn_norm"].half()
    save_file(tensors, str(path / "model.safetensors"))
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": cfg.num_layers,
              "hidden_size": cfg.hidden_size, "intermediate_size": cfg.intermediate_size,
              "num_attention_heads": cfg.num_q_heads, "num_key_value_heads": cfg.num_kv_heads, "head_dim": cfg.head_dim,
              "vocab_size": cfg.vocab_size,
              "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": group_size,
                                      "zero_point": True, "version": "gemm"}}
    (path / "config.json").write_text(json.dumps(config))


def test_autoawq_checkpoint_loads_as_fused_int4_layers(tmp_path):
    cfg = tiny_config(hidden=128, intermediate=256)
    generator = torch.Generator().manual_seed(1)
    separate = []
    for _ in range(cfg.num_layers):
        layer = random_layer(cfg, generator)
        q, k, v = layer.qkv_proj.weight.split([cfg.q_size, cfg.kv_size, cfg.kv_size])
        gate, up = layer.gate_up_proj.weight.chunk(2)
        separate.append({"wq": q, "wk": k, "wv": v, "wo": layer.o_proj.weight, "w_gate": gate, "w_up": up,
                         "w_down": layer.down_proj.weight, "attn_norm": layer.attn_norm, "ffn_norm": layer.ffn_norm})
    write_autoawq_folder(tmp_path, cfg, separate, group_size=64)

    assert awq_group_size(str(tmp_path)) == 64
    layers = load_awq_layers(str(tmp_path))
    assert len(layers) == cfg.num_layers
    for layer, ref in zip(layers, separate):
        expected_qkv = torch.cat([fake_quantize(ref[k], 64) for k in ("wq", "wk", "wv")])
        expected_gate_up = torch.cat([fake_quantize(ref[k], 64) for k in ("w_gate", "w_up")])
        for op, expected in ((layer.qkv_proj, expected_qkv), (layer.gate_up_proj, expected_gate_up),
                             (layer.o_proj, fake_quantize(ref["wo"], 64)),
                             (layer.down_proj, fake_quantize(ref["w_down"], 64))):
            assert isinstance(op, Int4Linear)
            tolerance = expected.abs().max().item() * 2e-2                      # bf16 scales in the CPU op
            torch.testing.assert_close(op.dequantized_weight(), expected, rtol=0, atol=tolerance)
        torch.testing.assert_close(layer.attn_norm, ref["attn_norm"].half().float())


def test_non_awq_checkpoint_is_rejected(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "gptq", "bits": 4}}))
    with pytest.raises(ValueError, match="only 4-bit zero-point AWQ"):
        awq_group_size(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="not an AWQ checkpoint"):
        awq_group_size(str(tmp_path))
