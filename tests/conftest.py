import os

import pytest
import torch

from tests.tiny_model import write_tiny_llama

# Triton's CPU interpreter runs the kernel tests where no GPU is visible. It is chosen when a kernel is decorated,
# so this precedes the first triton import; with a GPU the kernels compile for it (tests/gpu) and the interpreted
# tests skip, unless TRITON_INTERPRET=1 is set for a process of their own (then tests/gpu refuse to run).
if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

torch.set_num_threads(2)


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU and compiled Triton kernels (tests/gpu); skipped without one")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> str:
    """Path of a tiny random GQA Llama (4 query heads, 2 KV heads, 3 layers) in HF folder layout."""
    return write_tiny_llama(str(tmp_path_factory.mktemp("tiny_llama")))


@pytest.fixture(scope="session")
def hf_embedded():
    """transformers' own load of the embedded GGUF: the independent reference."""
    from transformers import AutoModelForCausalLM
    from swiftllm.worker.weight_loader import embedded_model_path
    path = embedded_model_path()
    return AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def embedded_llm():
    from swiftllm import LLM, EngineConfig
    return LLM(EngineConfig(model="embedded", memory_budget_bytes=1 << 30, max_model_len=2048))
