"""What an engine is built from: a model's hyper-parameters, its tokenizer, its weights (real, or on the meta device
for the simulator: the memory plan counts their bytes) and compute dtype, and the worker that will serve it once
the memory plan (hence the KV pool's size) is known.

``load_model_source`` loads a real model (GGUF file or HF folder) and serves it with the computing
``ModelRunner``; the simulator (``swiftllm.sim``) makes a source whose worker only predicts time.
"""
from dataclasses import dataclass
from typing import Callable

import torch

from swiftllm.engine_config import EngineConfig
from swiftllm.model_config import LlamaModelConfig
from swiftllm.quant.lm_head import with_int8_lm_head
from swiftllm.server.memory import MemoryPlan
from swiftllm.server.tokenization import LlamaTokenizer
from swiftllm.worker.interface import Worker
from swiftllm.worker.kv_cache import PagedKVCache
from swiftllm.worker.runner import ModelRunner
from swiftllm.worker.weight import ModelWeights
from swiftllm.worker.weight_loader import checkpoint_dtype, load_model

# (memory plan, max model length) -> the worker, holding a KV pool of plan.num_kv_blocks blocks
WorkerFactory = Callable[[MemoryPlan, int], Worker]


@dataclass(slots=True)
class ModelSource:
    model_config: LlamaModelConfig
    tokenizer: LlamaTokenizer            # or anything with its encode / decode / eos_token_id / chat template
    weights: ModelWeights                # at full precision
    dtype: torch.dtype                   # of the activations and the KV cache
    make_worker: WorkerFactory


def load_model_source(config: EngineConfig) -> ModelSource:
    """Load ``config.model`` onto ``config.device`` and serve it with the computing worker (on a GPU warmed up:
    Triton compiles every kernel variant now, not inside the step loop)."""
    dtype = config.torch_dtype(checkpoint_dtype(config.model))
    model_config, weights = load_model(config.model, dtype, config.device)
    if config.lm_head == "int8":
        weights = with_int8_lm_head(weights)

    def make_worker(plan: MemoryPlan, max_model_len: int) -> ModelRunner:
        kv_cache = PagedKVCache(model_config, plan.num_kv_blocks, config.block_size, dtype, config.device,
                                max_blocks=plan.max_kv_blocks)
        runner = ModelRunner(model_config, weights, kv_cache, max_model_len, config.seed)
        if config.device != "cpu":
            runner.warm_up(config.max_num_batched_tokens)
        return runner
    return ModelSource(model_config, LlamaTokenizer.load(config.model), weights, dtype, make_worker)
