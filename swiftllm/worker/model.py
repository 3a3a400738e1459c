"""The Llama forward pass: pre-layer (embedding), decoder layers, post-layer (norm + LM head).

It knows nothing about quantization or memory management: every linear op is a ``Linear`` and the KV
cache is reached through the ``attend`` callable given to each layer. ``LlamaModel`` serves over the paged
cache; ``CachelessForward`` runs whole sequences through the same layers without one.
"""
from typing import Callable

import torch

from swiftllm.model_config import LlamaModelConfig
from swiftllm.worker.infer_state import InferState
from swiftllm.worker.kernels.ops import (
    add_rmsnorm_, decode_attention, prefill_attention, rmsnorm, silu_and_mul, split_qkv_rotary, store_kv,
)
from swiftllm.worker.kernels.rotary import rotary_cos_sin
from swiftllm.worker.weight import LayerWeights, ModelWeights, embedding_rows, vocab_logits

# attend(q [T, hq, d], k [T, hkv, d], v [T, hkv, d]) -> [T, hq, d]
Attend = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def decoder_layer(x: torch.Tensor, w: LayerWeights, cfg: LlamaModelConfig,
                  cos: torch.Tensor, sin: torch.Tensor, attend: Attend) -> torch.Tensor:
    """x: [T, hidden] -> [T, hidden]; cos, sin: [T, head_dim / 2] at the rows' positions."""
    num_rows = x.shape[0]
    qkv = w.qkv_proj(rmsnorm(x, w.attn_norm, cfg.rms_norm_eps))             # [T, (hq + 2 hkv) d]
    q, k, v = split_qkv_rotary(qkv, cos, sin, cfg.num_q_heads, cfg.num_kv_heads)  # [T, hq, d], [T, hkv, d] x 2
    attn = attend(q, k, v).reshape(num_rows, cfg.q_size)                   # [T, hq d]
    h = w.o_proj(attn)                                                       # a fresh tensor: the residual sum is built in it
    normed = add_rmsnorm_(h, x, w.ffn_norm, cfg.rms_norm_eps)               # h = x + o_proj(attn)
    mlp = w.down_proj(silu_and_mul(w.gate_up_proj(normed)))
    return mlp.add_(h)


def causal_attend(cfg: LlamaModelConfig) -> Attend:
    """Attention of one whole sequence over itself, no cache."""
    scale = cfg.head_dim ** -0.5
    return lambda q, k, v: prefill_attention(q, k, v, scale)


class CachelessForward:
    """Whole sequences through the model's layers without a KV cache, with the serving path's ops: the one
    forward of calibration (AWQ), layer profiling (LIS) and perplexity. Sequences up to ``max_len`` tokens."""

    def __init__(self, weights: ModelWeights, cfg: LlamaModelConfig, max_len: int):
        self.weights = weights
        self.cfg = cfg
        dtype, device = weights.final_norm.dtype, weights.final_norm.device
        self.cos, self.sin = rotary_cos_sin(cfg, max_len, dtype, device)      # [max_len, head_dim / 2]
        self.attend = causal_attend(cfg)

    def embed(self, token_ids: torch.Tensor) -> torch.Tensor:
        """token_ids [T] -> [T, hidden]."""
        return embedding_rows(self.weights.embed_tokens, token_ids.to(self.weights.final_norm.device))

    def layer(self, layer: LayerWeights, x: torch.Tensor) -> torch.Tensor:
        """x [T, hidden] (positions 0 .. T - 1) -> [T, hidden]."""
        num_tokens = x.shape[0]
        return decoder_layer(x, layer, self.cfg, self.cos[:num_tokens], self.sin[:num_tokens], self.attend)

    def final_norm(self, x: torch.Tensor) -> torch.Tensor:
        """The final-normed hidden states, what the LM head reads: [T, hidden] -> [T, hidden]."""
        return rmsnorm(x, self.weights.final_norm, self.cfg.rms_norm_eps)

    def hidden_states(self, token_ids: torch.Tensor, layers: list[LayerWeights] | None = None) -> torch.Tensor:
        """token_ids [T] -> final-normed hidden states [T, hidden]; ``layers`` overrides ``weights.layers`` (e.g. some
        layers replaced by quantized variants)."""
        x = self.embed(token_ids)
        for layer in self.weights.layers if layers is None else layers:
            x = self.layer(layer, x)
        return self.final_norm(x)


