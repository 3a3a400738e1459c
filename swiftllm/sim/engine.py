"""A simulated engine: the real ``LLMEngine`` (scheduler, block manager, memory plan, hooks) over ``SimWorker`` on a
virtual clock. The model is a preset name (``llama-2-7b``, ...: no checkpoint needed), the embedded model, a GGUF
file or an HF folder (only its config.json and tokenizer are read).
"""
import dataclasses
import os

from swiftllm.engine_config import EngineConfig
from swiftllm.model_config import LlamaModelConfig
from swiftllm.model_presets import PRESETS, preset_config
from swiftllm.server.engine import LLMEngine
from swiftllm.server.memory import MemoryPlan
from swiftllm.server.model_source import ModelSource
from swiftllm.server.tokenization import LlamaTokenizer
from swiftllm.sim.clock import VirtualClock
from swiftllm.sim.cost_model import CostModel, OpTimes, ProfiledOps, RooflineOps
from swiftllm.sim.cpu_ops import CpuOps, load_cpu_op_table
from swiftllm.sim.hardware import HardwareSpec
from swiftllm.sim.model_bytes import meta_weights
from swiftllm.sim.profile_table import load_op_profile, profile_path
from swiftllm.sim.tokenizer import SyntheticTokenizer
from swiftllm.sim.worker import SimWorker
from swiftllm.worker.kv_cache import PagedKVCache
from swiftllm.worker.weight_loader import load_model_config


def simulated_engine(config: EngineConfig, hardware: HardwareSpec, clock: VirtualClock | None = None) -> LLMEngine:
    """An engine for ``config`` on simulated ``hardware``: weights and KV in ``hardware.dtype``, the budget the
    hardware's memory less its reserve (unless ``config`` sets one), the memory plan of the device it simulates
    (the CPU's for the ``cpu`` hardware, CUDA's otherwise), time on ``clock``. Nothing touches a real device."""
    clock = clock or VirtualClock()
    if config.memory_budget_bytes is None:          # never the real-GPU default, which profiles a device
        config = dataclasses.replace(config, memory_budget_bytes=hardware.budget_bytes)
    device = "cpu" if hardware.op_table is not None else "cuda"
    config = dataclasses.replace(config, device=device, dtype=hardware.dtype)
    return LLMEngine(config, clock=clock, source=simulated_source(config, hardware, clock))


def simulated_source(config: EngineConfig, hardware: HardwareSpec, clock: VirtualClock) -> ModelSource:
    model_config, tokenizer = _model(config.model)
    weights = meta_weights(model_config, config.torch_dtype())
    ops = op_times(hardware, model_config, config.model)
    output_token = _non_eos_token(model_config, tokenizer)

    def make_worker(plan: MemoryPlan, max_model_len: int) -> SimWorker:
        block_bytes = PagedKVCache.block_bytes(model_config, config.block_size, config.torch_dtype())
        cost_model = CostModel(ops, hardware.time_scale, hardware.layer_time_scales)
        return SimWorker(cost_model, hardware, clock, weights, plan.max_kv_blocks, block_bytes, output_token)
    return ModelSource(model_config, tokenizer, weights, config.torch_dtype(), make_worker)


def op_times(hardware: HardwareSpec, cfg: LlamaModelConfig, model: str) -> OpTimes:
    """The CPU's timed ops, else the GPU's operator table for this model if one exists, else the roofline."""
    if hardware.op_table is not None:
        return CpuOps(load_cpu_op_table(hardware.op_table), cfg)
    path = profile_path(hardware.profile_dir, hardware.profile_gpu, model) if hardware.profile_dir else None
    if path is not None:
        return ProfiledOps(hardware, cfg, load_op_profile(path))
    return RooflineOps(hardware, cfg)


def _model(model: str) -> tuple[LlamaModelConfig, object]:
    if model in PRESETS:
        cfg = preset_config(model)
        return cfg, SyntheticTokenizer(cfg.vocab_size, cfg.bos_token_id, (cfg.eos_token_ids or [None])[0])
    try:
        cfg = load_model_config(model)
    except FileNotFoundError as missing:
        raise ValueError(f"{missing}; or one of the simulator's model presets {sorted(PRESETS)}") from None
    has_tokenizer = not os.path.isdir(model) or os.path.isfile(os.path.join(model, "tokenizer.json"))
    if has_tokenizer:
        return cfg, LlamaTokenizer.load(model)
    return cfg, SyntheticTokenizer(cfg.vocab_size, cfg.bos_token_id, (cfg.eos_token_ids or [None])[0])


def _non_eos_token(cfg: LlamaModelConfig, tokenizer) -> int:
    """The smallest token id that ends nothing (the simulator's every output token)."""
    ends = set(cfg.eos_token_ids) | {tokenizer.eos_token_id}
    return next(i for i in range(cfg.vocab_size) if i not in ends)

