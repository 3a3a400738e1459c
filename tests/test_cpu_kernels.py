"""The C++ CPU kernels (decode GEMV, INT4 GEMV, paged decode attention, elementwise decoder ops) against the
references they replace."""
import pytest
import torch
import torch.nn.functional as F

from swiftllm.quant.groupwise import pad_columns, quantize_groups
from swiftllm.quant.int4_linear import Int4Linear
from swiftllm.worker.kernels import dense_linear as dense_linear_module, kv_store, ops, rmsnorm, rotary, silu_and_mul
from swiftllm.worker.kernels.cpu_kernels import cpu_kernels
from swiftllm.worker.kernels.dense_linear import SKINNY_MAX_TOKENS, dense_linear
from swiftllm.worker.kernels.paged_attention import paged_decode_attention
from tests.activation_reference import int4_kernel_reference
from tests.paged_context import PAGED_CASES, random_paged_context

pytestmark = pytest.mark.skipif(cpu_kernels() is None, reason="this CPU has no AVX2/FMA: the torch ops serve")


@pytest.mark.parametrize("m,k,n", [(1, 576, 960), (1, 37, 1003), (1, 9, 7), (2, 1536, 576), (3, 13, 5), (5, 7, 4),
                                   (17, 64, 1001), (32, 576, 3)])
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
    """Hundreds of positions over many blocks, uneven lengths (enough work for the per-thread split), and scores
    spread over +-80 (the vectorized exp near its clamp and the max shift)."""
    k_cache, v_cache, block_tables = random_paged_context([1400, 3, 300, 64], 400, 16, 3, 64, torch.float32)
    q = torch.randn(4, 9, 64)
    q[1] *= 40
    lens = torch.tensor([1400, 3, 300, 64])
    expected = paged_decode_attention(q, k_cache, v_cache, block_tables, lens, 0.125)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        actual = cpu_kernels().paged_decode_attention(q, k_cache, v_cache, block_tables, lens, 0.125)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_paged_decode_attention_rejects_a_cache_without_kv_heads_and_tables_off_the_cpu():
    q, table, lens, empty = torch.zeros(1, 3, 8), torch.tensor([[0, 1]]), torch.tensor([5]), torch.zeros(4, 4, 0, 8)
    with pytest.raises(ValueError, match="do not fit KV heads"):
        cpu_kernels().paged_decode_attention(q, empty, empty.clone(), table, lens, 1.0)
    cache = torch.zeros(4, 4, 3, 8)
    with pytest.raises(ValueError, match="on the CPU"):
        cpu_kernels().paged_decode_attention(q, cache, cache.clone(), table.to("meta"), lens, 1.0)


