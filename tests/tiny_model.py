"""A tiny random Llama checkpoint folder (HF layout, safetensors + word-level tokenizer) built with transformers."""
import json
import os

import torch
from tokenizers import Tokenizer, models, pre_tokenizers

VOCAB = 256


def write_tiny_llama(path: str, num_kv_heads: int = 2, num_shards: int = 1, rope_scaling: dict | None = None,
                     tie: bool = False, seed: int = 0) -> str:
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=num_kv_heads, max_position_embeddings=512,
                         rope_theta=10000.0, rope_scaling=rope_scaling, tie_word_embeddings=tie,
                         bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-6)
    model = LlamaForCausalLM(config).float().eval()
    with torch.no_grad():   # random init is near-uniform; sharpen it so greedy decoding is well defined
        for p in model.parameters():
            p.mul_(4.0)
    model.save_pretrained(path, safe_serialization=True, max_shard_size="200KB" if num_shards > 1 else "2GB")
    _write_tokenizer(path)
    return path


def _write_tokenizer(path: str) -> None:
    vocab = {f"w{i}": i for i in range(VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(os.path.join(path, "tokenizer.json"))
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "w1", "eos_token": "w2", "add_bos_token": False}, f)
