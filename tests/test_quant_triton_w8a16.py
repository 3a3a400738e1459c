"""The Triton W8A16 GEMM (the CUDA path of ``Int8Linear``) against the dequantized reference, in Triton's CPU
interpreter; every tile of ``gemm_tiles`` is reached.

tests/conftest.py selects the interpreter where no GPU is visible; tests/gpu run the kernel compiled.
"""
import pytest
import torch

from swiftllm.quant.int8_linear import Int8Linear
from swiftllm.quant.triton_w8a16_gemm import w8a16_gemm_triton
from tests.triton_interpreter import interpreted

pytestmark = interpreted

# relative to the largest output: float32 differs by summation order, float16 by input/output rounding
RTOL = {torch.float32: 1e-5, torch.float16: 3e-3}


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


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