@pytest.mark.parametrize("nan_at", [3, 17])              # in the vector part and in the scalar tail of a row
def test_paged_decode_attention_propagates_a_nan_key_as_torch_does(nan_at):
    k_cache, v_cache, block_tables = random_paged_context([20], 8, 4, 1, 16, torch.float32)
    slot = block_tables[0, nan_at // 4] * 4 + nan_at % 4
    k_cache.view(-1, 1, 16)[slot, 0, 5] = float("nan")
    q, lens = torch.randn(1, 2, 16), torch.tensor([20])
    assert paged_decode_attention(q, k_cache, v_cache, block_tables, lens, 0.25).isnan().all()
    assert cpu_kernels().paged_decode_attention(q, k_cache, v_cache, block_tables, lens, 0.25).isnan().all()


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


# (m, n, k): every activation-row tile (1..4 and remainders), weight-row counts that leave tails of every tile
# width, K with partial groups padded, and enough rows to split over threads
@pytest.mark.parametrize("m,n,k,group_size", [(1, 32, 128, 128), (1, 13, 96, 32), (2, 66, 256, 64), (3, 97, 192, 32),
                                              (4, 31, 576, 128), (5, 7, 64, 32), (7, 960, 576, 128),
                                              (17, 64, 128, 32), (1, 3072, 576, 128)])
def test_int4_linear_kernel_matches_its_reference(m, n, k, group_size):
    """The kernel rounds the activations to int16 per block of 32 (tests/activation_reference.py)."""
    linear = _int4_linear(n, k, group_size)
    x = pad_columns(torch.randn(m, k), linear.padded_in_features)          # zeros past k, as Int4Linear pads
    expected = int4_kernel_reference(linear, x[:, :k])
    actual = cpu_kernels().int4_linear(x, linear.weight, linear.scales_and_zeros, group_size)
    # the code and offset terms are each ~10x the output and cancel: fp32 summation order shows at 1e-6 of the largest
    torch.testing.assert_close(actual, expected, atol=1e-5 * expected.abs().max().item(), rtol=1e-5)


def test_int4_linear_runs_the_kernel_for_decode_sizes_and_float32_above():
    linear = _int4_linear(64, 192, 64)
    for m in (1, Int4Linear.KERNEL_MAX_TOKENS):
        x = torch.randn(m, 192)
        expected = int4_kernel_reference(linear, x)
        torch.testing.assert_close(linear(x), expected, atol=1e-5 * expected.abs().max().item(), rtol=1e-5)
    x = torch.randn(Int4Linear.KERNEL_MAX_TOKENS + 1, 192)
    torch.testing.assert_close(linear(x), x @ linear.dequantized_weight().t(), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("change,message", [
    (dict(x=torch.randn(1, 256, dtype=torch.bfloat16)), "float32"),
    (dict(x=torch.randn(1, 320)), "columns"),
    (dict(group_size=100), "group size"),
    (dict(params=torch.zeros(32, 2, 2)), "bf16"),
    (dict(params=torch.zeros(2, 32, 2, dtype=torch.bfloat16)), "params must be"),
    (dict(codes=torch.zeros(32, 128, dtype=torch.int8)), "uint8"),
])
def test_int4_linear_kernel_rejects_bad_inputs(change, message):
    linear = _int4_linear(32, 256, 128)
    args = dict(x=torch.randn(1, 256), codes=linear.weight, params=linear.scales_and_zeros, group_size=128)
    args.update(change)
    with pytest.raises(ValueError, match=message):
        cpu_kernels().int4_linear(**args)


@pytest.mark.parametrize("rows,hidden", [(1, 576), (3, 13), (200, 576)])   # 200 rows: split over threads
def test_rmsnorm_and_add_rmsnorm_match_torch(rows, hidden):
    x, delta, weight = torch.randn(rows, hidden) * 3, torch.randn(rows, hidden), torch.randn(hidden)
    torch.testing.assert_close(cpu_kernels().rmsnorm(x, weight, 1e-5), F.rms_norm(x, (hidden,), weight, 1e-5))
    strided = torch.randn(rows, hidden + 7)[:, 2:hidden + 2]                   # rows of a wider tensor
    torch.testing.assert_close(cpu_kernels().rmsnorm(strided, weight, 1e-5), F.rms_norm(strided, (hidden,), weight, 1e-5))
    residual = x.clone()
    normed = cpu_kernels().add_rmsnorm_(residual, delta, weight, 1e-5)
    torch.testing.assert_close(residual, x + delta)                            # updated in place
    torch.testing.assert_close(normed, F.rms_norm(x + delta, (hidden,), weight, 1e-5))


@pytest.mark.parametrize("rows,q_heads,kv_heads,head_dim", [(1, 9, 3, 64), (5, 3, 1, 20), (130, 4, 4, 32)])
def test_split_qkv_rotary_matches_the_torch_split_and_rotary(rows, q_heads, kv_heads, head_dim):
    qkv = torch.randn(rows, (q_heads + 2 * kv_heads) * head_dim)
    angles = torch.rand(rows, head_dim // 2) * 100
    qk, v = qkv.split([(q_heads + kv_heads) * head_dim, kv_heads * head_dim], dim=-1)
    rotated = rotary.apply_rotary(qk.reshape(rows, q_heads + kv_heads, head_dim), angles.cos(), angles.sin())
    q, k, v_out = cpu_kernels().split_qkv_rotary(qkv, angles.cos(), angles.sin(), q_heads, kv_heads)
    torch.testing.assert_close(q, rotated[:, :q_heads])
    torch.testing.assert_close(k, rotated[:, q_heads:])
    assert torch.equal(v_out, v.reshape(rows, kv_heads, head_dim)) and q.is_contiguous() and k.is_contiguous()


@pytest.mark.parametrize("slot_dtype", [torch.int32, torch.int64])
def test_store_kv_writes_the_slots_of_strided_rows(slot_dtype):
    k_cache, v_cache = torch.zeros(6, 4, 3, 8), torch.zeros(6, 4, 3, 8)
    qkv = torch.randn(5, 9 * 8)                                               # k and v as views into packed rows
    k, v = qkv[:, 3 * 8:6 * 8].view(5, 3, 8), qkv[:, 6 * 8:].view(5, 3, 8)
    slots = torch.tensor([0, 5, 23, 9, 14])
    expected_k, expected_v = k_cache.clone(), v_cache.clone()
    kv_store.store_kv(expected_k, expected_v, k, v, slots)
    cpu_kernels().store_kv(k_cache, v_cache, k, v, slots.to(slot_dtype))
    assert torch.equal(k_cache, expected_k) and torch.equal(v_cache, expected_v)
    with pytest.raises(IndexError, match="slot 24 of row 1"):
        cpu_kernels().store_kv(k_cache, v_cache, k[:2], v[:2], torch.tensor([3, 24]))


@pytest.mark.parametrize("rows,inner", [(1, 1536), (3, 13), (90, 1536)])
def test_silu_and_mul_matches_torch(rows, inner):
    gate_up = torch.randn(rows, 2 * inner) * 30                               # far into both tails of the sigmoid
    torch.testing.assert_close(cpu_kernels().silu_and_mul(gate_up), silu_and_mul.silu_and_mul(gate_up))


@pytest.mark.parametrize("call,message", [
    (lambda k: k.rmsnorm(torch.randn(2, 8, dtype=torch.bfloat16), torch.randn(8, dtype=torch.bfloat16), 1e-5), "float32"),
    (lambda k: k.rmsnorm(torch.randn(2, 8), torch.randn(9), 1e-5), "weight must be \\[8\\]"),
    (lambda k: k.add_rmsnorm_(torch.randn(2, 8), torch.randn(3, 8), torch.randn(8), 1e-5), "one shape"),
    (lambda k: k.split_qkv_rotary(torch.randn(2, 40), torch.randn(3, 4), torch.randn(3, 4), 3, 1), "cos and sin must be"),
    (lambda k: k.split_qkv_rotary(torch.randn(2, 48), torch.randn(2, 4), torch.randn(2, 4), 3, 1), "qkv must be"),
    (lambda k: k.split_qkv_rotary(torch.randn(40, 2).t(), torch.randn(2, 4), torch.randn(2, 4), 3, 1), "contiguous"),
    (lambda k: k.store_kv(torch.zeros(2, 4, 3, 8), torch.zeros(2, 4, 3, 8), torch.randn(2, 2, 8), torch.randn(2, 2, 8),
                          torch.tensor([0, 1])), "must be \\[T, 3, 8\\]"),
    (lambda k: k.silu_and_mul(torch.randn(2, 7)), "gate_up must be"),
    (lambda k: k.add_rmsnorm_(torch.randn(2, 8, requires_grad=True), torch.randn(2, 8), torch.randn(8), 1e-5),
     "must not require grad"),
    (lambda k: k.store_kv(torch.zeros(2, 4, 3, 8, requires_grad=True), torch.zeros(2, 4, 3, 8), torch.randn(1, 3, 8),
                          torch.randn(1, 3, 8), torch.tensor([0])), "must not require grad"),
])
def test_decoder_ops_reject_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call(cpu_kernels())


def test_ops_route_float32_cpu_tensors_to_the_kernels_and_others_to_torch(monkeypatch):
    calls = []
    real = cpu_kernels()

    class Recording:
        def __getattr__(self, name):
            def record(*args):
                calls.append(name)
                return getattr(real, name)(*args)
            return record
    monkeypatch.setattr(ops, "cpu_kernels", lambda: Recording())
    weight = torch.randn(16)
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(3, 16, dtype=dtype)
        torch.testing.assert_close(ops.rmsnorm(x, weight.to(dtype), 1e-5), rmsnorm.rmsnorm(x, weight.to(dtype), 1e-5))
        torch.testing.assert_close(ops.silu_and_mul(x), silu_and_mul.silu_and_mul(x))
    assert calls == ["rmsnorm", "silu_and_mul"]
