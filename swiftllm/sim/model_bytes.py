"""A model's weights as shapes only (torch's ``meta`` device), so the simulator sizes weights, weight slots and
quantized variants with the very code the real engine uses: ``ModelWeights.nbytes``, the quantizers and
``SlotLayout`` (tensors back to back, each 64-byte aligned) run on meta tensors and allocate nothing.
"""
import torch

from swiftllm.model_config import LlamaModelConfig
from swiftllm.quant.awq_linear import AwqLinear
from swiftllm.quant.groupwise import quantize_groups
from swiftllm.quant.int4_linear import Int4Linear
from swiftllm.quant.variants import map_linears, quantize_layer_int8
from swiftllm.worker.weight import LayerWeights, ModelWeights, dense_layer
from swiftllm.worker.weight_slots import SlotLayout

# The INT4 layout each kind of device serves: this project's row-major nibble layout on the CPU (int4_layout.py),
# AutoAWQ's GEMM layout on CUDA.
INT4_OPS = {"cpu": Int4Linear, "cuda": AwqLinear}


def meta_layer(cfg: LlamaModelConfig, dtype: torch.dtype) -> LayerWeights:
    """One full-precision decoder layer of ``cfg`` with meta tensors."""
    def empty(*shape: int) -> torch.Tensor:
        return torch.empty(*shape, dtype=dtype, device="meta")
    hidden, inter = cfg.hidden_size, cfg.intermediate_size
    return dense_layer(empty(hidden), empty(cfg.q_size, hidden), empty(cfg.kv_size, hidden), empty(cfg.kv_size, hidden),
                       empty(hidden, cfg.q_size), empty(hidden), empty(inter, hidden), empty(inter, hidden),
                       empty(hidden, inter))


def meta_weights(cfg: LlamaModelConfig, dtype: torch.dtype) -> ModelWeights:
    """The whole model with meta tensors (the embedding doubles as the LM head when tied)."""
    embed = torch.empty(cfg.vocab_size, cfg.hidden_size, dtype=dtype, device="meta")
    lm_head = embed if cfg.tie_word_embeddings else torch.empty_like(embed)
    layer = meta_layer(cfg, dtype)
    return ModelWeights(embed_tokens=embed, final_norm=torch.empty(cfg.hidden_size, dtype=dtype, device="meta"),
                        lm_head=lm_head, layers=[layer] * cfg.num_layers)


def meta_variant(layer: LayerWeights, precision: str, group_size: int, device_kind: str) -> LayerWeights:
    """``layer`` at ``precision`` (fp, int8, int4 with ``group_size``) in the layout ``device_kind`` serves."""
    if precision == "fp":
        return layer
    if precision == "int8":
        return quantize_layer_int8(layer)
    if precision == "int4":
        op = INT4_OPS[device_kind]
        return map_linears(layer, lambda _, linear: op.from_groups(quantize_groups(linear.dequantized_weight(), group_size)))
    raise ValueError(f"unknown precision {precision!r}; expected fp, int8 or int4")


def slot_bytes(layer: LayerWeights) -> int:
    """Bytes ``layer`` takes in a weight slot (what the real swapper holds and frees)."""
    return SlotLayout.of(layer).nbytes
