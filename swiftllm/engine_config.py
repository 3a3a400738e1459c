from dataclasses import dataclass

import torch

GiB = 1 << 30
HALF_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
DTYPES = {"float32": torch.float32, **HALF_DTYPES}


@dataclass(slots=True)
class EngineConfig:
    """Everything the engine needs to start. Memory is a budget: weights + KV cache + workspace must fit.

    ``memory_budget_bytes`` is the device-memory budget (on CPU a configured byte budget, 2 GiB by default; on
    CUDA by default the weights plus what is free after a profiling forward, less ``1 - gpu_memory_fraction`` of
    the card). ``num_kv_blocks`` overrides the derived KV size.
    """
    model: str = "embedded"
    device: str = "cpu"
    dtype: str = "auto"                    # auto: float32 on CPU; on CUDA the checkpoint's float16/bfloat16
    block_size: int = 16
    memory_budget_bytes: int | None = None
    gpu_memory_fraction: float = 0.9
    num_kv_blocks: int | None = None
    max_num_seqs: int = 64
    max_num_batched_tokens: int = 2048
    max_model_len: int | None = None       # default: the model's context, capped at 4096
    watermark: float = 0.01
    seed: int = 0
    lm_head: str = "fp"                    # "int8": the LM head (and a tied embedding) in INT8 per vocabulary row

    def __post_init__(self):
        if self.block_size < 1 or self.block_size & (self.block_size - 1):
            raise ValueError(f"block_size must be a power of two, got {self.block_size}")
        if self.memory_budget_bytes is not None and self.memory_budget_bytes <= 0:
            raise ValueError(f"memory_budget_bytes must be positive, got {self.memory_budget_bytes}")
        if not 0.0 < self.gpu_memory_fraction <= 1.0:
            raise ValueError(f"gpu_memory_fraction must be in (0, 1], got {self.gpu_memory_fraction}")
        if self.num_kv_blocks is not None and self.num_kv_blocks < 1:
            raise ValueError(f"num_kv_blocks must be >= 1, got {self.num_kv_blocks}")
        if not 0.0 <= self.watermark < 1.0:
            raise ValueError(f"watermark must be in [0, 1), got {self.watermark}")
        if self.lm_head not in ("fp", "int8"):
            raise ValueError(f"lm_head must be 'fp' or 'int8', got {self.lm_head!r}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        self.torch_dtype()

    def torch_dtype(self, checkpoint_dtype: str | None = None) -> torch.dtype:
        """The compute dtype. ``auto``: float32 on CPU; on CUDA the checkpoint's own half dtype (its config's
        ``torch_dtype``, when it is float16 or bfloat16), float16 otherwise."""
        if self.dtype == "auto":
            if self.device == "cpu":
                return torch.float32
            return HALF_DTYPES.get(checkpoint_dtype, torch.float16)
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of auto, {', '.join(DTYPES)}; got {self.dtype!r}")
        return DTYPES[self.dtype]

    def configured_budget_bytes(self) -> int | None:
        """``memory_budget_bytes``, or 2 GiB on CPU; ``None`` on CUDA without one (measured at start instead)."""
        if self.memory_budget_bytes is not None:
            return self.memory_budget_bytes
        return 2 * GiB if self.device == "cpu" else None
