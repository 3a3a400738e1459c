"""The Triton kernels compiled for the GPU, against the torch ops they mirror at the paper models' shapes, in
float32, float16 and bfloat16: elementwise ops at hidden 4096 / 5120, paged decode attention with GQA 32/8 and MHA
32/32 up to 4096 tokens of context (one partition and split), the INT4 (AWQ) and INT8 GEMMs at M = 1, 17, 2048."""
import pytest
import torch

from swiftllm.quant.awq_linear import AwqLinear
from swiftllm.quant.groupwise import quantize_groups
from swiftllm.quant.int8_linear import Int8Linear
from swiftllm.worker.kernels import kv_store, paged_attention, rmsnorm, rotary, silu_and_mul
from swiftllm.worker.kernels.triton_kv_store import store_kv_triton
from swiftllm.worker.kernels.triton_paged_attention import paged_decode_attention_triton
from swiftllm.worker.kernels.triton_rmsnorm import rmsnorm_triton
from swiftllm.worker.kernels.triton_rotary import apply_rotary_triton
from swiftllm.worker.kernels.triton_silu_and_mul import silu_and_mul_triton
from tests.gpu.accuracy import DTYPES, assert_close
from tests.paged_context import random_paged_context


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hidden", [4096, 5120])
def test_rmsnorm(cuda, dtype, hidden):
    x = (torch.randn(37, hidden, device=cuda) * 3).to(dtype)
    weight = torch.rand(hidden, device=cuda).to(dtype) + 0.5
    assert_close(rmsnorm_triton(x, weight, 1e-5), rmsnorm.rmsnorm(x.float(), weight.float(), 1e-5), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("intermediate", [11008, 13824])
def test_silu_and_mul(cuda, dtype, intermediate):
    gate_up = (torch.randn(37, 2 * intermediate, device=cuda) * 4).to(dtype)
    assert_close(silu_and_mul_triton(gate_up), silu_and_mul.silu_and_mul(gate_up.float()), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotary_on_a_fused_qkv_slice(cuda, dtype):
    tokens, q_heads, kv_heads, head_dim = 37, 32, 8, 128
    qkv = torch.randn(tokens, (q_heads + 2 * kv_heads) * head_dim, device=cuda).to(dtype)
    qk = qkv[:, :(q_heads + kv_heads) * head_dim].view(tokens, q_heads + kv_heads, head_dim)
    angles = torch.rand(tokens, head_dim // 2, device=cuda) * 1000
    cos, sin = angles.cos().to(dtype), angles.sin().to(dtype)
    expected = rotary.apply_rotary(qk.float(), cos.float(), sin.float())
    assert_close(apply_rotary_triton(qk, cos, sin), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_store_kv_writes_exactly(cuda, dtype):
    k_cache = torch.randn(64, 16, 8, 128, device=cuda).to(dtype)
    v_cache = torch.randn_like(k_cache)
    k, v = torch.randn(40, 8, 128, device=cuda).to(dtype), torch.randn(40, 8, 128, device=cuda).to(dtype)
    slots = torch.randperm(64 * 16, device=cuda)[:40]
    expected_k, expected_v = k_cache.clone(), v_cache.clone()
    kv_store.store_kv(expected_k, expected_v, k, v, slots)
    store_kv_triton(k_cache, v_cache, k, v, slots)
    assert torch.equal(k_cache, expected_k) and torch.equal(v_cache, expected_v)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("q_heads,kv_heads", [(32, 8), (32, 32)])
@pytest.mark.parametrize("seq_lens", [[1], [4096], [1, 17, 512, 4096, 1000, 3]])
@pytest.mark.parametrize("partition", [None, 256])
def test_paged_decode_attention(cuda, dtype, q_heads, kv_heads, seq_lens, partition):
    head_dim, block_size = 128, 16
    num_blocks = len(seq_lens) * (max(-(-n // block_size) for n in seq_lens) + 1)   # what random_paged_context draws
    k_cache, v_cache, tables = random_paged_context(seq_lens, num_blocks, block_size, kv_heads, head_dim, dtype, cuda)
    q = torch.randn(len(seq_lens), q_heads, head_dim, device=cuda).to(dtype)
    lens = torch.tensor(seq_lens, device=cuda)
    scale = head_dim ** -0.5
    expected = paged_attention.paged_decode_attention(q.float(), k_cache.float(), v_cache.float(), tables, lens, scale)
    actual = paged_decode_attention_triton(q, k_cache, v_cache, tables, lens, scale, max(seq_lens), partition)
    assert_close(actual, expected, dtype)


def _activations(num_tokens: int, in_features: int, dtype: torch.dtype, device) -> torch.Tensor:
    return torch.randn(num_tokens, in_features, device=device).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_tokens", [1, 17, 2048])
@pytest.mark.parametrize("out_features,in_features", [(11008, 4096), (4096, 11008)])
def test_awq_int4_gemm(cuda, dtype, num_tokens, out_features, in_features):
    op = AwqLinear.from_groups(quantize_groups(torch.randn(out_features, in_features, device=cuda) * 0.02, 128))
    x = _activations(num_tokens, in_features, dtype, cuda)
    expected = x.float() @ op.dequantized_weight().t()
    out = op(x)
    assert out.dtype == dtype
    assert_close(out, expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_tokens", [1, 17, 2048])
@pytest.mark.parametrize("out_features,in_features", [(11008, 4096), (4096, 11008)])
def test_int8_gemm_reads_the_codes(cuda, dtype, num_tokens, out_features, in_features):
    op = Int8Linear.quantize(torch.randn(out_features, in_features, device=cuda) * 0.02)
    x = _activations(num_tokens, in_features, dtype, cuda)
    expected = x.float() @ op.dequantized_weight().t()
    before = torch.cuda.memory_allocated(cuda)
    torch.cuda.reset_peak_memory_stats(cuda)
    out = op(x)
    extra = torch.cuda.max_memory_allocated(cuda) - before
    assert extra <= out.numel() * out.element_size() + (1 << 20), f"{extra} bytes: a float copy of the weight?"
    assert_close(out, expected, dtype)
