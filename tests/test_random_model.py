"""Random-weights models (``random:<preset>``): presets with the published shapes, weights that are a pure function
of (seed, tensor, index), a byte-level tokenizer sized to the vocabulary, and ``dtype=auto`` from the checkpoint."""
import json
import os

import pytest
import torch

from swiftllm import LLM, EngineConfig, SamplingParams
from swiftllm.server.tokenization import LlamaTokenizer
from swiftllm.model_presets import PRESETS, preset_config
from swiftllm.worker.random_weights import RandomModelSpec, hashed_unit_floats, random_model
from swiftllm.worker.weight_loader import checkpoint_dtype, load_model

MASK_64 = (1 << 64) - 1


def splitmix64_mix(x: int) -> int:
    """The reference: splitmix64's output function in exact integer arithmetic."""
    z = x & MASK_64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK_64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK_64
    return z ^ (z >> 31)


def test_the_hash_is_splitmix64_in_exact_integer_arithmetic():
    """What makes the weights the same on every device: only wrapping 64-bit integer arithmetic is involved."""
    stream, start = 0x2F00_1234_5678, (1 << 40) - 3
    offset = (stream * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & MASK_64
    expected = [(splitmix64_mix(start + j + offset) >> 40) / (1 << 24) for j in range(6)]
    actual = hashed_unit_floats(stream, start, 6, torch.device("cpu")).tolist()
    assert actual == expected


@pytest.mark.parametrize("name,shape", [
    ("llama-2-7b", (32, 4096, 11008, 32, 32, 32000, torch.float16)),
    ("vicuna-7b-v1.5", (32, 4096, 11008, 32, 32, 32000, torch.float16)),
    ("llama-3-8b", (32, 4096, 14336, 32, 8, 128256, torch.bfloat16)),
    ("codellama-34b", (48, 8192, 22016, 64, 8, 32000, torch.bfloat16)),
])
def test_paper_presets_have_the_published_shapes(name, shape):
    cfg = preset_config(name)
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[cfg.torch_dtype]
    assert (cfg.num_layers, cfg.hidden_size, cfg.intermediate_size, cfg.num_q_heads, cfg.num_kv_heads,
            cfg.vocab_size, dtype) == shape
    assert cfg.head_dim == 128 and cfg.name == name
    assert RandomModelSpec.parse(f"random:{name}").config().name == f"random:{name}"


def test_a_model_string_gives_the_same_weights_and_another_seed_others():
    _, first = random_model("random:tiny-llama-gqa", torch.float32, "cpu")
    _, again = random_model("random:tiny-llama-gqa:seed=0", torch.float32, "cpu")
    cfg, other = random_model("random:tiny-llama-gqa:layers=2:seed=1", torch.float32, "cpu")
    assert all(torch.equal(a, b) for a, b in zip(first.layers[1].tensors().values(), again.layers[1].tensors().values()))
    assert torch.equal(first.lm_head, again.lm_head)
    assert cfg.num_layers == len(other.layers) == 2 and not torch.equal(first.lm_head, other.lm_head)
    assert not torch.equal(first.layers[0].qkv_proj.weight, first.layers[1].qkv_proj.weight)


def test_random_weights_are_scaled_to_keep_activations_their_size():
    cfg, weights = random_model("random:tiny-llama", torch.float32, "cpu")
    layer = weights.layers[0]
    assert layer.qkv_proj.weight.shape == (cfg.q_size + 2 * cfg.kv_size, cfg.hidden_size)
    assert layer.gate_up_proj.weight.shape == (2 * cfg.intermediate_size, cfg.hidden_size)
    assert layer.down_proj.weight.std().item() * cfg.intermediate_size ** 0.5 == pytest.approx(1.0, abs=0.02)
    assert 0.75 <= layer.attn_norm.min() and layer.attn_norm.max() < 1.25
    _, half = random_model("random:tiny-llama", torch.bfloat16, "cpu")
    assert half.lm_head.dtype == torch.bfloat16 and torch.equal(half.lm_head, weights.lm_head.to(torch.bfloat16))


@pytest.mark.parametrize("model,message", [
    ("random:gpt-5", "unknown model preset 'gpt-5'"),
    ("random:tiny-llama:layers=x", "bad option 'layers=x'"),
    ("random:tiny-llama:depth=3", "bad option 'depth=3'"),
    ("random:tiny-llama:layers=0", "at least one layer"),
])
def test_bad_random_model_strings_are_refused(model, message):
    with pytest.raises(ValueError, match=message):
        RandomModelSpec.parse(model).config()


def test_the_byte_level_tokenizer_round_trips_any_text_and_sits_bos_eos_at_the_preset_ids():
    tokenizer = LlamaTokenizer.load("random:llama-3-8b")
    text = "Hello wörld 日本 🙂\n\tx"
    ids = tokenizer.encode(text)
    assert tokenizer.vocab_size == 128256 and ids[0] == 128000 == tokenizer.bos_token_id
    assert len(ids) == 1 + len(text.encode()) and tokenizer.decode(ids) == text
    assert tokenizer.eos_token_id == 128001 and tokenizer.decode([128001, 70000]) == "<|70000|>"


def test_an_engine_serves_a_random_model_with_the_same_tokens_every_time():
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    prompts = ["The capital of France is", "1, 2, 3,"]
    config = EngineConfig(model="random:tiny-llama-gqa", num_kv_blocks=64, block_size=8)
    first = [o.outputs[0].token_ids for o in LLM(config).generate(prompts, params)]
    assert first == [o.outputs[0].token_ids for o in LLM(config).generate(prompts, params)]
    assert len(set(first[0])) > 1                                         # not stuck on one token


def test_dtype_auto_takes_the_checkpoints_half_dtype_on_cuda(tiny_llama):
    assert checkpoint_dtype("random:llama-3-8b") == "bfloat16" and checkpoint_dtype("embedded") is None
    with open(os.path.join(tiny_llama, "config.json")) as f:
        saved = json.load(f)
    assert checkpoint_dtype(tiny_llama) == (saved.get("torch_dtype") or saved["dtype"]) == "float32"
    cuda, cpu = EngineConfig(device="cuda"), EngineConfig(device="cpu")
    assert cuda.torch_dtype("bfloat16") == torch.bfloat16 and cuda.torch_dtype("float16") == torch.float16
    assert cuda.torch_dtype("float32") == torch.float16 and cuda.torch_dtype(None) == torch.float16
    assert cpu.torch_dtype("bfloat16") == torch.float32
    assert EngineConfig(device="cuda", dtype="float32").torch_dtype("bfloat16") == torch.float32


def test_every_preset_builds_a_config():
    assert all(preset_config(name).num_layers >= 1 for name in PRESETS)
    cfg, _ = load_model("random:tiny-llama:layers=1")
    assert cfg.num_layers == 1
