"""The quantized Linear ops against their references, on both paths, over slot storage. The float path
(dequantize-then-float32-GEMM) differs from x @ dequantized_weight.T only by summation order; the C++ kernel (decode
sizes) rounds the activations to int16 in blocks of 32 first, and differs from that function (tests/activation_reference)
only by summation order: 1e-5 relative to the largest output either way.
"""
import pytest
import torch

from swiftllm.quant.awq_linear import AwqLinear
from swiftllm.quant.groupwise import dequantize_groups, quantize_groups
from swiftllm.quant.int4_linear import Int4Linear
from swiftllm.quant.int8_linear import Int8Linear
from swiftllm.quant.linear_path import FORCED_MAX_TOKENS, forced_linear_path
from swiftllm.quant.variants import quantize_layer_int8, quantize_layer_rtn
from swiftllm.worker.weight import dense_layer
from tests.activation_reference import kernel_reference

RTOL = 1e-5
SHAPES = [(96, 100, 64), (128, 576, 128), (64, 256, 32), (960, 576, 128)]   # (out, in, group)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def takes_kernel(op, x: torch.Tensor) -> bool:
    return isinstance(op, (Int4Linear, Int8Linear)) and x.shape[0] <= type(op).KERNEL_MAX_TOKENS


def assert_matches_reference(op, x: torch.Tensor, rtol: float) -> None:
    expected = kernel_reference(op, x) if takes_kernel(op, x) else x @ op.dequantized_weight().t()
    actual = op(x)
    assert actual.shape == expected.shape and actual.dtype == x.dtype
    assert (actual - expected).abs().max() <= rtol * expected.abs().max()


def force_path(monkeypatch, cls, path: str) -> None:
    """The C++ kernel for every token count, or the float path for every token count."""
    monkeypatch.setattr(cls, "KERNEL_MAX_TOKENS", FORCED_MAX_TOKENS[path])


@pytest.mark.parametrize("out_features,in_features,group_size", SHAPES)
@pytest.mark.parametrize("num_tokens", [1, 3, 8, 33])
@pytest.mark.parametrize("path", ["kernel", "float"])
def test_int4_linear_matches_dequantized_reference(monkeypatch, out_features, in_features, group_size, num_tokens, path):
    force_path(monkeypatch, Int4Linear, path)
    op = Int4Linear.from_groups(quantize_groups(torch.randn(out_features, in_features), group_size))
    assert_matches_reference(op, torch.randn(num_tokens, in_features), RTOL)


@pytest.mark.parametrize("out_features,in_features", [(96, 100), (128, 576), (576, 1536), (33, 64), (7, 13)])
@pytest.mark.parametrize("num_tokens", [1, 3, 8, 33])
@pytest.mark.parametrize("path", ["kernel", "float"])
def test_int8_linear_matches_dequantized_reference(monkeypatch, out_features, in_features, num_tokens, path):
    force_path(monkeypatch, Int8Linear, path)
    op = Int8Linear.quantize(torch.randn(out_features, in_features))
    assert_matches_reference(op, torch.randn(num_tokens, in_features), RTOL)


@pytest.mark.parametrize("num_tokens", [1, 300])
def test_default_thresholds_stay_close_to_reference(num_tokens):
    weight = torch.randn(256, 576)
    x = torch.randn(num_tokens, 576)
    for op in (Int4Linear.from_groups(quantize_groups(weight, 64)), Int8Linear.quantize(weight)):
        assert_matches_reference(op, x, RTOL)


@pytest.mark.parametrize("cls", [Int4Linear, Int8Linear])
def test_kernel_choice_follows_the_token_threshold(monkeypatch, cls):
    """Up to the threshold the C++ kernel runs (int8 activations), above it the float32 path."""
    weight = torch.randn(128, 256)
    op = Int4Linear.from_groups(quantize_groups(weight, 64)) if cls is Int4Linear else Int8Linear.quantize(weight)
    limit = cls.KERNEL_MAX_TOKENS
    small, large = torch.randn(limit, 256), torch.randn(limit + 1, 256)
    auto_small, auto_large = op(small), op(large)
    torch.testing.assert_close(auto_small, kernel_reference(op, small), atol=1e-4, rtol=1e-4)
    force_path(monkeypatch, cls, "float")
    assert not torch.equal(auto_small, op(small))
    assert torch.equal(auto_large, op(large))


@pytest.mark.parametrize("cls", [Int4Linear, Int8Linear])
def test_kernel_is_exact_when_the_activations_need_no_rounding(monkeypatch, cls):
    """Integer activations with 32767 (or -32767) in every block of 32 are their own int16 codes at scale 1: the
    kernel then computes x @ dequantized_weight.T itself, which pins the block size and the scale convention."""
    force_path(monkeypatch, cls, "kernel")
    weight = torch.randn(96, 256)
    op = Int4Linear.from_groups(quantize_groups(weight, 64)) if cls is Int4Linear else Int8Linear.quantize(weight)
    x = torch.randint(-32766, 32767, (5, 256)).float()
    x[:, ::32] = 32767.0 * (2 * torch.randint(0, 2, (5, 8)) - 1)
    expected = x @ op.dequantized_weight().t()
    assert (op(x) - expected).abs().max() <= RTOL * expected.abs().max()


@pytest.mark.parametrize("cls", [Int4Linear, Int8Linear])
def test_kernel_activation_rounding_stays_small(monkeypatch, cls):
    """The int16 activations move the output by about 2^-16 of its norm on Gaussian data: far below the weights'
    own rounding, and a bound that a wrong scale (or codes off by one block) cannot pass."""
    force_path(monkeypatch, cls, "kernel")
    weight = torch.randn(256, 576)
    op = Int4Linear.from_groups(quantize_groups(weight, 128)) if cls is Int4Linear else Int8Linear.quantize(weight)
    x = torch.randn(8, 576)
    expected = x @ op.dequantized_weight().t()
    assert (op(x) - expected).norm() / expected.norm() < 1e-4


