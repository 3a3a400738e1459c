"""AWQ: the searches never lose to their baselines, folding keeps the layer's function, bad calibration is refused."""
import pytest
import torch

from swiftllm.quant.awq import quantize_layer_awq, search_clip, search_scale
from swiftllm.quant.calibration import record_linear_inputs
from swiftllm.quant.groupwise import fake_quantize
from swiftllm.quant.int4_linear import Int4Linear
from swiftllm.quant.variants import quantize_layer_rtn
from swiftllm.worker.kernels.rotary import rotary_cos_sin
from swiftllm.worker.model import causal_attend, decoder_layer
from tests.test_quant_support import outlier_inputs, random_layer, tiny_config


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)


def output_mse(x: torch.Tensor, weight: torch.Tensor, approx: torch.Tensor) -> float:
    return (x @ approx.t() - x @ weight.t()).pow(2).mean().item()


def test_scale_search_beats_rtn_on_outlier_activations(generator):
    weight = torch.randn(64, 128, generator=generator) * 0.1
    x = outlier_inputs(512, 128, generator)
    scale = search_scale(weight, x, group_size=64)
    awq = output_mse(x, weight, fake_quantize(weight * scale, 64) / scale)
    rtn = output_mse(x, weight, fake_quantize(weight, 64))
    assert scale.shape == (128,) and torch.all(scale > 0)
    assert awq < 0.8 * rtn
    assert scale[:4].mean() > scale[4:].mean()          # the large input channels get the large scales


def test_scale_search_falls_back_to_rtn_without_outliers(generator):
    weight = torch.randn(32, 64, generator=generator)
    x = torch.randn(256, 64, generator=generator)
    scale = search_scale(weight, x, group_size=32)
    rtn = output_mse(x, weight, fake_quantize(weight, 32))
    assert output_mse(x, weight, fake_quantize(weight * scale, 32) / scale) <= rtn


def test_clip_search_never_increases_group_error(generator):
    weight = torch.randn(32, 96, generator=generator)
    weight[:, 5] *= 8                                   # one outlier weight column: clipping pays off
    x = torch.randn(128, 96, generator=generator)
    ratio = search_clip(weight, x, group_size=64)
    assert ratio.shape == (32, 2) and torch.all((ratio >= 0.55 - 1e-6) & (ratio <= 1))
    assert output_mse(x, weight, fake_quantize(weight, 64, ratio)) <= output_mse(x, weight, fake_quantize(weight, 64))
    assert torch.any(ratio < 1)


def calibrate(layer, cfg, hidden):
    cos, sin = rotary_cos_sin(cfg, hidden.shape[0], torch.float32, "cpu")
    run = lambda lw: decoder_layer(hidden, lw, cfg, cos, sin, causal_attend(cfg))  # noqa: E731
    calib, output = record_linear_inputs(layer, run)
    return calib, output, run


@pytest.mark.parametrize("num_kv_heads", [2, 6], ids=["gqa", "mha-o_proj-folded"])
@pytest.mark.parametrize("clip", [False, True])
def test_awq_layer_keeps_function_and_beats_rtn(generator, num_kv_heads, clip):
    cfg = tiny_config(num_kv_heads=num_kv_heads)
    layer = random_layer(cfg, generator)
    layer.qkv_proj.weight[-cfg.kv_size:][:4] *= 20      # outlier v channels: o_proj's input has outliers too
    calib, reference, run = calibrate(layer, cfg, outlier_inputs(128, cfg.hidden_size, generator))
    awq = quantize_layer_awq(layer, calib, group_size=64, clip=clip)
    rtn = quantize_layer_rtn(layer, 4, group_size=64)
    awq_error = (run(awq) - reference).norm() / reference.norm()
    rtn_error = (run(rtn) - reference).norm() / reference.norm()
    assert all(isinstance(getattr(awq, name), Int4Linear) for name in ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"))
    assert not torch.equal(awq.attn_norm, layer.attn_norm)          # scales were folded into the norms
    assert awq_error < rtn_error
    assert awq_error < 0.1


def test_awq_refuses_missing_calibration(generator):
    cfg = tiny_config()
    layer = random_layer(cfg, generator)
    calib, _, _ = calibrate(layer, cfg, torch.randn(8, cfg.hidden_size, generator=generator))
    del calib["down_proj"]
    with pytest.raises(ValueError, match="calibration inputs for 'down_proj' are missing"):
        quantize_layer_awq(layer, calib, group_size=64)


def test_awq_refuses_misshaped_calibration(generator):
    cfg = tiny_config()
    layer = random_layer(cfg, generator)
    calib, _, _ = calibrate(layer, cfg, torch.randn(8, cfg.hidden_size, generator=generator))
    calib["o_proj"] = calib["o_proj"][:, :10]
    with pytest.raises(ValueError, match=r"calibration inputs for 'o_proj' must be \[N > 0, 96\]"):
        quantize_layer_awq(layer, calib, group_size=64)
