"""Group-wise asymmetric INT4: error bounds, padding of partial groups, clipping, bad inputs."""
import pytest
import torch

from swiftllm.quant.groupwise import (INT4_MAX, concat_rows, dequantize_groups, fake_quantize, padded_in_features,
                                      quantize_groups)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.mark.parametrize("group_size", [32, 64, 128])
@pytest.mark.parametrize("in_features", [128, 576, 100])
def test_error_is_at_most_half_a_step(group_size, in_features):
    weight = torch.randn(48, in_features)
    q = quantize_groups(weight, group_size)
    error = (dequantize_groups(q) - weight).abs()                                          # [out, in]
    step = q.scales.repeat_interleave(group_size, dim=1)[:, :in_features]
    assert torch.all(error <= step / 2 + 1e-6)
    assert q.codes.dtype == torch.uint8 and int(q.codes.max()) <= INT4_MAX
    assert q.codes.shape == (48, padded_in_features(in_features, group_size))


def test_group_min_and_max_are_exact_endpoints():
    weight = torch.randn(16, 64)
    q = quantize_groups(weight, 32)
    groups = weight.view(16, 2, 32)
    deq = dequantize_groups(q).view(16, 2, 32)
    torch.testing.assert_close(deq.amax(-1) - deq.amin(-1), groups.amax(-1) - groups.amin(-1), atol=1e-5, rtol=1e-5)


def test_partial_group_uses_only_real_columns_and_pads_with_zero_point():
    weight = torch.randn(16, 96)
    weight[:, 64:] *= 0.01                       # the partial last group is tiny: padding must not widen it
    q = quantize_groups(weight, 64)
    assert q.padded_in_features == 128 and q.in_features == 96
    assert torch.all(q.scales[:, 1] < 0.01 * q.scales[:, 0] * 2)
    assert torch.equal(q.codes[:, 96:], q.zeros[:, 1:].expand(-1, 32))
    full = (q.codes.view(16, 2, 64).float() - q.zeros.unsqueeze(-1).float()) * q.scales.unsqueeze(-1)
    assert torch.all(full.view(16, 128)[:, 96:] == 0)


def test_constant_group_is_exact():
    weight = torch.zeros(16, 32)
    weight[3] = 0.5
    torch.testing.assert_close(fake_quantize(weight, 32), weight)


def test_clipping_shrinks_range():
    weight = torch.randn(16, 64)
    q = quantize_groups(weight, 32, clip_ratio=torch.full((16, 2), 0.5))
    limit = weight.abs().view(16, 2, 32).amax(-1, keepdim=True) * 0.5                     # [out, G, 1]
    half_step = q.scales.unsqueeze(-1) / 2
    assert torch.all(dequantize_groups(q).view(16, 2, 32).abs() <= limit + half_step + 1e-6)
    assert torch.all(q.scales < quantize_groups(weight, 32).scales)


def test_concat_rows_matches_quantizing_separately():
    a, b = torch.randn(16, 64), torch.randn(32, 64)
    fused = concat_rows([quantize_groups(a, 32), quantize_groups(b, 32)])
    torch.testing.assert_close(dequantize_groups(fused), torch.cat([fake_quantize(a, 32), fake_quantize(b, 32)]))


@pytest.mark.parametrize("group_size", [0, 16, 48, 256])
def test_unsupported_group_size_is_rejected(group_size):
    with pytest.raises(ValueError, match="group_size must be one of"):
        quantize_groups(torch.randn(16, 64), group_size)


def test_non_matrix_is_rejected():
    with pytest.raises(ValueError, match=r"weight must be \[out, in\]"):
        quantize_groups(torch.randn(64), 32)


def test_concat_rows_rejects_different_columns():
    with pytest.raises(ValueError, match="same in_features"):
        concat_rows([quantize_groups(torch.randn(16, 64), 32), quantize_groups(torch.randn(16, 96), 32)])