def test_int4_dequantized_weight_equals_group_codes():
    """bf16 (8 significant bits) scale and offset add at most 16 * step * 2^-8 = step / 16 (rounding error: step / 2)."""
    q = quantize_groups(torch.randn(64, 96), 64)
    op = Int4Linear.from_groups(q)
    assert op.dequantized_weight().shape == (64, 96)
    step = q.scales.repeat_interleave(64, dim=1)[:, :96]
    assert torch.all((op.dequantized_weight() - dequantize_groups(q)).abs() <= step / 16)


def test_quantization_error_is_small_relative_to_weights():
    weight = torch.randn(128, 512)
    int4 = Int4Linear.from_groups(quantize_groups(weight, 128)).dequantized_weight()
    int8 = Int8Linear.quantize(weight).dequantized_weight()
    assert (int8 - weight).norm() / weight.norm() < 0.01
    assert (int4 - weight).norm() / weight.norm() < 0.12
    assert (int8 - weight).norm() < (int4 - weight).norm()


@pytest.mark.parametrize("num_tokens", [1, 5])
def test_awq_linear_cpu_path_matches_reference(num_tokens):
    q = quantize_groups(torch.randn(64, 96), 64)
    op = AwqLinear.from_groups(q)
    torch.testing.assert_close(op.dequantized_weight(), dequantize_groups(q), rtol=1e-3, atol=1e-3)  # fp16 scales
    assert_matches_reference(op, torch.randn(num_tokens, 96), RTOL)


def ops_under_test():
    weight = torch.randn(128, 192)
    return [Int4Linear.from_groups(quantize_groups(weight, 64)), Int8Linear.quantize(weight),
            AwqLinear.from_groups(quantize_groups(weight, 64))]


@pytest.mark.parametrize("op", ops_under_test(), ids=["int4", "int8", "awq"])
def test_with_tensors_runs_over_slot_views_without_copying(op):
    """A weight slot is one byte buffer; the op rebuilt over views into it must compute the same."""
    tensors = op.tensors()
    slot = torch.zeros(sum(t.nbytes for t in tensors.values()) + 64 * len(tensors), dtype=torch.uint8)
    views, offset = {}, 0
    for name, t in tensors.items():
        view = slot[offset:offset + t.nbytes].view(t.dtype).view(t.shape)
        view.copy_(t)
        views[name] = view
        offset += -(-t.nbytes // 64) * 64                                   # keep views 64-byte aligned
    rebuilt = op.with_tensors(views)
    for name, t in rebuilt.tensors().items():
        assert t.data_ptr() == views[name].data_ptr()
    x = torch.randn(3, 192)
    torch.testing.assert_close(rebuilt(x), op(x), rtol=0, atol=0)


def test_layer_variants_shrink_bytes_for_smollm2_shapes():
    """SmolLM2-135M layer: hidden 576, 9 q / 3 kv heads of 64, intermediate 1536."""
    hidden, inter, q_size, kv_size = 576, 1536, 576, 192
    w = torch.randn
    layer = dense_layer(torch.ones(hidden), w(q_size, hidden), w(kv_size, hidden), w(kv_size, hidden), w(hidden, q_size),
                        torch.ones(hidden), w(inter, hidden), w(inter, hidden), w(hidden, inter))
    fp, int8, int4 = layer.nbytes(), quantize_layer_int8(layer).nbytes(), quantize_layer_rtn(layer, 4, 128).nbytes()
    assert fp == 4 * (hidden * (q_size + 2 * kv_size) + q_size * hidden + 3 * hidden * inter + 2 * hidden)
    assert 3.9 < fp / int8 < 4.0
    assert 6.5 < fp / int4 < 7.5                      # 8x minus padding 576 -> 640, scales and offsets


def test_rtn_rejects_other_bit_widths():
    layer = dense_layer(*(torch.randn(16, 16) if i not in (0, 5) else torch.ones(16) for i in range(9)))
    with pytest.raises(ValueError, match="RTN variants are 4-bit"):
        quantize_layer_rtn(layer, bits=3)


def test_int4_linear_rejects_wrong_input_width():
    op = Int4Linear.from_groups(quantize_groups(torch.randn(16, 96), 64))
    with pytest.raises(AssertionError, match=r"x must be \[M, 96\]"):
        op(torch.randn(2, 128))


@pytest.mark.parametrize("path,takes_the_kernel", [("kernel", True), ("float", False)])
def test_forced_linear_path_applies_inside_the_block_and_is_restored(path, takes_the_kernel):
    op = Int8Linear.quantize(torch.randn(64, 256))
    many = torch.randn(Int8Linear.KERNEL_MAX_TOKENS + 1, 256)
    before = Int8Linear.KERNEL_MAX_TOKENS, Int4Linear.KERNEL_MAX_TOKENS
    with forced_linear_path(path):
        expected = kernel_reference(op, many) if takes_the_kernel else many @ op.dequantized_weight().t()
        assert (op(many) - expected).abs().max() <= RTOL * expected.abs().max()
        assert (Int4Linear.KERNEL_MAX_TOKENS > 10**6) == takes_the_kernel
    assert (Int8Linear.KERNEL_MAX_TOKENS, Int4Linear.KERNEL_MAX_TOKENS) == before


def test_forced_linear_path_rejects_an_unknown_path():
    with pytest.raises(ValueError, match="must be one of"):
        with forced_linear_path("fast"):
            pass
