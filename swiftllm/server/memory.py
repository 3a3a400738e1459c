"""Device-memory budget: how many KV blocks fit next to the weights and the activation workspace."""
import logging
from dataclasses import dataclass

import torch

from swiftllm.engine_config import EngineConfig
from swiftllm.model_config import LlamaModelConfig
from swiftllm.worker.memory_profile import cuda_budget_bytes, profile_workspace_bytes
from swiftllm.worker.weight import ModelWeights

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """Bytes of the device budget: weights at their current precisions, workspace, and the KV pool's blocks.
    The engine replaces its plan whenever the weights or the KV capacity change."""
    budget_bytes: int
    weight_bytes: int
    workspace_bytes: int
    block_bytes: int
    num_kv_blocks: int

    @property
    def kv_bytes(self) -> int:
        return self.num_kv_blocks * self.block_bytes

    @property
    def max_kv_blocks(self) -> int:
        """The most blocks the pool may ever grow to: the whole budget (the address space a KV pool reserves)."""
        return self.budget_bytes // self.block_bytes

    def log(self) -> None:
        mb = 1e6
        logger.info("memory budget %.1f MB = weights %.1f MB + workspace %.1f MB + KV %.1f MB (%d blocks of %.1f KB) + free %.1f MB",
                    self.budget_bytes / mb, self.weight_bytes / mb, self.workspace_bytes / mb, self.kv_bytes / mb,
                    self.num_kv_blocks, self.block_bytes / 1e3,
                    (self.budget_bytes - self.weight_bytes - self.workspace_bytes - self.kv_bytes) / mb)


def activation_workspace_bytes(cfg: LlamaModelConfig, config: EngineConfig, max_model_len: int) -> int:
    """Peak bytes of live activations in one forward pass at the scheduler's limits.

    Counted from the model's tensor shapes (on CPU no allocator statistics exist to measure a profile run): the
    per-row activations of one layer at ``max_num_batched_tokens`` rows and the logits; on CPU also the K/V gather
    and scores of the torch decode-attention path at ``max_num_seqs`` sequences of ``max_model_len`` tokens (CUDA's
    paged kernels read the cache in place).
    """
    elem = torch.tensor([], dtype=config.torch_dtype()).element_size()
    rows = config.max_num_batched_tokens
    per_row = 4 * cfg.hidden_size + (cfg.q_size + 2 * cfg.kv_size) + 2 * cfg.q_size + 3 * cfg.intermediate_size
    seqs = min(config.max_num_seqs, rows)
    gather = seqs * max_model_len * (2 * cfg.kv_size + 2 * cfg.num_q_heads) if config.device == "cpu" else 0
    logits = 2 * seqs * cfg.vocab_size * 4
    return (rows * per_row + gather) * elem + logits


def plan_memory(cfg: LlamaModelConfig, config: EngineConfig, weights: ModelWeights, block_bytes: int,
                max_model_len: int) -> MemoryPlan:
    """The budget and workspace are configured / counted from shapes, or on CUDA without a configured budget measured
    (``swiftllm.worker.memory_profile``: a profiling forward, then the memory free after it)."""
    weight_bytes = weights.nbytes()
    budget = config.configured_budget_bytes()
    if budget is None:
        device = weights.final_norm.device
        workspace = profile_workspace_bytes(weights, cfg, config.max_num_batched_tokens,
                                            min(config.max_num_seqs, config.max_num_batched_tokens))
        budget = cuda_budget_bytes(device, config.gpu_memory_fraction, weight_bytes)
    else:
        workspace = activation_workspace_bytes(cfg, config, max_model_len)
    if config.num_kv_blocks is not None:
        num_blocks = config.num_kv_blocks
    else:
        num_blocks = (budget - weight_bytes - workspace) // block_bytes
    plan = MemoryPlan(budget, weight_bytes, workspace, block_bytes, num_blocks)
    if num_blocks < 1 or plan.weight_bytes + plan.workspace_bytes + plan.kv_bytes > budget:
        raise ValueError(
            f"memory budget {budget / 1e6:.1f} MB is too small: weights {weight_bytes / 1e6:.1f} MB + workspace "
            f"{workspace / 1e6:.1f} MB + {max(num_blocks, 1)} KV blocks of {block_bytes / 1e3:.1f} KB do not fit")
    return plan