def dense_hidden_states(weights: ModelWeights, cfg: LlamaModelConfig, token_ids: torch.Tensor,
                        layers: list[LayerWeights] | None = None) -> torch.Tensor:
    """Final-normed hidden states of one sequence, no KV cache: token_ids [T] -> [T, hidden]."""
    return CachelessForward(weights, cfg, token_ids.shape[0]).hidden_states(token_ids, layers)


def dense_logits(weights: ModelWeights, cfg: LlamaModelConfig, token_ids: torch.Tensor,
                 layers: list[LayerWeights] | None = None) -> torch.Tensor:
    """token_ids [T] -> logits [T, vocab] (float32)."""
    return vocab_logits(dense_hidden_states(weights, cfg, token_ids, layers), weights.lm_head).float()


class LlamaModel:
    """Serving forward pass over the paged KV cache."""

    def __init__(self, cfg: LlamaModelConfig, weights: ModelWeights, max_positions: int):
        self.cfg = cfg
        self.weights = weights
        self.scale = cfg.head_dim ** -0.5
        dtype, device = weights.final_norm.dtype, weights.final_norm.device
        self.cos, self.sin = rotary_cos_sin(cfg, max_positions, dtype, device)  # [max_positions, d / 2]

    @torch.inference_mode()
    def forward(self, input_ids: torch.Tensor, state: InferState,
                k_caches: list[torch.Tensor], v_caches: list[torch.Tensor]) -> torch.Tensor:
        """input_ids [T] -> logits [S, vocab] for ``state.logit_rows`` (float32).

        k_caches[i], v_caches[i]: layer i's cache, [num_blocks, block_size, num_kv_heads, head_dim].
        """
        cos, sin = self.cos[state.positions], self.sin[state.positions]
        x = embedding_rows(self.weights.embed_tokens, input_ids)               # [T, hidden]
        for i, layer in enumerate(self.weights.layers):
            attend = self._paged_attend(state, k_caches[i], v_caches[i])
            x = decoder_layer(x, layer, self.cfg, cos, sin, attend)
        x = rmsnorm(x[state.logit_rows], self.weights.final_norm, self.cfg.rms_norm_eps)
        return vocab_logits(x, self.weights.lm_head).float()

    def _paged_attend(self, state: InferState, k_cache: torch.Tensor, v_cache: torch.Tensor) -> Attend:
        def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            store_kv(k_cache, v_cache, k, v, state.slot_mapping)
            if not state.prefills:
                return decode_attention(q, k_cache, v_cache, state, self.scale)
            out = torch.empty_like(q)
            for seq in state.prefills:
                out[seq.start:seq.end] = self._prefill_seq(seq, q, k, v, k_cache, v_cache)
            if state.decode_seq_lens is not None:
                rows = slice(state.num_prefill_rows, q.shape[0])
                out[rows] = decode_attention(q[rows], k_cache, v_cache, state, self.scale)
            return out
        return attend

    def _prefill_seq(self, seq, q, k, v, k_cache, v_cache) -> torch.Tensor:
        rows = slice(seq.start, seq.end)
        if seq.context_slots is None:
            return prefill_attention(q[rows], k[rows], v[rows], self.scale)
        num_kv_heads, head_dim = k_cache.shape[-2:]
        keys = k_cache.view(-1, num_kv_heads, head_dim)[seq.context_slots]       # [context_len, hkv, d]
        values = v_cache.view(-1, num_kv_heads, head_dim)[seq.context_slots]
        return prefill_attention(q[rows], keys, values, self.scale)
