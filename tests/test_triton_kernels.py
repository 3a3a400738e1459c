"""Each Triton kernel against the torch op it mirrors, run by Triton's CPU interpreter on CPU tensors.

tests/conftest.py selects the interpreter (before ``triton`` is first imported) where no GPU is visible; with a GPU
these tests skip and tests/gpu run the kernels compiled. bfloat16 is left to tests/gpu: the interpreter computes it
wrongly.
"""
import pytest
import torch

from swiftllm.worker.kernels.kv_store import store_kv
from swiftllm.worker.kernels.paged_attention import paged_decode_attention
from swiftllm.worker.kernels.rmsnorm import rmsnorm
from swiftllm.worker.kernels.rotary import apply_rotary
from swiftllm.worker.kernels.silu_and_mul import silu_and_mul
from swiftllm.worker.kernels.triton_kv_store import store_kv_triton
from swiftllm.worker.kernels.triton_paged_attention import BLOCK_N, paged_decode_attention_triton, partition_tokens
from swiftllm.worker.kernels.triton_rmsnorm import rmsnorm_triton
from swiftllm.worker.kernels.triton_rotary import apply_rotary_triton
from swiftllm.worker.kernels.triton_silu_and_mul import silu_and_mul_triton
from tests.paged_context import PAGED_CASES, random_paged_context
from tests.triton_interpreter import interpreted

pytestmark = interpreted

# (atol, rtol) per dtype: float32 differs only by summation order; float16 by one rounding step.
TOLERANCES = {torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 2e-3)}
DTYPES = list(TOLERANCES)


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    atol, rtol = TOLERANCES[expected.dtype]
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_tokens,hidden", [(1, 64), (5, 576), (3, 100)])
def test_rmsnorm_matches_torch(num_tokens, hidden, dtype):
    x = torch.randn(num_tokens, hidden, dtype=dtype) * 3
    weight = torch.randn(hidden, dtype=dtype)
    assert_close(rmsnorm_triton(x, weight, 1e-5), rmsnorm(x, weight, 1e-5))


