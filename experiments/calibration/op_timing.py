"""The CPU engine's ops timed in isolation, on the real model's weights: a decoder layer outside attention at each
precision by token count, decode and prefill attention over a paged cache, and the LM head by sampled rows."""
import math

import torch

from experiments.calibration.timing import least_squares, median_seconds
from swiftllm.model_config import LlamaModelConfig
from swiftllm.quant.model_quantizer import quantize_model
from swiftllm.quant.spec import VariantSpec
from swiftllm.sampling_params import SamplingParams
from swiftllm.server.engine import FULL_PRECISION
from swiftllm.worker.infer_state import InferState
from swiftllm.worker.kernels.ops import decode_attention, prefill_attention, rmsnorm, store_kv
from swiftllm.worker.kernels.rotary import rotary_cos_sin
from swiftllm.worker.model import decoder_layer
from swiftllm.worker.sampler import sample
from swiftllm.worker.weight import LayerWeights, ModelWeights, vocab_logits

LAYER_TOKENS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
HEAD_ROWS = (1, 2, 4, 8, 16, 32, 64)
BLOCK_SIZE = 16
GREEDY = SamplingParams(temperature=0)


def _passthrough(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return q


def layers_by_precision(weights: ModelWeights, cfg: LlamaModelConfig) -> dict[str, list[LayerWeights]]:
    """The model's decoder layers at each precision the op table times: FP, INT8 per channel, INT4 RTN g128."""
    return {FULL_PRECISION: list(weights.layers), "int8": quantize_model(weights, cfg, VariantSpec("int8")),
            "int4": quantize_model(weights, cfg, VariantSpec("rtn", 128))}


@torch.inference_mode()
def layer_seconds(layers: list[LayerWeights], cfg: LlamaModelConfig, tokens: int) -> float:
    """One decoder layer outside attention over ``tokens`` rows: a pass over every layer (weights streamed as a
    step streams them) divided by their number."""
    cos, sin = (t[:tokens] for t in rotary_cos_sin(cfg, max(tokens, 2), torch.float32, "cpu"))
    x = torch.randn(tokens, cfg.hidden_size)

    def run():
        h = x
        for layer in layers:
            h = decoder_layer(h, layer, cfg, cos, sin, _passthrough)
    repeats = max(3, min(15, int(4096 // tokens)))
    return median_seconds(run, repeats=repeats) / len(layers)


def _cache(cfg: LlamaModelConfig, num_blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (num_blocks, BLOCK_SIZE, cfg.num_kv_heads, cfg.head_dim)
    return torch.randn(shape), torch.randn(shape)


@torch.inference_mode()
def decode_attention_seconds(cfg: LlamaModelConfig, context_lens: list[int]) -> float:
    """One layer's KV store and decode attention for one new token per context (contexts in disjoint blocks)."""
    blocks = [math.ceil(n / BLOCK_SIZE) for n in context_lens]
    k_cache, v_cache = _cache(cfg, sum(blocks))
    starts = [sum(blocks[:i]) for i in range(len(blocks))]
    width = max(blocks)
    tables = torch.tensor([[s + j if j < b else 0 for j in range(width)] for s, b in zip(starts, blocks)])
    lens = torch.tensor(context_lens)
    slots = torch.tensor([(s + (n - 1) // BLOCK_SIZE) * BLOCK_SIZE + (n - 1) % BLOCK_SIZE
                          for s, n in zip(starts, context_lens)])
    state = InferState(positions=lens - 1, slot_mapping=slots, prefills=[], num_prefill_rows=0,
                       decode_block_tables=tables, decode_seq_lens=lens, decode_max_seq_len=max(context_lens),
                       logit_rows=torch.arange(len(lens)))
    q = torch.randn(len(lens), cfg.num_q_heads, cfg.head_dim)
    k, v = torch.randn(len(lens), cfg.num_kv_heads, cfg.head_dim), torch.randn(len(lens), cfg.num_kv_heads, cfg.head_dim)
    scale = cfg.head_dim ** -0.5

    def run():
        store_kv(k_cache, v_cache, k, v, slots)
        decode_attention(q, k_cache, v_cache, state, scale)
    return median_seconds(run, repeats=15)


def fit_decode_attention(cfg: LlamaModelConfig) -> dict[str, float]:
    """``per_call + per_sequence * D + per_context_token * sum(context)`` over a grid of batches and contexts."""
    rows, times = [], []
    for num_seqs in (1, 2, 4, 8, 16):
        for context in (128, 384, 768):
            lens = [context] * num_seqs
            rows.append([1.0, num_seqs, sum(lens)])
            times.append(decode_attention_seconds(cfg, lens))
    call, sequence, token = least_squares(rows, times)
    return {"per_call_s": call, "per_sequence_s": sequence, "per_context_token_s": token}


@torch.inference_mode()
def prefill_attention_seconds(cfg: LlamaModelConfig, tokens: int, prefix: int) -> float:
    """One layer's KV store and causal attention of a chunk of ``tokens`` after a cached ``prefix`` (gathered from
    the paged cache, as the model does)."""
    context = prefix + tokens
    k_cache, v_cache = _cache(cfg, math.ceil(context / BLOCK_SIZE))
    q = torch.randn(tokens, cfg.num_q_heads, cfg.head_dim)
    k, v = torch.randn(tokens, cfg.num_kv_heads, cfg.head_dim), torch.randn(tokens, cfg.num_kv_heads, cfg.head_dim)
    slots = torch.arange(prefix, context)
    context_slots = torch.arange(context)
    scale = cfg.head_dim ** -0.5
    flat = (-1, cfg.num_kv_heads, cfg.head_dim)

    def run():
        store_kv(k_cache, v_cache, k, v, slots)
        if prefix:
            prefill_attention(q, k_cache.view(flat)[context_slots], v_cache.view(flat)[context_slots], scale)
        else:
            prefill_attention(q, k, v, scale)
    return median_seconds(run, repeats=7)


def fit_prefill_attention(cfg: LlamaModelConfig) -> dict[str, float]:
    """``per_call + per_query_key * pairs + per_context_token * gathered`` over chunk lengths and prefixes."""
    rows, times = [], []
    for tokens in (16, 64, 192, 512):
        for prefix in (0, 192, 512):
            pairs = tokens * prefix + tokens * (tokens + 1) / 2
            rows.append([1.0, pairs, prefix + tokens if prefix else 0.0])
            times.append(prefill_attention_seconds(cfg, tokens, prefix))
    call, pair, gathered = least_squares(rows, times)
    return {"per_call_s": call, "per_query_key_s": pair, "per_context_token_s": gathered}


@torch.inference_mode()
def head_seconds(weights: ModelWeights, cfg: LlamaModelConfig, rows: int) -> float:
    """Final norm, LM head and greedy sampling of ``rows`` sampled rows."""
    x = torch.randn(rows, cfg.hidden_size)

    def run():
        logits = vocab_logits(rmsnorm(x, weights.final_norm, cfg.rms_norm_eps), weights.lm_head).float()
        sample(logits, [GREEDY] * rows, [None] * rows)
    return median_seconds(run, repeats=9)
