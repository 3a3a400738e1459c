"""The CPU calibration's op timings (experiments/calibration/op_timing.py) run on the engine's current ops: each
gives a positive time on a tiny random model, and a longer context or more rows costs no less (within noise)."""
import math

import torch

from experiments.calibration.op_timing import (decode_attention_seconds, head_seconds, layer_seconds,
                                               layers_by_precision, prefill_attention_seconds)
from swiftllm.sim.cpu_ops import load_cpu_op_table
from swiftllm.sim.hardware_config import op_table_path
from swiftllm.worker.random_weights import random_model


def _tiny():
    return random_model("random:tiny-llama-gqa", torch.float32, "cpu")


def test_every_op_timing_runs_and_is_positive():
    cfg, weights = _tiny()
    times = [layer_seconds(weights.layers, cfg, 4), decode_attention_seconds(cfg, [5, 37, 200]),
             prefill_attention_seconds(cfg, 16, 0), prefill_attention_seconds(cfg, 16, 40), head_seconds(weights, cfg, 2)]
    assert all(math.isfinite(t) and t > 0 for t in times), times


def test_decode_attention_over_many_long_contexts_costs_more_than_one_short():
    cfg, _ = _tiny()
    assert decode_attention_seconds(cfg, [2048] * 16) > decode_attention_seconds(cfg, [8])


def test_layers_are_timed_at_every_precision_of_the_shipped_op_table_and_are_quantized():
    cfg, weights = _tiny()
    layers = layers_by_precision(weights, cfg)
    assert set(layers) == set(load_cpu_op_table(op_table_path("cpu_smollm2-135m")).layer_seconds)
    fp_bytes = sum(t.nbytes for t in weights.layers[0].tensors().values())
    for precision in ("int8", "int4"):
        assert len(layers[precision]) == len(weights.layers)
        assert sum(t.nbytes for t in layers[precision][0].tensors().values()) < fp_bytes, precision
        assert math.isfinite(layer_seconds(layers[precision], cfg, 4))
