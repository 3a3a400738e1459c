"""Defect 3 of issue 13 on the CPU: the warm-up runs every kernel variant the serving path can pick.

On a GPU each run compiles a Triton variant (``tests/gpu/test_engine_gpu.py::test_nothing_compiles_after_the_warm_ups``
checks that nothing compiles after it); here the calls themselves are recorded: every quantized precision's linears
at one row count per GEMM tile, and the model at a prefill, a decode row in one context partition and one in the
most partitions.
"""
import pytest
import torch

import swiftllm.worker.model
from morph.layer_store import LayerStore
from morph.plan import Precision
from morph.variant_warm_up import warm_up_variants
from swiftllm.quant.int4_linear import Int4Linear
from swiftllm.quant.int8_linear import Int8Linear
from swiftllm.quant.lm_head import with_int8_lm_head
from swiftllm.quant.model_quantizer import quantize_model
from swiftllm.quant.spec import VariantSpec
from swiftllm.worker.kernels.gemm_tiles import GEMM_TILES, gemm_tile, tile_token_counts
from swiftllm.worker.kv_cache import PagedKVCache
from swiftllm.worker.layers.linear import DenseLinear
from swiftllm.worker.runner import ModelRunner
from swiftllm.worker.weight import LINEAR_NAMES
from swiftllm.worker.weight_loader import load_model


def test_one_row_count_per_reachable_tile():
    assert tile_token_counts(2048) == [16, 64, 256, 2048]
    assert tile_token_counts(100) == [16, 64, 100]
    assert tile_token_counts(64) == [16, 64] and tile_token_counts(1) == [1]
    for limit in (1, 17, 300, 4096):
        reached = {gemm_tile(m) for m in range(1, limit + 1)}
        assert {gemm_tile(m) for m in tile_token_counts(limit)} == reached
    assert len({gemm_tile(m) for m in tile_token_counts(1 << 20)}) == len(GEMM_TILES)


def _record_calls(monkeypatch, classes) -> list[tuple[str, str, int]]:
    """(op class, linear shape, rows) of every call of the ops of ``classes``."""
    calls = []
    for cls in classes:
        original = cls.__call__

        def recorded(op, x, original=original, cls=cls):
            calls.append((cls.__name__, (op.out_features, op.in_features), x.shape[0]))
            return original(op, x)
        monkeypatch.setattr(cls, "__call__", recorded)
    return calls


def test_attach_warm_up_runs_every_quantized_precision_at_every_tile(tiny_llama, monkeypatch):
    cfg, weights = load_model(tiny_llama)
    variants = {p: quantize_model(weights, cfg, VariantSpec(m)) for p, m in ((Precision.INT8, "int8"), (Precision.INT4, "rtn"))}
    store = LayerStore({Precision.FP: list(weights.layers), **variants})
    calls = _record_calls(monkeypatch, (Int8Linear, Int4Linear, DenseLinear))
    warm_up_variants(store, torch.device("cpu"), torch.float32, max_tokens=300)
    shapes = {(getattr(weights.layers[0], n).out_features, getattr(weights.layers[0], n).in_features) for n in LINEAR_NAMES}
    expected = {(cls, shape, m) for cls in ("Int8Linear", "Int4Linear") for shape in shapes for m in (16, 64, 256, 300)}
    assert set(calls) == expected and len(calls) == len(expected)


def test_the_engine_warm_up_reaches_prefill_and_both_decode_attention_variants(tiny_llama, monkeypatch):
    cfg, weights = load_model(tiny_llama)
    cache = PagedKVCache(cfg, num_blocks=40, block_size=8, dtype=torch.float32, device="cpu")
    runner = ModelRunner(cfg, weights, cache, max_positions=200, seed=0)
    contexts, prefills = [], []
    decode = swiftllm.worker.model.decode_attention
    prefill = swiftllm.worker.model.prefill_attention

    def recorded_decode(q, k_cache, v_cache, state, scale):
        contexts.append(state.decode_max_seq_len)
        return decode(q, k_cache, v_cache, state, scale)

    def recorded_prefill(q, k, v, scale):
        prefills.append(q.shape[0])
        return prefill(q, k, v, scale)
    monkeypatch.setattr(swiftllm.worker.model, "decode_attention", recorded_decode)
    monkeypatch.setattr(swiftllm.worker.model, "prefill_attention", recorded_prefill)
    linears = _record_calls(monkeypatch, (DenseLinear,))
    runner.warm_up(max_num_batched_tokens=100)
    assert sorted(set(contexts)) == [1, 200] and set(prefills) == {100}
    assert {m for _, _, m in linears} >= {16, 64, 100}


def test_an_engine_on_the_cpu_does_not_warm_up(tiny_llama, monkeypatch):
    """The CPU kernels are compiled ahead of time: a CPU engine starts without running the model."""
    from swiftllm import EngineConfig, LLMEngine
    monkeypatch.setattr(ModelRunner, "warm_up", lambda *args: pytest.fail("a CPU engine warmed up"))
    LLMEngine(EngineConfig(model=tiny_llama, device="cpu", num_kv_blocks=16))


def test_the_warm_up_runs_with_an_int8_lm_head(tiny_llama):
    cfg, weights = load_model(tiny_llama)
    weights = with_int8_lm_head(weights)
    cache = PagedKVCache(cfg, num_blocks=40, block_size=8, dtype=torch.float32, device="cpu")
    runner = ModelRunner(cfg, weights, cache, max_positions=200, seed=0)
    runner.warm_up(max_num_batched_tokens=100)          # prefill rows sample nothing: the head sees no rows there
