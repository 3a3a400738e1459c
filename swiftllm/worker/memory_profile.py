"""What a CUDA device can give the KV cache: the peak of a profiling forward, and the memory free after it.

The activation workspace is measured, not counted from shapes: one cache-less forward of the scheduler's largest
batch (``max_num_batched_tokens`` tokens, the LM head over ``max_num_seqs`` rows) through the serving kernels,
under the allocator's peak statistics. The budget is what this process already holds for the weights plus what
the driver reports free afterwards, less the share of the card kept in reserve (``1 - gpu_memory_fraction``): other
processes, the CUDA context and libraries' workspaces are thereby left out.
"""
import torch

from swiftllm.model_config import LlamaModelConfig
from swiftllm.worker.model import CachelessForward
from swiftllm.worker.weight import ModelWeights, vocab_logits


@torch.inference_mode()
def profile_workspace_bytes(weights: ModelWeights, cfg: LlamaModelConfig, num_tokens: int, num_logit_rows: int) -> int:
    """Peak bytes allocated beyond the weights during one forward of ``num_tokens`` tokens (CUDA weights)."""
    device = weights.final_norm.device
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    token_ids = torch.zeros(num_tokens, dtype=torch.int64, device=device)
    hidden = CachelessForward(weights, cfg, num_tokens).hidden_states(token_ids)          # [T, hidden]
    vocab_logits(hidden[:num_logit_rows], weights.lm_head).float()                        # [S, vocab]
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del token_ids, hidden
    torch.cuda.empty_cache()
    return peak


def budget_from_free_memory(free_bytes: int, total_bytes: int, memory_fraction: float, held_bytes: int) -> int:
    """The device budget: ``held_bytes`` this process already holds for the model (its weights) plus what is free,
    less the reserve ``(1 - memory_fraction) * total_bytes``."""
    return held_bytes + free_bytes - round((1.0 - memory_fraction) * total_bytes)


def cuda_budget_bytes(device: torch.device, memory_fraction: float, held_bytes: int) -> int:
    free, total = torch.cuda.mem_get_info(device)
    return budget_from_free_memory(free, total, memory_fraction, held_bytes)
