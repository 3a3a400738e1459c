"""How long one step of a batch takes: the simulator's cost model.

A step costs, for each decoder layer at its current precision, the layer's work outside attention at the batch's
token count (its linear ops, norms, rotary, activation, residual adds), attention by prefill chunk (with its cached
prefix) and by decode rows x context, then the embedding, final norm and LM head of the sampled rows, plus a fixed
per-step and a per-sequence overhead. Three sources of op times implement ``OpTimes``:

- ``RooflineOps``: max(FLOPs / (peak x efficiency), bytes / (bandwidth x efficiency)) from the model's shapes;
- ``ProfiledOps``: a GPU's measured per-layer operator table (Vidur) where one exists, the roofline elsewhere;
- ``swiftllm.sim.cpu_ops.CpuOps``: this project's own ops timed on this CPU.

Quantized linear ops run ``speedup(precision, tokens)`` times faster than full precision (the hardware's curves).
"""
from collections.abc import Mapping, Sequence
from typing import Protocol

from swiftllm.model_config import LlamaModelConfig
from swiftllm.sim.hardware import GB, HardwareSpec
from swiftllm.sim.profile_table import OpProfile
from swiftllm.worker.batch import WorkerBatch

TFLOP = 1e12


class OpTimes(Protocol):
    def layer(self, num_tokens: int, precision: str) -> float:
        """Seconds for one decoder layer outside attention, over ``num_tokens`` rows."""

    def prefill_attention(self, num_tokens: int, context_len: int) -> float:
        """Seconds for one layer's attention of a prompt chunk of ``num_tokens`` ending at ``context_len``."""

    def decode_attention(self, context_lens: Sequence[int]) -> float:
        """Seconds for one layer's attention of one decode row per context length."""

    def head(self, num_tokens: int, num_sampled: int) -> float:
        """Seconds for the embedding of ``num_tokens`` rows and the final norm + LM head of the sampled ones."""

    def overhead(self, num_sequences: int) -> float:
        """Seconds of a step outside the model's ops (scheduling, launches, sampling setup, bookkeeping)."""


class RooflineOps:
    """Op times from FLOPs and bytes at the hardware's peak and bandwidth times their achieved efficiencies."""

    def __init__(self, hardware: HardwareSpec, cfg: LlamaModelConfig):
        self.hardware = hardware
        self.cfg = cfg
        self.dtype_bytes = hardware.dtype_bytes
        self.linear_params = (cfg.hidden_size * (cfg.q_size + 2 * cfg.kv_size) + cfg.q_size * cfg.hidden_size
                              + 3 * cfg.intermediate_size * cfg.hidden_size)
        # activations read and written per row by one layer's ops (GEMM inputs/outputs, norms, rotary, SiLU, adds)
        self.activation_elements = (8 * cfg.hidden_size + 2 * (cfg.q_size + 2 * cfg.kv_size) + 2 * cfg.q_size
                                    + 5 * cfg.intermediate_size)

    def roofline(self, flops: float, nbytes: float) -> float:
        hw = self.hardware
        return max(flops / (hw.peak_tflops * TFLOP * hw.compute_efficiency),
                   nbytes / (hw.memory_bandwidth_gbs * GB * hw.memory_efficiency))

    def full_precision_layer(self, num_tokens: int) -> float:
        flops = 2 * num_tokens * self.linear_params
        nbytes = (self.linear_params + num_tokens * self.activation_elements) * self.dtype_bytes
        return self.roofline(flops, nbytes)

    def layer(self, num_tokens: int, precision: str) -> float:
        return self.full_precision_layer(num_tokens) / self.hardware.speedup(precision, num_tokens)

    def prefill_attention(self, num_tokens: int, context_len: int) -> float:
        cfg = self.cfg
        prefix = context_len - num_tokens
        keys = num_tokens * prefix + num_tokens * (num_tokens + 1) / 2      # causal (query, key) pairs
        flops = 4 * keys * cfg.q_size
        nbytes = (context_len * 2 * cfg.kv_size + 2 * num_tokens * cfg.q_size) * self.dtype_bytes
        return self.roofline(flops, nbytes)

    def decode_attention(self, context_lens: Sequence[int]) -> float:
        cfg = self.cfg
        keys = sum(context_lens)
        flops = 4 * keys * cfg.q_size
        nbytes = (keys * 2 * cfg.kv_size + 2 * len(context_lens) * cfg.q_size) * self.dtype_bytes
        return self.roofline(flops, nbytes)

    def head(self, num_tokens: int, num_sampled: int) -> float:
        cfg = self.cfg
        flops = 2 * num_sampled * cfg.hidden_size * cfg.vocab_size
        nbytes = (cfg.vocab_size * cfg.hidden_size + num_tokens * cfg.hidden_size + num_sampled * cfg.vocab_size
                  ) * self.dtype_bytes
        return self.roofline(flops, nbytes)

    def overhead(self, num_sequences: int) -> float:
        return self.hardware.step_overhead_s + self.hardware.sequence_overhead_s * num_sequences


class ProfiledOps(RooflineOps):
    """A measured operator table for the layer (exact at its own token counts, linear between them); attention and
    the LM head from the roofline (the tables hold no attention)."""

    def __init__(self, hardware: HardwareSpec, cfg: LlamaModelConfig, profile: OpProfile):
        super().__init__(hardware, cfg)
        self.profile = profile

    def layer(self, num_tokens: int, precision: str) -> float:
        linear = self.profile.linear_time(num_tokens) / self.hardware.speedup(precision, num_tokens)
        return linear + self.profile.other_time(num_tokens)

    def head(self, num_tokens: int, num_sampled: int) -> float:
        return self.profile.time("emb", num_tokens) + super().head(0, num_sampled)


class CostModel:
    def __init__(self, ops: OpTimes, time_scale: float = 1.0, layer_time_scales: Mapping[str, float] | None = None):
        """``time_scale``: every step time x this (``HardwareSpec.time_scale``); ``layer_time_scales``: a decoder
        layer's time at a precision x this on top of it (``HardwareSpec.layer_time_scales``, 1 for those not named)."""
        self.ops = ops
        self.time_scale = time_scale
        self.layer_time_scales = dict(layer_time_scales or {})

    def step_time(self, batch: WorkerBatch, precisions: Sequence[str]) -> float:
        """Seconds one step of ``batch`` takes with decoder layer ``i`` at ``precisions[i]``."""
        return self.time_scale * self._unscaled_step_time(batch, precisions)

    def _unscaled_step_time(self, batch: WorkerBatch, precisions: Sequence[str]) -> float:
        if not batch.chunks:
            return self.ops.overhead(0)
        num_tokens = batch.num_tokens
        layers = sum(count * self.layer_time_scales.get(precision, 1.0) * self.ops.layer(num_tokens, precision)
                     for precision, count in _counts(precisions).items())
        prefill = sum(self.ops.prefill_attention(c.num_tokens, c.context_len) for c in batch.chunks if c.is_prefill)
        decode_lens = [c.context_len for c in batch.chunks if not c.is_prefill]
        decode = self.ops.decode_attention(decode_lens) if decode_lens else 0.0
        head = self.ops.head(num_tokens, len(batch.sampled))
        return layers + len(precisions) * (prefill + decode) + head + self.ops.overhead(len(batch.chunks))


def _counts(precisions: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for precision in precisions:
        counts[precision] = counts.get(precision, 0) + 1
    return counts
