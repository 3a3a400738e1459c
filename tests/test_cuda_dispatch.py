"""Defect 7 of issue 13 on the CPU: which CUDA kernels take which dtypes, and the CUDA memory budget.

The kernel choices are decided on a tensor's device and dtype alone, so stand-ins carrying those two attributes
exercise them here; the budget arithmetic and its wiring into the memory plan run with the driver's figures
replaced (``tests/gpu/test_engine_gpu.py`` runs them on a GPU).
"""
from types import SimpleNamespace

import pytest
import torch

import swiftllm.quant.awq_linear as awq_linear
import swiftllm.server.memory as memory
import swiftllm.worker.kernels.ops as ops
from swiftllm import EngineConfig
from swiftllm.worker.memory_profile import budget_from_free_memory
from swiftllm.worker.weight_loader import load_model

GiB = 1 << 30


def _activations(dtype: torch.dtype, is_cuda: bool = True) -> SimpleNamespace:
    return SimpleNamespace(dtype=dtype, is_cuda=is_cuda)


def test_flash_attn_is_called_only_with_half_precision_cuda_tensors(monkeypatch):
    monkeypatch.setattr(ops, "_flash_attn_func", lambda: "flash_attn_func")
    assert ops.flash_attn_for(_activations(torch.float16)) == ops.flash_attn_for(_activations(torch.bfloat16)) == \
        "flash_attn_func"
    assert ops.flash_attn_for(_activations(torch.float32)) is None
    assert ops.flash_attn_for(_activations(torch.float16, is_cuda=False)) is None


def test_autoawqs_kernel_is_called_only_with_float16(monkeypatch):
    monkeypatch.setattr(awq_linear, "_has_awq_ext", lambda: True)
    assert awq_linear.awq_ext_takes(_activations(torch.float16))
    assert not awq_linear.awq_ext_takes(_activations(torch.bfloat16))
    assert not awq_linear.awq_ext_takes(_activations(torch.float32))


def test_the_cuda_budget_is_the_weights_plus_the_free_memory_less_the_reserve():
    assert budget_from_free_memory(free_bytes=100 * GiB, total_bytes=140 * GiB, memory_fraction=0.9,
                                   held_bytes=13 * GiB) == 13 * GiB + 100 * GiB - 14 * GiB


def test_a_cuda_plan_takes_the_measured_workspace_and_free_memory(tiny_llama, monkeypatch):
    cfg, weights = load_model(tiny_llama)
    profiled = []

    def profile(weights_, cfg_, num_tokens, num_logit_rows):
        profiled.append((num_tokens, num_logit_rows))
        return 5 << 20
    monkeypatch.setattr(memory, "profile_workspace_bytes", profile)
    monkeypatch.setattr(memory, "cuda_budget_bytes", lambda device, fraction, held: held + int(fraction * (64 << 20)))
    config = EngineConfig(model=tiny_llama, device="cuda", max_num_batched_tokens=512, max_num_seqs=32,
                          gpu_memory_fraction=0.5)
    plan = memory.plan_memory(cfg, config, weights, block_bytes=1 << 16, max_model_len=256)
    assert profiled == [(512, 32)]
    assert plan.workspace_bytes == 5 << 20 and plan.budget_bytes == weights.nbytes() + (32 << 20)
    assert plan.num_kv_blocks == (32 << 20) // (1 << 16) - 5 * 16


@pytest.mark.parametrize("config,expected", [
    (EngineConfig(device="cpu"), 2 * GiB), (EngineConfig(device="cuda"), None),
    (EngineConfig(device="cuda", memory_budget_bytes=GiB), GiB),
])
def test_only_a_cuda_engine_without_a_budget_measures_one(config, expected):
    assert config.configured_budget_bytes() == expected
