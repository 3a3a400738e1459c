"""An independent forward pass: transformers' ``LlamaForCausalLM`` holding our (dequantized) weights.

Every linear op contributes its ``dequantized_weight()``, so a model with quantized layers is
reproduced exactly as the weights our kernels multiply with; transformers then computes attention,
rotary embeddings, norms and the MLP with its own code. Used to cross-check our perplexity.
"""
from collections.abc import Sequence

import torch

from experiments.eval.perplexity import LogitsFn
from swiftllm.model_config import LlamaModelConfig
from swiftllm.worker.weight import LayerWeights, ModelWeights
from swiftllm.worker.weight_loader import LAYER_REGISTRY, MODEL_REGISTRY


def hf_config(cfg: LlamaModelConfig):
    """The transformers ``LlamaConfig`` of ``cfg``."""
    from transformers import LlamaConfig
    rope_scaling = None
    if cfg.rope_scaling is not None:
        s = cfg.rope_scaling
        rope_scaling = {"rope_type": "llama3", "factor": s.factor, "low_freq_factor": s.low_freq_factor,
                        "high_freq_factor": s.high_freq_factor,
                        "original_max_position_embeddings": s.original_max_position_embeddings}
    return LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_q_heads, num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim, max_position_embeddings=cfg.max_position_embeddings, rms_norm_eps=cfg.rms_norm_eps,
        rope_theta=cfg.rope_theta, rope_scaling=rope_scaling, tie_word_embeddings=cfg.tie_word_embeddings)


def hf_state_dict(weights: ModelWeights, cfg: LlamaModelConfig,
                  layers: Sequence[LayerWeights] | None = None) -> dict[str, torch.Tensor]:
    """HF parameter names -> float32 tensors; ``layers`` overrides ``weights.layers`` (e.g. quantized ones)."""
    state = {MODEL_REGISTRY[name].hf: getattr(weights, name).float()
             for name in ("embed_tokens", "final_norm", "lm_head")}
    for i, layer in enumerate(weights.layers if layers is None else layers):
        state.update({LAYER_REGISTRY[arg].hf.format(i=i): tensor for arg, tensor in _hf_layer_tensors(layer, cfg).items()})
    return state


def _hf_layer_tensors(layer: LayerWeights, cfg: LlamaModelConfig) -> dict[str, torch.Tensor]:
    """``dense_layer`` argument name -> [out, in] float32 weight (or [hidden] norm), fused ops split again."""
    wq, wk, wv = layer.qkv_proj.dequantized_weight().float().split([cfg.q_size, cfg.kv_size, cfg.kv_size])
    w_gate, w_up = layer.gate_up_proj.dequantized_weight().float().split(cfg.intermediate_size)
    return {"attn_norm": layer.attn_norm.float(), "wq": wq, "wk": wk, "wv": wv,
            "wo": layer.o_proj.dequantized_weight().float(), "ffn_norm": layer.ffn_norm.float(),
            "w_gate": w_gate, "w_up": w_up, "w_down": layer.down_proj.dequantized_weight().float()}


def hf_llama(weights: ModelWeights, cfg: LlamaModelConfig, layers: Sequence[LayerWeights] | None = None):
    """A float32 ``LlamaForCausalLM`` (eval mode) with our weights, every one checked to be loaded."""
    from transformers import LlamaForCausalLM
    with _no_init_weights():                 # every parameter is overwritten: skip the (slow) random init
        model = LlamaForCausalLM(hf_config(cfg)).float().eval()
    model.load_state_dict({k: v.contiguous() for k, v in hf_state_dict(weights, cfg, layers).items()}, strict=True)
    return model


def _no_init_weights():
    try:
        from transformers.initialization import no_init_weights          # transformers >= 5
    except ImportError:
        from transformers.modeling_utils import no_init_weights          # transformers 4.x
    return no_init_weights()


def hf_logits_fn(model) -> LogitsFn:
    """token_ids [T] -> float32 logits [T, vocab] through ``model``."""
    return lambda token_ids: model(token_ids[None]).logits[0].float()
