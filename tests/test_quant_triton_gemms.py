"""The Triton weight-only GEMMs against their dequantized references, in Triton's CPU interpreter: W4A16 on the
AutoAWQ layout (``AwqLinear``'s CUDA path) and W8A16 (``Int8Linear``'s); every tile of ``gemm_tiles`` is reached.

tests/conftest.py selects the interpreter where no GPU is visible; tests/gpu run the kernels compiled.
"""
import pytest
import torch

from swiftllm.quant.awq_format import from_awq_gemm, to_awq_gemm
from swiftllm.quant.groupwise import dequantize_groups, quantize_groups
from swiftllm.quant.int8_linear import Int8Linear
from swiftllm.quant.triton_awq_gemm import DEQUANT_MIN_TOKENS, awq_gemm_triton, awq_tile, k_splits, multiprocessors
from swiftllm.quant.triton_w8a16_gemm import w8a16_gemm_triton
from tests.triton_interpreter import interpreted

pytestmark = interpreted

# relative to the largest output: float32 differs by summation order, float16 by input/output rounding
RTOL = {torch.float32: 1e-5, torch.float16: 3e-3}


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


# every tile of gemm_tiles with K split (the interpreter counts 4 multiprocessors), then dequantize + GEMM
@pytest.mark.parametrize("dtype", list(RTOL))
@pytest.mark.parametrize("num_tokens,out_features,in_features,group_size",
                         [(1, 64, 64, 32), (5, 128, 256, 128), (17, 72, 128, 64), (3, 96, 192, 64), (65, 136, 128, 128),
                          (DEQUANT_MIN_TOKENS, 136, 256, 64), (300, 64, 64, 32)])
def test_awq_gemm_matches_dequantized_reference(num_tokens, out_features, in_features, group_size, dtype):
    awq = to_awq_gemm(quantize_groups(torch.randn(out_features, in_features), group_size))
    weight = dequantize_groups(from_awq_gemm(awq["qweight"], awq["qzeros"], awq["scales"], group_size))  # [out, in]
    x = torch.randn(num_tokens, in_features).to(dtype)
    out = awq_gemm_triton(x, awq["qweight"], awq["qzeros"], awq["scales"], group_size)   # fp16 scales, as stored
    expected = x.float() @ weight.t()
    assert out.dtype == dtype and out.shape == (num_tokens, out_features)
    assert (out.float() - expected).abs().max() <= RTOL[dtype] * expected.abs().max()


def test_awq_gemm_without_a_k_split_matches_the_reference():
    out_features, in_features, group_size = 2048, 64, 32          # 16 column tiles fill the interpreter's 4 SMs
    tile = awq_tile(1, group_size)
    tiles = out_features // tile.block_n
    assert k_splits(in_features, tile.block_k, tiles, multiprocessors(torch.device("cpu")))[0] == 1
    awq = to_awq_gemm(quantize_groups(torch.randn(out_features, in_features), group_size))
    weight = dequantize_groups(from_awq_gemm(awq["qweight"], awq["qzeros"], awq["scales"], group_size))
    x = torch.randn(1, in_features)
    expected = x @ weight.t()
    out = awq_gemm_triton(x, awq["qweight"], awq["qzeros"], awq["scales"], group_size)
    assert (out - expected).abs().max() <= RTOL[torch.float32] * expected.abs().max()


def test_no_rows_give_an_empty_output():
    awq = to_awq_gemm(quantize_groups(torch.randn(64, 64), 32))
    assert awq_gemm_triton(torch.randn(0, 64), awq["qweight"], awq["qzeros"], awq["scales"], 32).shape == (0, 64)
    op = Int8Linear.quantize(torch.randn(40, 48))
    assert w8a16_gemm_triton(torch.randn(0, 48), op.weight, op.scales).shape == (0, 40)


def test_k_splits_fill_the_multiprocessors_with_whole_nonempty_steps():
    assert k_splits(4096, 64, tiles=32, num_sms=132) == (16, 256)       # 64 steps: 17 wanted, 4 per slice, 16 slices
    assert k_splits(4096, 64, tiles=1024, num_sms=132) == (1, 4096)     # enough tiles: no split
    assert k_splits(128, 64, tiles=1, num_sms=132) == (2, 64)           # never more slices than K steps
    for k, tiles in [(4096, 3), (11008, 86), (192, 5)]:
        splits, per_split = k_splits(k, 64, tiles, 132)
        assert per_split % 64 == 0 and (splits - 1) * per_split < k <= splits * per_split


def test_awq_gemm_rejects_mismatched_scales():
    awq = to_awq_gemm(quantize_groups(torch.randn(64, 64), 32))
    with pytest.raises(AssertionError, match="scales must be"):
        awq_gemm_triton(torch.randn(2, 64), awq["qweight"], awq["qzeros"], awq["scales"][:1].float(), 32)


def test_awq_gemm_rejects_input_not_matching_qweight():
    awq = to_awq_gemm(quantize_groups(torch.randn(64, 64), 32))
    with pytest.raises(AssertionError, match="qweight must be int32"):
        awq_gemm_triton(torch.randn(2, 96), awq["qweight"], awq["qzeros"], awq["scales"].float(), 32)


@pytest.mark.parametrize("dtype", list(RTOL))
@pytest.mark.parametrize("num_tokens,out_features,in_features",
                         [(1, 64, 64), (5, 96, 200), (17, 72, 128), (65, 130, 96), (300, 40, 48)])
def test_w8a16_gemm_matches_the_dequantized_reference(num_tokens, out_features, in_features, dtype):
    op = Int8Linear.quantize(torch.randn(out_features, in_features))
    x = torch.randn(num_tokens, in_features).to(dtype)
    out = w8a16_gemm_triton(x, op.weight, op.scales)
    expected = x.float() @ op.dequantized_weight().t()
    assert out.dtype == dtype and out.shape == (num_tokens, out_features)
    assert (out.float() - expected).abs().max() <= RTOL[dtype] * expected.abs().max()


def test_w8a16_gemm_rejects_a_weight_not_matching_the_input():
    op = Int8Linear.quantize(torch.randn(32, 64))
    with pytest.raises(AssertionError, match=r"weight must be int8 \[N, 48\]"):
        w8a16_gemm_triton(torch.randn(2, 48), op.weight, op.scales)
