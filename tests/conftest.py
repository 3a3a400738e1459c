import os

os.environ.setdefault("TRITON_INTERPRET", "1")   # must precede the first triton import (kernel tests run on CPU)

import pytest
import torch

from tests.tiny_model import write_tiny_llama

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    """Path of a tiny random GQA Llama (4 query heads, 2 KV heads, 3 layers) in HF folder layout."""
    return write_tiny_llama(str(tmp_path_factory.mktemp("tiny_llama")))


@pytest.fixture(scope="session")
def hf_embedded():
    """transformers' own load of the embedded GGUF: the independent reference."""
    import os
    from transformers import AutoModelForCausalLM
    from swiftllm.worker.weight_loader import embedded_model_path
    path = embedded_model_path()
    return AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def embedded_llm():
    from swiftllm import LLM, EngineConfig
    return LLM(EngineConfig(model="embedded", memory_budget_bytes=1 << 30, max_model_len=2048))
