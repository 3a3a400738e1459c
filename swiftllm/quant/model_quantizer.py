"""Quantize every decoder layer of a model into one variant (with a progress bar).

AWQ runs layer by layer like AutoAWQ: the calibration sequences go through the full-precision
layers, and each layer is quantized from the inputs its linears see there. ``quantized_layers`` hands the
variants out one at a time, so a caller can move each off the device before the next is made.
"""
import functools
from collections.abc import Iterator

import torch
from tqdm import tqdm

from swiftllm.model_config import LlamaModelConfig
from swiftllm.quant.awq import quantize_layer_awq
from swiftllm.quant.calibration import record_linear_inputs
from swiftllm.quant.spec import VariantSpec
from swiftllm.quant.variants import quantize_layer_int8, quantize_layer_rtn
from swiftllm.worker.model import CachelessForward
from swiftllm.worker.weight import LayerWeights, ModelWeights


def quantize_model(weights: ModelWeights, cfg: LlamaModelConfig, spec: VariantSpec,
                   calibration: list[torch.Tensor] | None = None, **awq_options) -> list[LayerWeights]:
    """All layers of ``weights`` as ``spec``'s variant.

    calibration: token sequences (each int64 [T]) from a real text, required by AWQ
    (see ``calibration.calibration_sequences``); awq_options go to ``quantize_layer_awq``.
    """
    return list(quantized_layers(weights, cfg, spec, calibration, **awq_options))


@torch.no_grad()
def quantized_layers(weights: ModelWeights, cfg: LlamaModelConfig, spec: VariantSpec,
                     calibration: list[torch.Tensor] | None = None, **awq_options) -> Iterator[LayerWeights]:
    """``quantize_model`` one layer at a time, on the weights' device: a caller that moves each variant elsewhere
    before taking the next holds one layer's variant on the device at a time."""
    if spec.method == "awq":
        yield from _quantize_awq(weights, cfg, spec, calibration, awq_options)
        return
    quantize_layer = (quantize_layer_int8 if spec.method == "int8"
                      else functools.partial(quantize_layer_rtn, bits=4, group_size=spec.group_size))
    for layer in _progress(weights.layers, spec):
        yield quantize_layer(layer)


def _quantize_awq(weights: ModelWeights, cfg: LlamaModelConfig, spec: VariantSpec,
                  calibration: list[torch.Tensor] | None, awq_options: dict) -> Iterator[LayerWeights]:
    if not calibration:
        raise ValueError("AWQ needs calibration token sequences from a real text (WikiText-2 valid by default, "
                         "see swiftllm.quant.calibration); random data is never used")
    forward = CachelessForward(weights, cfg, max(len(ids) for ids in calibration))
    hidden = [forward.embed(ids) for ids in calibration]                          # each [T, hidden]

    def forward_all(layer: LayerWeights, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [forward.layer(layer, x) for x in inputs]

    for layer in _progress(weights.layers, spec):
        calib, hidden = record_linear_inputs(layer, functools.partial(forward_all, inputs=hidden))
        yield quantize_layer_awq(layer, calib, spec.group_size, **awq_options)


def _progress(layers: list[LayerWeights], spec: VariantSpec):
    return tqdm(layers, desc=f"quantize {spec.name}", unit="layer")
