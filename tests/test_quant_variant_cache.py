"""Variant cache: exact round trip, manifest contents, and refusal of corrupted or foreign files."""
import json
import struct

import pytest
import torch

from swiftllm.quant.calibration import calibration_sequences
from swiftllm.quant.model_quantizer import quantize_model
from swiftllm.quant.spec import VariantSpec
from swiftllm.quant.variant_cache import (VariantCacheError, has_variant, load_variant, model_fingerprint,
                                          save_variant)
from swiftllm.worker.weight import LINEAR_NAMES
from tests.test_quant_support import random_model, tiny_config

SPECS = [VariantSpec("int8"), VariantSpec("rtn", 64), VariantSpec("awq", 32)]


@pytest.fixture(scope="module")
def model():
    cfg = tiny_config()
    return cfg, random_model(cfg)


@pytest.fixture(scope="module")
def variants(model):
    cfg, weights = model
    ids = torch.randint(0, cfg.vocab_size, (64,), generator=torch.Generator().manual_seed(2)).tolist()
    calibration = calibration_sequences(ids, seq_len=32, num_seqs=2)
    return {spec: quantize_model(weights, cfg, spec, calibration) for spec in SPECS}


@pytest.fixture
def cache(tmp_path, model, variants):
    _, weights = model
    model_hash = model_fingerprint(weights)
    for spec, layers in variants.items():
        save_variant(str(tmp_path), spec, layers, model_hash, metadata={"calibration": "2 x 32 random ids"})
    return str(tmp_path), model_hash


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_round_trip_is_exact(cache, variants, spec):
    cache_dir, model_hash = cache
    loaded = load_variant(cache_dir, spec, model_hash)
    for original, back in zip(variants[spec], loaded):
        assert type(back.qkv_proj) is type(original.qkv_proj)
        torch.testing.assert_close(back.attn_norm, original.attn_norm, rtol=0, atol=0)
        for name in LINEAR_NAMES:
            op, op_back = getattr(original, name), getattr(back, name)
            xi = torch.randn(5, op.in_features)
            torch.testing.assert_close(op_back(xi), op(xi), rtol=0, atol=0)
            torch.testing.assert_close(op_back.dequantized_weight(), op.dequantized_weight(), rtol=0, atol=0)


def test_manifest_describes_every_variant(cache):
    cache_dir, model_hash = cache
    with open(f"{cache_dir}/manifest.json") as f:
        manifest = json.load(f)
    assert manifest["model_hash"] == model_hash
    entry = manifest["variants"]["awq-int4-g32"]
    assert (entry["method"], entry["bits"], entry["group_size"], entry["num_layers"]) == ("awq", 4, 32, 2)
    assert entry["linears"]["qkv_proj"] == {"kind": "int4", "in_features": 96, "group_size": 32}
    assert entry["metadata"] == {"calibration": "2 x 32 random ids"}
    assert "layers.1.down_proj.qweight" in entry["sha256"] and len(entry["sha256"]["layers.0.attn_norm"]) == 64
    assert manifest["variants"]["int8"]["linears"]["o_proj"] == {"kind": "int8"}
    assert all(has_variant(cache_dir, spec, model_hash) for spec in SPECS)
    assert not has_variant(cache_dir, VariantSpec("rtn", 128), model_hash)


def flip_byte_in_tensor_data(path: str) -> None:
    with open(path, "r+b") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
        f.seek(8 + header_len + 100)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0x10]))


def test_corrupted_tensor_is_rejected_by_checksum(cache):
    cache_dir, model_hash = cache
    flip_byte_in_tensor_data(f"{cache_dir}/rtn-int4-g64.safetensors")
    with pytest.raises(VariantCacheError, match="fails its sha256 checksum"):
        load_variant(cache_dir, VariantSpec("rtn", 64), model_hash)
    assert len(load_variant(cache_dir, VariantSpec("int8"), model_hash)) == 2      # other variants unaffected


def test_truncated_file_is_rejected(cache):
    cache_dir, model_hash = cache
    path = f"{cache_dir}/int8.safetensors"
    with open(path, "r+b") as f:
        f.truncate(200)
    with pytest.raises(VariantCacheError, match="unreadable"):
        load_variant(cache_dir, VariantSpec("int8"), model_hash)


def test_cache_of_another_model_is_rejected(cache, model, variants):
    cache_dir, _ = cache
    cfg, _ = model
    other_hash = model_fingerprint(random_model(cfg, seed=1))
    with pytest.raises(VariantCacheError, match="built for another model"):
        load_variant(cache_dir, VariantSpec("int8"), other_hash)
    with pytest.raises(VariantCacheError, match="holds variants of another model"):
        save_variant(cache_dir, VariantSpec("int8"), variants[VariantSpec("int8")], other_hash)


def test_missing_variant_and_missing_cache_are_reported(cache, tmp_path_factory):
    cache_dir, model_hash = cache
    with pytest.raises(VariantCacheError, match="'rtn-int4-g128' is not in"):
        load_variant(cache_dir, VariantSpec("rtn", 128), model_hash)
    with pytest.raises(VariantCacheError, match="manifest.json missing"):
        load_variant(str(tmp_path_factory.mktemp("empty")), VariantSpec("int8"), model_hash)


def test_fingerprint_sees_a_single_changed_weight(model):
    cfg, weights = model
    changed = random_model(cfg)
    changed.layers[1].down_proj.weight[3, 7] += 1e-3
    assert model_fingerprint(random_model(cfg)) == model_fingerprint(weights)
    assert model_fingerprint(changed) != model_fingerprint(weights)
