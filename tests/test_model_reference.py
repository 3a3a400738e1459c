"""Our engine against HF transformers: the embedded SmolLM2 (same GGUF) and tiny random HF checkpoints."""
import os

import pytest
import torch

from swiftllm import LLM, EngineConfig, SamplingParams
from swiftllm.worker.model import dense_logits
from swiftllm.worker.weight_loader import load_model
from tests.tiny_model import write_tiny_llama

PROMPTS = [
    "The capital of France is", "def fibonacci(n):", "Once upon a time, in a land far away,",
    "The three primary colors are", "import numpy as np\nx = np.", "Water boils at a temperature of",
    "Q: What is 12 times 12?\nA:", "The largest planet in the solar system", "In 1492, Columbus",
    "A haiku about the sea:\n", "SELECT name FROM users WHERE", "The mitochondria is",
    "Translate to French: good morning ->", "My favourite recipe starts with", "The quick brown fox",
    "Photosynthesis converts", "To be or not to be,", "The derivative of x^2 is",
    "<|im_start|>user\nName a fruit.<|im_end|>\n<|im_start|>assistant\n", "Rust and Go are both",
    "The stock market today", "Dear hiring manager,",
]
LOGIT_ATOL = 1e-3   # fp32 on both sides; measured max |diff| about 3e-5 on logits of magnitude ~20-30


def test_embedded_last_token_logits_match_transformers(embedded_llm, hf_embedded):
    engine = embedded_llm.engine
    for prompt in PROMPTS:
        ids = engine.tokenizer.encode(prompt)
        ours = engine.model_weights
        with torch.inference_mode():
            got = dense_logits(ours, engine.model_config, torch.tensor(ids))[-1]
            want = hf_embedded(torch.tensor([ids])).logits[0, -1]
        assert torch.allclose(got, want, atol=LOGIT_ATOL, rtol=0), f"{prompt!r}: max diff {(got - want).abs().max()}"


def test_embedded_served_logits_match_dense_forward(embedded_llm):
    """The paged serving path (prefill + decode through the KV cache) gives the dense forward's tokens."""
    engine = embedded_llm.engine
    ids = engine.tokenizer.encode(PROMPTS[0])
    out = embedded_llm.generate([ids], SamplingParams(temperature=0, max_tokens=8))[0]
    full = torch.tensor(ids + out.outputs[0].token_ids)
    with torch.inference_mode():
        dense = dense_logits(engine.model_weights, engine.model_config, full)
    assert dense[len(ids) - 1:-1].argmax(-1).tolist() == out.outputs[0].token_ids


def test_embedded_greedy_64_tokens_identical_to_transformers(embedded_llm, hf_embedded):
    engine = embedded_llm.engine
    prompts = [engine.tokenizer.encode(p) for p in PROMPTS[:10]]
    outs = embedded_llm.generate(prompts, SamplingParams(temperature=0, max_tokens=64, ignore_eos=True))
    for ids, out in zip(prompts, outs):
        assert out.outputs[0].token_ids == hf_greedy(hf_embedded, ids, 64)


def test_gguf_weights_bit_identical_to_transformers(embedded_llm, hf_embedded):
    ours = embedded_llm.engine.model_weights
    sd = hf_embedded.state_dict()
    q, k, v = 576, 192, 192
    for i in (0, 17, 29):
        qkv = ours.layers[i].qkv_proj.weight
        assert torch.equal(qkv[:q], sd[f"model.layers.{i}.self_attn.q_proj.weight"])
        assert torch.equal(qkv[q:q + k], sd[f"model.layers.{i}.self_attn.k_proj.weight"])
        assert torch.equal(qkv[q + k:q + k + v], sd[f"model.layers.{i}.self_attn.v_proj.weight"])
        assert torch.equal(ours.layers[i].down_proj.weight, sd[f"model.layers.{i}.mlp.down_proj.weight"])
    assert torch.equal(ours.embed_tokens, sd["model.embed_tokens.weight"])


@torch.inference_mode()
def hf_greedy(model, ids: list[int], num_tokens: int) -> list[int]:
    """Plain greedy decoding with transformers' KV cache, never stopping at EOS (as ``ignore_eos``)."""
    out = model(torch.tensor([ids]), use_cache=True)
    tokens = []
    for _ in range(num_tokens):
        tokens.append(int(out.logits[0, -1].argmax()))
        out = model(torch.tensor([[tokens[-1]]]), past_key_values=out.past_key_values, use_cache=True)
    return tokens


def _hf_model(path):
    from transformers import LlamaForCausalLM
    return LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@pytest.mark.parametrize("variant", [
    dict(num_kv_heads=2), dict(num_kv_heads=4, tie=True), dict(num_kv_heads=1, num_shards=3),
    dict(num_kv_heads=2, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
], ids=["gqa", "mha-tied", "mqa-sharded", "llama3-rope"])
def test_tiny_random_models_match_transformers(tmp_path, variant):
    path = write_tiny_llama(str(tmp_path), **variant)
    if variant.get("num_shards", 1) > 1:
        assert os.path.isfile(os.path.join(path, "model.safetensors.index.json"))
    hf = _hf_model(path)
    cfg, weights = load_model(path)
    ids = torch.randint(3, 256, (200,), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = hf(ids[None]).logits[0]
        got = dense_logits(weights, cfg, ids)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()
    llm = LLM(EngineConfig(model=path, num_kv_blocks=64, block_size=8, max_model_len=512))
    prompts = [ids[:n].tolist() for n in (5, 37, 90)]
    outs = llm.generate(prompts, SamplingParams(temperature=0, max_tokens=24, ignore_eos=True))
    for prompt, out in zip(prompts, outs):
        assert out.outputs[0].token_ids == hf_greedy(hf, prompt, 24)
