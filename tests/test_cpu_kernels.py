"""The C++ CPU kernels (decode GEMV, INT4 GEMV, paged decode attention) against the references they replace."""
import pytest
import torch
import torch.nn.functional as F

from swiftllm.quant.groupwise import pad_columns, quantize_groups
from swiftllm.quant.int4_linear import Int4Linear
from swiftllm.worker.kernels import dense_linear as dense_linear_module
from swiftllm.worker.kernels.cpu_kernels import cpu_kernels
from swiftllm.worker.kernels.dense_linear import SKINNY_MAX_TOKENS, dense_linear
from swiftllm.worker.kernels.paged_attention import paged_decode_attention
from tests.paged_context import PAGED_CASES, random_paged_context

pytestmark = pytest.mark.skipif(cpu_kernels() is None, reason="this CPU has no AVX2/FMA: the torch ops serve")


@pytest.mark.parametrize("m,k,n", [(1, 576, 960), (2, 1536, 576), (3, 13, 5), (5, 7, 4), (17, 64, 1001),
                                   (32, 576, 3)])
def test_skinny_linear_matches_torch(m, k, n):
    x, w = torch.randn(m, k), torch.randn(n, k)
    torch.testing.assert_close(cpu_kernels().skinny_linear(x, w), F.linear(x, w), atol=1e-4, rtol=1e-5)


def test_dense_linear_routes_small_batches_to_the_kernel_and_large_ones_to_torch(monkeypatch):
    calls = []
    real = cpu_kernels()

    class Recording:
        def skinny_linear(self, x, w):
            calls.append(x.shape[0])
            return real.skinny_linear(x, w)
    monkeypatch.setattr(dense_linear_module, "cpu_kernels", lambda: Recording())
    w = torch.randn(40, 24)
    for m in (1, SKINNY_MAX_TOKENS, SKINNY_MAX_TOKENS + 1):
        x = torch.randn(m, 24)
        torch.testing.assert_close(dense_linear(x, w), F.linear(x, w), atol=1e-5, rtol=1e-5)
    dense_linear(torch.randn(2, 24, dtype=torch.bfloat16), w.bfloat16())
    dense_linear(torch.randn(2, 24), torch.randn(24, 40).t())          # a non-contiguous weight
    assert calls == [1, SKINNY_MAX_TOKENS]


@pytest.mark.parametrize("x,w,message", [
    (torch.randn(2, 8, dtype=torch.bfloat16), torch.randn(3, 8, dtype=torch.bfloat16), "float32"),
    (torch.randn(2, 8), torch.randn(3, 9), "must be"),
    (torch.randn(2, 8), torch.randn(8, 3).t(), "contiguous"),
    (torch.randn(2, 0), torch.randn(3, 0), "K must be positive"),
])
def test_skinny_linear_rejects_bad_inputs(x, w, message):
    with pytest.raises(ValueError, match=message):
        cpu_kernels().skinny_linear(x, w)


@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("q_heads,kv_heads,head_dim,block_size,seq_lens", PAGED_CASES)
def test_paged_decode_attention_matches_torch(q_heads, kv_heads, head_dim, block_size, seq_lens, index_dtype):
    k_cache, v_cache, block_tables = random_paged_context(seq_lens, 64, block_size, kv_heads, head_dim, torch.float32)
    q = torch.randn(len(seq_lens), q_heads, head_dim)
    lens = torch.tensor(seq_lens)
    expected = paged_decode_attention(q, k_cache, v_cache, block_tables, lens, head_dim ** -0.5)
    actual = cpu_kernels().paged_decode_attention(q, k_cache, v_cache, block_tables.to(index_dtype),
                                                  lens.to(index_dtype), head_dim ** -0.5)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_paged_decode_attention_matches_torch_on_long_and_peaked_contexts(threads):
    """Hundreds of positions over many blocks, uneven lengths (the per-thread split), and scores spread over
    +-80 (the vectorized exp near its clamp and the max shift)."""
    k_cache, v_cache, block_tables = random_paged_context([700, 3, 129, 64], 256, 16, 3, 64, torch.float32)
    q = torch.randn(4, 9, 64)
    q[1] *= 40
    lens = torch.tensor([700, 3, 129, 64])
    expected = paged_decode_attention(q, k_cache, v_cache, block_tables, lens, 0.125)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        actual = cpu_kernels().paged_decode_attention(q, k_cache, v_cache, block_tables, lens, 0.125)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_paged_decode_attention_reads_nothing_past_seq_len():
    k_cache, v_cache, block_tables = random_paged_context([6], 8, 4, 2, 16, torch.float32)
    q, lens = torch.randn(1, 4, 16), torch.tensor([6])
    before = cpu_kernels().paged_decode_attention(q, k_cache, v_cache, block_tables, lens, 0.25)
    last_block = block_tables[0, 1]
    k_cache[last_block, 2:] = 1e4
    v_cache[last_block, 2:] = float("nan")
    block_tables[0, 2] = 10 ** 9                      # past the context: never looked up
    torch.testing.assert_close(cpu_kernels().paged_decode_attention(q, k_cache, v_cache, block_tables, lens, 0.25),
                               before)


