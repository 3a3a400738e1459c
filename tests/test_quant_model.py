"""Whole-model quantization: calibration plumbing, every method on a tiny model, progress bar, bad inputs."""
import pytest
import torch

from swiftllm.quant.calibration import calibration_sequences, read_calibration_text, record_linear_inputs
from swiftllm.quant.int4_linear import Int4Linear
from swiftllm.quant.int8_linear import Int8Linear
from swiftllm.quant.model_quantizer import quantize_model
from swiftllm.quant.spec import VariantSpec
from swiftllm.worker.kernels.rmsnorm import rmsnorm
from swiftllm.worker.kernels.rotary import rotary_cos_sin
from swiftllm.worker.kernels.silu_and_mul import silu_and_mul
from swiftllm.worker.model import causal_attend, decoder_layer, dense_logits
from tests.test_quant_support import random_model, tiny_config

OP_TYPES = {"int8": Int8Linear, "rtn": Int4Linear, "awq": Int4Linear}


@pytest.fixture(scope="module")
def model():
    cfg = tiny_config()
    return cfg, random_model(cfg)


@pytest.fixture(scope="module")
def calibration(model):
    cfg, _ = model
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, cfg.vocab_size, (3 * 32,), generator=generator).tolist()
    return calibration_sequences(ids, seq_len=32, num_seqs=3)


def test_recorded_inputs_are_the_post_norm_activations(model):
    cfg, weights = model
    layer = weights.layers[0]
    x = torch.randn(12, cfg.hidden_size)
    cos, sin = rotary_cos_sin(cfg, 12, torch.float32, "cpu")
    run = lambda lw: decoder_layer(x, lw, cfg, cos, sin, causal_attend(cfg))  # noqa: E731
    calib, output = record_linear_inputs(layer, run)
    torch.testing.assert_close(output, run(layer), rtol=0, atol=0)
    torch.testing.assert_close(calib["qkv_proj"], rmsnorm(x, layer.attn_norm, cfg.rms_norm_eps))
    assert calib["o_proj"].shape == (12, cfg.q_size)
    torch.testing.assert_close(calib["down_proj"], silu_and_mul(layer.gate_up_proj(calib["gate_up_proj"])))


@pytest.mark.parametrize("name", ["int8", "rtn-int4-g64", "awq-int4-g64", "awq-int4-g32"])
def test_quantized_model_stays_close_to_full_precision(model, calibration, name):
    cfg, weights = model
    spec = VariantSpec.from_name(name)
    layers = quantize_model(weights, cfg, spec, calibration)
    assert len(layers) == cfg.num_layers
    assert all(isinstance(layer.down_proj, OP_TYPES[spec.method]) for layer in layers)
    tokens = calibration[0]
    reference = dense_logits(weights, cfg, tokens)
    error = (dense_logits(weights, cfg, tokens, layers) - reference).norm() / reference.norm()
    assert error < (0.02 if spec.method == "int8" else 0.15)


def test_quantize_model_shows_progress(model, capsys):
    cfg, weights = model
    quantize_model(weights, cfg, VariantSpec("int8"))
    assert "quantize int8: 100%" in capsys.readouterr().err


def test_awq_without_calibration_is_refused(model):
    cfg, weights = model
    with pytest.raises(ValueError, match="AWQ needs calibration token sequences"):
        quantize_model(weights, cfg, VariantSpec("awq", 64))


def test_calibration_sequences_are_consecutive_windows():
    seqs = calibration_sequences(list(range(100)), seq_len=8, num_seqs=3)
    assert [s.tolist() for s in seqs] == [list(range(0, 8)), list(range(8, 16)), list(range(16, 24))]
    with pytest.raises(ValueError, match="3 x 40 = 120 needed"):
        calibration_sequences(list(range(100)), seq_len=40, num_seqs=3)


def test_calibration_text_must_exist_and_be_non_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="wikitext2_tokens_valid.txt"):
        read_calibration_text(str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(ValueError, match="is empty"):
        read_calibration_text(str(tmp_path / "empty.txt"))
    (tmp_path / "text.txt").write_text("The European lobster.")
    assert read_calibration_text(str(tmp_path / "text.txt")) == "The European lobster."


@pytest.mark.parametrize("name,expected", [("int8", VariantSpec("int8")), ("awq-int4-g128", VariantSpec("awq", 128)),
                                           ("rtn-int4-g32", VariantSpec("rtn", 32))])
def test_variant_names_round_trip(name, expected):
    assert VariantSpec.from_name(name) == expected and expected.name == name
    assert expected.bits == (8 if name == "int8" else 4)


@pytest.mark.parametrize("name,message", [("gptq-int4-g128", "unknown quantization method"),
                                          ("awq-int4-g100", "group_size must be one of"), ("awq", "bad variant name")])
def test_bad_variant_names_are_rejected(name, message):
    with pytest.raises(ValueError, match=message):
        VariantSpec.from_name(name)