def test_rmsnorm_rejects_mismatched_weight():
    with pytest.raises(AssertionError, match="weight must be"):
        rmsnorm_triton(torch.randn(2, 8), torch.randn(7), 1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_tokens,intermediate", [(1, 32), (4, 1536), (3, 1100)])
def test_silu_and_mul_matches_torch(num_tokens, intermediate, dtype):
    gate_up = torch.randn(num_tokens, 2 * intermediate, dtype=dtype) * 4
    assert_close(silu_and_mul_triton(gate_up), silu_and_mul(gate_up))


def test_silu_and_mul_rejects_odd_width():
    with pytest.raises(AssertionError, match=r"gate_up must be \[T, 2 \* I\]"):
        silu_and_mul_triton(torch.randn(2, 7))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_tokens,heads,head_dim", [(1, 1, 8), (6, 9, 64), (3, 3, 24)])
def test_rotary_matches_torch(num_tokens, heads, head_dim, dtype):
    x = torch.randn(num_tokens, heads, head_dim, dtype=dtype)
    angles = torch.rand(num_tokens, head_dim // 2) * 100
    cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
    assert_close(apply_rotary_triton(x, cos, sin), apply_rotary(x, cos, sin))


def test_rotary_reads_a_strided_slice_of_fused_qkv():
    num_tokens, q_heads, kv_heads, head_dim = 4, 9, 3, 16
    qkv = torch.randn(num_tokens, (q_heads + 2 * kv_heads) * head_dim)
    k = qkv[:, q_heads * head_dim:(q_heads + kv_heads) * head_dim].view(num_tokens, kv_heads, head_dim)
    angles = torch.rand(num_tokens, head_dim // 2) * 10
    assert not k.is_contiguous()
    assert_close(apply_rotary_triton(k, angles.cos(), angles.sin()), apply_rotary(k, angles.cos(), angles.sin()))


def test_rotary_rejects_wrong_table_shape():
    with pytest.raises(AssertionError, match=r"cos must be \[2, 4\]"):
        apply_rotary_triton(torch.randn(2, 1, 8), torch.randn(2, 3), torch.randn(2, 4))


@pytest.mark.parametrize("slot_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("dtype", DTYPES)
def test_store_kv_matches_torch(dtype, slot_dtype):
    num_blocks, block_size, kv_heads, head_dim, num_tokens = 6, 4, 3, 24, 7
    k_cache = torch.randn(num_blocks, block_size, kv_heads, head_dim, dtype=dtype)
    v_cache = torch.randn_like(k_cache)
    k = torch.randn(num_tokens, kv_heads, head_dim, dtype=dtype)
    v = torch.randn_like(k)
    slots = torch.randperm(num_blocks * block_size)[:num_tokens]
    expected_k, expected_v = k_cache.clone(), v_cache.clone()
    store_kv(expected_k, expected_v, k, v, slots)
    store_kv_triton(k_cache, v_cache, k, v, slots.to(slot_dtype))
    torch.testing.assert_close(k_cache, expected_k, atol=0, rtol=0)
    torch.testing.assert_close(v_cache, expected_v, atol=0, rtol=0)


def test_store_kv_rejects_mismatched_heads():
    cache = torch.zeros(2, 4, 3, 8)
    with pytest.raises(AssertionError, match=r"k, v must be \[T, 3, 8\]"):
        store_kv_triton(cache, cache.clone(), torch.zeros(1, 2, 8), torch.zeros(1, 2, 8), torch.zeros(1, dtype=torch.long))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("q_heads,kv_heads,head_dim,block_size,seq_lens", PAGED_CASES)
@pytest.mark.parametrize("partition", [None, 7])   # None: the whole context in one program here (1 "SM"); 7: split
def test_paged_decode_attention_matches_torch(q_heads, kv_heads, head_dim, block_size, seq_lens, index_dtype, dtype,
                                              partition):
    num_blocks = 64
    k_cache, v_cache, block_tables = random_paged_context(seq_lens, num_blocks, block_size, kv_heads, head_dim, dtype)
    q = torch.randn(len(seq_lens), q_heads, head_dim, dtype=dtype)
    lens = torch.tensor(seq_lens)
    scale = head_dim ** -0.5
    expected = paged_decode_attention(q.float(), k_cache.float(), v_cache.float(), block_tables, lens, scale).to(dtype)
    actual = paged_decode_attention_triton(q, k_cache, v_cache, block_tables.to(index_dtype), lens.to(index_dtype), scale,
                                           partition=partition)
    assert_close(actual, expected)


def test_the_context_split_covers_a_long_context_in_whole_inner_steps():
    assert partition_tokens(num_programs=32, max_seq_len=4096, num_sms=132) == 256       # 16 partitions: 512 programs
    assert partition_tokens(num_programs=64 * 32, max_seq_len=4096, num_sms=132) == 4096  # enough programs already
    assert partition_tokens(num_programs=1, max_seq_len=10, num_sms=132) == BLOCK_N       # never below one step


def test_paged_decode_attention_ignores_slots_past_seq_len():
    k_cache, v_cache, block_tables = random_paged_context([6], 8, 4, 2, 16, torch.float32)
    q = torch.randn(1, 4, 16)
    lens = torch.tensor([6])
    before = paged_decode_attention_triton(q, k_cache, v_cache, block_tables, lens, 0.25, partition=5)
    last_block = block_tables[0, 1]
    k_cache[last_block, 2:] = 1e4
    v_cache[last_block, 2:] = float("nan")
    torch.testing.assert_close(paged_decode_attention_triton(q, k_cache, v_cache, block_tables, lens, 0.25, partition=5),
                               before)


def test_paged_decode_attention_rejects_bad_gqa_ratio():
    cache = torch.zeros(4, 4, 3, 8)
    with pytest.raises(AssertionError, match="not a multiple of 3 KV heads"):
        paged_decode_attention_triton(torch.zeros(1, 4, 8), cache, cache.clone(),
                                      torch.zeros(1, 2, dtype=torch.long), torch.ones(1, dtype=torch.long), 1.0)