@pytest.mark.parametrize("q_shape,table,lens,error,message", [
    ((1, 4, 8), [[0, 1]], [5], ValueError, "do not fit KV heads"),         # 4 query heads over 3 KV heads
    ((1, 3, 8), [[0, 1]], [9], ValueError, "outside \\[1, 8\\]"),           # longer than its 2 blocks
    ((1, 3, 8), [[0, 1]], [0], ValueError, "outside \\[1, 8\\]"),
    ((1, 3, 8), [[0, 7]], [5], IndexError, "outside \\[0, 4\\)"),           # a block the cache does not have
    ((2, 3, 8), [[0, 1]], [5], ValueError, "block_tables must be"),
])
def test_paged_decode_attention_rejects_bad_inputs(q_shape, table, lens, error, message):
    cache = torch.zeros(4, 4, 3, 8)
    with pytest.raises(error, match=message):
        cpu_kernels().paged_decode_attention(torch.zeros(q_shape), cache, cache.clone(), torch.tensor(table),
                                             torch.tensor(lens), 1.0)


def _int4_linear(out_features: int, in_features: int, group_size: int) -> Int4Linear:
    return Int4Linear.from_groups(quantize_groups(torch.randn(out_features, in_features), group_size))


@pytest.mark.parametrize("m,n,k,group_size", [(1, 32, 128, 128), (2, 64, 256, 64), (3, 96, 192, 32), (4, 32, 576, 128),
                                              (7, 960, 576, 128), (17, 64, 128, 32)])
def test_int4pack_linear_matches_the_dequantized_weight(m, n, k, group_size):
    linear = _int4_linear(n, k, group_size)
    x = pad_columns(torch.randn(m, k), linear.padded_in_features)          # zeros past k, as Int4Linear pads
    expected = x[:, :k] @ linear.dequantized_weight().t()
    actual = cpu_kernels().int4pack_linear(x, linear.weight, linear.scales_and_zeros, group_size)
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=1e-5)


def test_int4_linear_runs_the_fused_kernel_in_float32_for_decode_sizes():
    linear = _int4_linear(64, 192, 64)
    for m in (1, Int4Linear.FUSED_KERNEL_MAX_TOKENS):
        x = torch.randn(m, 192)
        torch.testing.assert_close(linear(x), x @ linear.dequantized_weight().t(), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("change,message", [
    (dict(x=torch.randn(1, 256, dtype=torch.bfloat16)), "float32"),
    (dict(x=torch.randn(1, 192)), "columns"),
    (dict(group_size=100), "group size"),
    (dict(scales_and_zeros=torch.zeros(2, 32, 2)), "bf16"),
    (dict(packed=torch.zeros(48, 128, dtype=torch.uint8)), "multiple of 32"),
])
def test_int4pack_linear_rejects_bad_inputs(change, message):
    linear = _int4_linear(32, 256, 128)
    args = dict(x=torch.randn(1, 256), packed=linear.weight, scales_and_zeros=linear.scales_and_zeros, group_size=128)
    args.update(change)
    with pytest.raises(ValueError, match=message):
        cpu_kernels().int4pack_linear(**args)
